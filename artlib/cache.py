"""The checkpoint cache's concurrency guard and bookkeeping: a file lock per run folder, and a record of which run
folders a process used.

:func:`artlib.train.train` holds :func:`run_lock` while it trains or loads ``runs/<run_name>/``, so two processes
(two notebooks run with ``python -m artlib reproduce --jobs 2``, or two terminals) asking for the same model never
write the same checkpoint at once: the second waits, then finds the finished run and loads it. Checkpoint files are
additionally written atomically (:func:`artlib.checkpoints.atomic_write`), so a reader never sees half a file.

When ``$ARTLIB_CHECKPOINT_LOG`` names a file, every run folder used (trained, resumed or loaded) is appended to it
as one JSON line ``{"run_dir": ..., "sha256": ...}``; :mod:`artlib.reproduce` sets it per notebook to learn which
checkpoints a notebook depends on (part of the hash that decides whether the notebook is up to date).

Example::

    >>> from artlib import cache
    >>> with cache.run_lock("runs/cifar10_art_small-cnn_smoke_seed0_14b38173"):
    ...     pass                                    # exclusive: another process blocks here until we leave
    >>> cache.checkpoint_hash("runs/cifar10_art_small-cnn_smoke_seed0_14b38173")[:8]
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Optional

__all__ = ["LOG_ENV", "lock_path", "run_lock", "checkpoint_hash", "record_use", "read_uses"]

#: Environment variable naming the file that :func:`record_use` appends to (unset: nothing is recorded).
LOG_ENV = "ARTLIB_CHECKPOINT_LOG"


def lock_path(run_dir: str | os.PathLike) -> Path:
    """The lock file of a run folder: ``<run_dir>.lock`` beside it (outside it, so deleting the folder is safe)."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + ".lock")


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike, enabled: bool = True, record: bool = True):
    """Hold an exclusive ``fcntl.flock`` on ``<run_dir>.lock`` for the duration of the block.

    Blocks until no other process holds it. The lock is released when the block ends or the process dies (the
    kernel drops ``flock`` locks with the file descriptor), so a killed training never leaves a stale lock. On
    platforms without ``fcntl`` (Windows) the block runs unlocked.

    Args:
        run_dir: the run folder (``TrainConfig.run_dir()``); its parent is created when missing.
        enabled: False makes this a no-op (e.g. on DDP ranks other than 0, which must not wait on rank 0).
        record: when the block ends without an exception, :func:`record_use` the run folder.
    """
    if not enabled:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    if record:
        record_use(run_dir)


def checkpoint_hash(run_dir: str | os.PathLike) -> Optional[str]:
    """The sha256 of the run's final weights (``model.pt``), else of its last checkpoint (``last.pt``), as recorded
    in the checkpoint's JSON sidecar (written by :func:`artlib.checkpoints.save`); None when neither exists."""
    from artlib import checkpoints

    for name in ("model.pt", "last.pt"):
        path = Path(run_dir) if Path(run_dir).is_file() else Path(run_dir) / name  # a zoo checkpoint is a file
        if path.is_file():
            try:
                meta = checkpoints.read_meta(path)
            except checkpoints.CheckpointError:
                meta = None
            return (meta or {}).get("sha256") or checkpoints.sha256_file(path)
    return None


def record_use(run_dir: str | os.PathLike) -> None:
    """Append ``{"run_dir", "sha256"}`` to the file named by ``$ARTLIB_CHECKPOINT_LOG`` (nothing when unset)."""
    log = os.environ.get(LOG_ENV)
    if not log:
        return
    line = json.dumps({"run_dir": str(Path(run_dir).resolve()), "sha256": checkpoint_hash(run_dir)}) + "\n"
    with open(log, "a", encoding="utf-8") as fh:  # one short O_APPEND write per line: safe across processes
        fh.write(line)


def read_uses(log: str | os.PathLike) -> dict:
    """``{run_dir: sha256}`` from a log written by :func:`record_use` (last entry per folder wins; {} if missing)."""
    uses = {}
    path = Path(log)
    if not path.is_file():
        return uses
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            uses[item["run_dir"]] = item["sha256"]
    return dict(sorted(uses.items()))

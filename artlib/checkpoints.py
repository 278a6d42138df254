"""Safe checkpoints: atomic writes, a JSON sidecar with a sha256, and ``torch.load(weights_only=True)`` only.

A checkpoint ``run.pt`` is written as a temporary file in the same folder, flushed and fsynced, then moved into place
with ``os.replace``; a killed or failing write never leaves a half-written ``run.pt``, and an existing ``run.pt`` stays
untouched until the new one is complete. A failing write removes its temp file; one left by a killed process
(``.run.pt.<random>.tmp``, SIGKILL mid-write) is removed by the next :func:`save` or :func:`load` of ``run.pt``
(a writer holds an ``flock`` on its temp file, so only files of dead writers are removed). Beside it,
``run.pt.json`` (written the same way) records the config, the metrics, the sha256 of the checkpoint file, the torch
version and the creation time.

:func:`load` verifies the sha256 against the sidecar (without one, the zip format's own CRC-32 of every record, so
flipped bytes are caught either way) and reads with ``weights_only=True``, so loading never runs
code from the file: store tensors and plain Python containers, numbers and strings (a model's ``state_dict()``,
an optimizer's ``state_dict()``, ``torch.get_rng_state()``), not arbitrary objects. Files pickled with other objects
(e.g. the microsoft/robust-models-transfer checkpoints, pickled with ``dill``) are refused with
:class:`UnsafeCheckpointError`; :func:`artlib.models.convert_robustness_checkpoint` converts those once, explicitly.

Example:
    >>> from artlib import checkpoints
    >>> path = checkpoints.save("runs/cifar10_art/last.pt", {"model": model.state_dict(), "epoch": 3},
    ...                         config={"method": "art", "beta": 50.0}, metrics={"test_acc": 0.81})
    >>> state, meta = checkpoints.load(path)
    >>> meta["metrics"]["test_acc"], meta["sha256"] == checkpoints.sha256_file(path)
    (0.81, True)
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["CheckpointError", "CheckpointNotFoundError", "UnsafeCheckpointError", "save", "load", "read_meta",
           "sha256_file", "sidecar_path", "SIDECAR_FORMAT", "looks_like_html", "verify_zip", "remove_stale_temps"]

SIDECAR_FORMAT = "artlib-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, truncated, or does not match its sidecar's sha256."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist (also a :class:`FileNotFoundError`)."""


class UnsafeCheckpointError(CheckpointError):
    """``torch.load(weights_only=True)`` refused the file: it pickles objects other than tensors and plain data."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON sidecar of a checkpoint: ``<path>.json`` (``run.pt`` -> ``run.pt.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (constant memory).

    Args:
        path: the file.
        chunk_size: bytes read at a time.

    Returns:
        str: 64 lowercase hex digits.

    Example:
        >>> sha256_file("runs/last.pt")
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _json_default(obj: Any):
    """Make common non-JSON values of configs and metrics serialisable (paths, tensors, numpy scalars, sets)."""
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays
        return obj.tolist()
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable (config/metrics must be plain data)")


def _fsync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _flock(fd: int, blocking: bool) -> bool:
    """Take an exclusive ``flock`` on ``fd``; False when ``blocking`` is False and another process holds it (True
    where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


#: A temp file younger than this and still empty may belong to a writer that has not locked it yet: kept.
_FRESH_SECONDS = 10.0


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temp files ``.<name>.*.tmp`` that killed writers of ``target`` left beside it; return them.

    A live writer (:func:`atomic_write`) holds an exclusive ``flock`` on its temp file until it is renamed, and the
    kernel drops the lock when the process dies, so a temp file whose lock can be taken belongs to a dead writer. An
    empty file younger than a few seconds is kept (its writer may not have locked it yet). Without ``fcntl``
    (Windows) only temp files older than an hour are removed. Files that cannot be removed (read-only folder) are
    left alone."""
    import time
    target = Path(target)
    removed = []
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(f".{target.name}.") and n.endswith(".tmp")]
    except OSError:
        return removed
    try:
        import fcntl  # noqa: F401
        have_flock = True
    except ImportError:  # pragma: no cover - Windows
        have_flock = False
    for name in names:
        path = target.parent / name
        try:
            st = path.stat()
            age = time.time() - st.st_mtime
            if not have_flock:
                if age > 3600:
                    path.unlink()
                    removed.append(path)
                continue
            if st.st_size == 0 and age < _FRESH_SECONDS:
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                if _flock(fd, blocking=False):
                    path.unlink()
                    removed.append(path)
            finally:
                os.close(fd)
        except OSError:
            continue
    return removed


def atomic_write(target: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(fileobj)`` on a binary temp file beside ``target``, fsync it, then ``os.replace`` it onto
    ``target`` (permissions as a plain ``open`` would give). Every file artlib writes (checkpoints, sidecars,
    figures, tables) goes through here.

    On any exception the temp file is removed and ``target`` is left as it was. The temp file is ``flock``-ed while
    it is written, so :func:`remove_stale_temps` can tell a killed writer's leftover from a write in progress.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        _flock(fd, blocking=True)
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)
    return target


def save(path: str | os.PathLike, obj: Any, config: dict | None = None, metrics: dict | None = None,
         provenance: dict | None = None) -> Path:
    """Write ``obj`` with ``torch.save`` atomically, then its JSON sidecar ``<path>.json`` (also atomically).

    The sidecar holds ``{"format", "file", "sha256", "size", "torch", "created", "config", "metrics"}``; ``created``
    is an ISO-8601 UTC time. ``config`` and ``metrics`` are serialised first, so a non-serialisable value fails
    before anything is written. Paths, tensors and numpy scalars in them are converted to plain JSON values.

    Args:
        path: destination (folders are created). An existing file is replaced only once the new one is complete.
        obj: what to save: a state dict, or a dict of tensors and plain data (anything ``torch.load(...,
            weights_only=True)`` can read back; other objects save but :func:`load` refuses them).
        config: the run's configuration (JSON-serialisable dict), or None.
        metrics: the run's metrics (JSON-serialisable dict), or None.
        provenance: how the file was made (commit, command, threads, ...; JSON-serialisable), or None (omitted).

    Returns:
        Path: ``path``.

    Example:
        >>> save("runs/demo/last.pt", model.state_dict(), config={"arch": "small-cnn"}, metrics={"acc": 0.5})
        PosixPath('runs/demo/last.pt')
    """
    path = Path(path)
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"config must be a dict or None, got {type(config).__name__}")
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict or None, got {type(metrics).__name__}")
    # Validate the JSON parts before touching the disk.
    json.dumps({"config": config, "metrics": metrics, "provenance": provenance}, default=_json_default)

    remove_stale_temps(path)
    remove_stale_temps(sidecar_path(path))
    atomic_write(path, lambda f: torch.save(obj, f))
    meta = {
        "format": SIDECAR_FORMAT,
        "file": path.name,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "torch": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": config,
        "metrics": metrics,
    }
    if provenance is not None:
        meta["provenance"] = provenance
    text = json.dumps(meta, indent=2, sort_keys=False, default=_json_default) + "\n"
    atomic_write(sidecar_path(path), lambda f: f.write(text.encode("utf-8")))
    return path


def read_meta(path: str | os.PathLike) -> dict | None:
    """The parsed sidecar of checkpoint ``path``, or None when it has none.

    Raises:
        CheckpointError: the sidecar exists but is not valid JSON.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return None
    try:
        return json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint sidecar {side} is unreadable or not valid JSON: {exc}") from exc


def _weights_only_detail(exc: BaseException) -> str:
    """The informative part of torch's ``weights_only`` error (which global / opcode it refused)."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return f"unsupported global {found.group(1)}"
    found = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    return found.group(1).strip() if found else text.strip().splitlines()[0]


def _is_weights_only_refusal(exc: BaseException) -> bool:
    """True when ``weights_only`` refused a well-formed pickle; False for garbage bytes (an unknown opcode)."""
    text = str(exc)
    return (isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text.lower()
            and "Unsupported operand" not in text)


_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--", b"<?xml")


def looks_like_html(path: str | os.PathLike) -> bool:
    """True when the file starts like an HTML (or XML) page: a login page or error page saved in place of a
    checkpoint, archive or image by a failed download."""
    try:
        with open(path, "rb") as f:
            return is_html_head(f.read(512))
    except OSError:
        return False


def is_html_head(head: bytes) -> bool:
    """True when the first bytes of a file or an HTTP body start like an HTML page (see :func:`looks_like_html`)."""
    head = head[:512].lstrip(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith(_HTML_STARTS) and (b"<html" in head or head.startswith((b"<!doctype html", b"<head",
                                                                                   b"<body")))


def html_message(path: str | os.PathLike, expected: str) -> str:
    """The one line for an HTML page found where ``expected`` (a checkpoint, an archive, an image) should be."""
    return (f"{path} is an HTML page, not {expected} (a failed or redirected download, or a login / error page "
            f"saved under this name); download the file again")


def verify_zip(path: str | os.PathLike) -> None:
    """Check the CRC-32 of every record of a zip-format torch checkpoint (``torch.save``'s default format);
    raise :class:`CheckpointError` naming the first bad record. Legacy (non-zip) files are not checked."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: record {bad} fails its CRC-32 check (bytes changed "
                              f"after it was written; no sidecar sha256 to compare with)")


def load(path: str | os.PathLike, map_location: Any = "cpu", verify: bool = True) -> tuple[Any, dict | None]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``, after checking its sha256 against the sidecar.

    Args:
        path: the checkpoint file.
        map_location: passed to ``torch.load`` (default ``"cpu"``: loading never picks a device for you).
        verify: when True (default) and a sidecar exists, the file's sha256 must equal the sidecar's. A file without
            a sidecar (e.g. a torchvision weights file) has the CRC-32 of its zip records checked instead, and
            ``meta`` None.

    Returns:
        tuple: ``(state, meta)``: the unpickled object and the sidecar dict (None when there is no sidecar).

    Raises:
        CheckpointNotFoundError: no file at ``path`` (a ``FileNotFoundError`` too); the message names the path.
        CheckpointError: sha256 mismatch (names the path, the expected and the actual hash), or a truncated or
            corrupt file (names the path).
        UnsafeCheckpointError: the file holds objects that ``weights_only=True`` refuses to unpickle.

    Example:
        >>> state, meta = load("runs/demo/last.pt")
        >>> model.load_state_dict(state)
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint not found: {path}")
    remove_stale_temps(path)
    remove_stale_temps(sidecar_path(path))
    if looks_like_html(path):
        raise CheckpointError(html_message(path, "a torch checkpoint"))
    meta = read_meta(path)
    if verify and meta is not None:
        expected = meta.get("sha256")
        actual = sha256_file(path)
        if expected != actual:
            raise CheckpointError(
                f"checkpoint {path} does not match its sidecar {sidecar_path(path)}: sha256 expected {expected}, "
                f"actual {actual} (the file was modified, truncated or replaced after it was saved)")
    elif verify:
        verify_zip(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if _is_weights_only_refusal(exc):
            raise UnsafeCheckpointError(
                f"refusing to unpickle {path}: it holds objects other than tensors and plain data, and artlib only "
                f"loads with torch.load(weights_only=True) ({_weights_only_detail(exc)})") from exc
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt, or not a torch checkpoint "
                              f"({_weights_only_detail(exc)})") from exc
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError,
            AttributeError, TypeError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if len(msg) > 160 and ". " in msg:  # torch's zip-reader errors run on; keep their first sentence
            msg = msg.split(". ")[0] + "."
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({type(exc).__name__}: {msg})") from exc
    return state, meta


"""Safe checkpoints: atomic writes, a JSON sidecar with a sha256, and ``torch.load(weights_only=True)`` only.

A checkpoint ``run.pt`` is written as a temporary file in the same folder, flushed and fsynced, then moved into place
with ``os.replace``; a killed or failing write never leaves a half-written ``run.pt`` (nor a stray temp file), and an
existing ``run.pt`` stays untouched until the new one is complete. Beside it, ``run.pt.json`` (written the same way)
records the config, the metrics, the sha256 of the checkpoint file, the torch version and the creation time.

:func:`load` verifies the sha256 against the sidecar and reads with ``weights_only=True``, so loading never runs
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
           "sha256_file", "sidecar_path", "SIDECAR_FORMAT"]

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


def atomic_write(target: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Call ``write(fileobj)`` on a binary temp file beside ``target``, fsync it, then ``os.replace`` it onto
    ``target`` (permissions as a plain ``open`` would give). Every file artlib writes (checkpoints, sidecars,
    figures, tables) goes through here.

    On any exception the temp file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
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


def load(path: str | os.PathLike, map_location: Any = "cpu", verify: bool = True) -> tuple[Any, dict | None]:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``, after checking its sha256 against the sidecar.

    Args:
        path: the checkpoint file.
        map_location: passed to ``torch.load`` (default ``"cpu"``: loading never picks a device for you).
        verify: when True (default) and a sidecar exists, the file's sha256 must equal the sidecar's. A file without
            a sidecar (e.g. a torchvision weights file) loads unverified, with ``meta`` None.

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
    meta = read_meta(path)
    if verify and meta is not None:
        expected = meta.get("sha256")
        actual = sha256_file(path)
        if expected != actual:
            raise CheckpointError(
                f"checkpoint {path} does not match its sidecar {sidecar_path(path)}: sha256 expected {expected}, "
                f"actual {actual} (the file was modified, truncated or replaced after it was saved)")
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


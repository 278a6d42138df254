"""artlib.checkpoints: atomic save, JSON sidecar with sha256, weights_only load, clear errors."""
import argparse
import datetime as dt
import hashlib
import json
import os

import pytest
import torch

from artlib import checkpoints
from artlib.checkpoints import CheckpointError, CheckpointNotFoundError, UnsafeCheckpointError


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_and_sidecar(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "epoch": 3, "nested": {"ids": [1, 2], "name": "x"}}
    path = tmp_path / "runs" / "last.pt"  # parent folders are created
    out = checkpoints.save(path, state, config={"arch": "small-cnn", "root": tmp_path, "lr": torch.tensor(0.1)},
                           metrics={"acc": 0.5})
    assert out == path and path.is_file()
    assert _files(path.parent) == ["last.pt", "last.pt.json"]  # no temp files left

    loaded, meta = checkpoints.load(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["epoch"] == 3 and loaded["nested"] == state["nested"]

    side = json.loads((tmp_path / "runs" / "last.pt.json").read_text())
    assert side == meta
    assert side["sha256"] == checkpoints.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert side["size"] == path.stat().st_size
    assert side["torch"] == torch.__version__
    assert side["file"] == "last.pt" and side["format"] == checkpoints.SIDECAR_FORMAT
    assert side["config"] == {"arch": "small-cnn", "root": str(tmp_path), "lr": pytest.approx(0.1)}
    assert side["metrics"] == {"acc": 0.5}
    created = dt.datetime.fromisoformat(side["created"])
    assert created.tzinfo is not None and abs((dt.datetime.now(dt.timezone.utc) - created).total_seconds()) < 600


def test_model_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = checkpoints.save(tmp_path / "m.pt", net.state_dict())
    state, meta = checkpoints.load(path)
    assert meta["config"] is None and meta["metrics"] is None
    other = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    other.load_state_dict(state)
    for a, b in zip(net.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_sha256_file(tmp_path):
    p = tmp_path / "bytes.bin"
    p.write_bytes(b"abc" * 1000)
    assert checkpoints.sha256_file(p, chunk_size=7) == hashlib.sha256(b"abc" * 1000).hexdigest()


def test_hash_mismatch_names_path_and_both_hashes(tmp_path):
    path = checkpoints.save(tmp_path / "a.pt", {"w": torch.zeros(100)})
    expected = checkpoints.sha256_file(path)
    # Replace the file with another valid checkpoint: only the hash can tell.
    torch.save({"w": torch.ones(100)}, path)
    actual = checkpoints.sha256_file(path)
    with pytest.raises(CheckpointError) as err:
        checkpoints.load(path)
    msg = str(err.value)
    assert str(path) in msg and expected in msg and actual in msg
    state, _ = checkpoints.load(path, verify=False)  # explicit opt-out still works
    assert torch.equal(state["w"], torch.ones(100))


def test_truncated_file(tmp_path):
    path = checkpoints.save(tmp_path / "t.pt", {"w": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="sha256"):  # with its sidecar: the hash catches it first
        checkpoints.load(path)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        checkpoints.load(path, verify=False)
    assert str(path) in str(err.value)
    checkpoints.sidecar_path(path).unlink()  # without a sidecar: torch.load's failure becomes the clear error
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoints.load(path)


def test_garbage_and_empty_files(tmp_path):
    for name, payload in [("empty.pt", b""), ("junk.pt", b"not a checkpoint at all")]:
        p = tmp_path / name
        p.write_bytes(payload)
        with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
            checkpoints.load(p)
        assert str(p) in str(err.value)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointNotFoundError) as err:
        checkpoints.load(path)
    assert isinstance(err.value, FileNotFoundError) and str(path) in str(err.value)


def test_weights_only_refusal(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"w": torch.zeros(2), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace") as err:
        checkpoints.load(path)
    assert "weights_only=True" in str(err.value)


def test_failed_save_leaves_target_untouched(tmp_path):
    path = checkpoints.save(tmp_path / "c.pt", {"w": torch.zeros(3)}, metrics={"epoch": 1})
    before = path.read_bytes(), checkpoints.sidecar_path(path).read_bytes()

    with pytest.raises(Exception):  # a lambda cannot be pickled: torch.save fails midway
        checkpoints.save(path, {"w": torch.ones(3), "f": lambda x: x}, metrics={"epoch": 2})
    assert (path.read_bytes(), checkpoints.sidecar_path(path).read_bytes()) == before
    assert _files(tmp_path) == ["c.pt", "c.pt.json"]

    with pytest.raises(TypeError, match="JSON"):  # a bad config fails before anything is written
        checkpoints.save(path, {"w": torch.ones(3)}, config={"obj": object()})
    assert (path.read_bytes(), checkpoints.sidecar_path(path).read_bytes()) == before
    assert _files(tmp_path) == ["c.pt", "c.pt.json"]
    state, meta = checkpoints.load(path)
    assert torch.equal(state["w"], torch.zeros(3)) and meta["metrics"] == {"epoch": 1}


def test_save_interrupted_after_partial_write(tmp_path, monkeypatch):
    path = checkpoints.save(tmp_path / "d.pt", {"w": torch.zeros(3)})
    before = path.read_bytes()

    def partial_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # also BaseException, e.g. Ctrl-C in a notebook

    monkeypatch.setattr(torch, "save", partial_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(path, {"w": torch.ones(3)})
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save(tmp_path / "new.pt", {"w": torch.ones(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["d.pt", "d.pt.json"]  # no temp file, no half-written new.pt
    checkpoints.load(path)


def test_bad_config_type(tmp_path):
    with pytest.raises(TypeError, match="config"):
        checkpoints.save(tmp_path / "x.pt", {}, config=["not", "a", "dict"])
    assert not os.listdir(tmp_path)

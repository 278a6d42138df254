"""Verified downloads (artlib.fetch, data.download / data.ensure) against a loopback HTTP server the tests start.

The server serves tiny archives built in each dataset's official format (tests/fixtures_data.py), with behaviours
chosen by the first path component of the URL (``$ARTLIB_MIRROR`` points there): ``ok`` (honours ``Range``),
``html`` (a 200 quota page), ``sniff`` (an HTML body sent as application/octet-stream), ``drop`` (the first answer
of each file stops half-way), ``dropall`` (every answer stops half-way), ``norange`` (drops, then ignores ``Range``),
``gone`` (404) and ``down`` (503).
"""
from __future__ import annotations

import hashlib
import http.server
import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from artlib import data, fetch
from artlib.__main__ import main as cli
from fixtures_data import write_flowers, write_official_archives, write_trimaps

HTML = b"<!DOCTYPE html>\n<html><head><title>Quota exceeded</title></head><body>Too many users</body></html>\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict = {}        # file name -> bytes
    log: list = []          # (mode, file name, Range header or None)
    answered: dict = {}     # (mode, file name) -> answers so far

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        _, mode, name = self.path.split("/", 2)
        rng = self.headers.get("Range")
        self.log.append((mode, name, rng))
        n = self.answered[(mode, name)] = self.answered.get((mode, name), 0) + 1
        if mode in ("gone", "down"):
            self.send_error(404 if mode == "gone" else 503)
            return
        if mode == "html":
            return self._send(200, HTML, "text/html; charset=utf-8")
        if mode == "sniff":
            return self._send(200, HTML, "application/octet-stream")
        body = self.files[name]
        start = int(rng.split("=")[1].rstrip("-")) if rng and mode != "norange" else 0
        cut = (mode == "dropall" or (mode in ("drop", "norange") and n == 1))
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body) - start))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        chunk = body[start:]
        self.wfile.write(chunk[:max(1, len(chunk) // 2)] if cut else chunk)
        if cut:
            self.close_connection = True

    def _send(self, status, body, ctype):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(autouse=True)
def _weights_cache(tmp_path, monkeypatch):
    """Weights given by URL land under the test's folder, never in the user's torch hub cache."""
    monkeypatch.setenv("ARTLIB_WEIGHTS", str(tmp_path / "weights-cache"))


@pytest.fixture
def server():
    """A loopback HTTP server in a thread: ``(base URL, handler class)``; files go in ``handler.files``."""
    handler = type("Handler", (_Handler,), {"files": {}, "log": [], "answered": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _serve_blob(handler, name="blob.tar.gz", size=300_000):
    body = os.urandom(size)
    handler.files[name] = body
    return body


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# ------------------------------------------------------------------------------------------------------- fetch
def test_mirror_url_keeps_the_file_name(monkeypatch):
    url = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
    monkeypatch.delenv("ARTLIB_MIRROR", raising=False)
    assert fetch.mirror_url(url) == url
    monkeypatch.setenv("ARTLIB_MIRROR", "http://mirror.example.org/datasets/")
    assert fetch.mirror_url(url) == "http://mirror.example.org/datasets/CUB_200_2011.tgz"
    with pytest.raises(ValueError, match="names no file"):
        fetch.file_name("https://example.org/")


def test_fetch_verifies_and_skips_a_verified_file(server, tmp_path):
    base, handler = server
    body = _serve_blob(handler)
    dest = tmp_path / "dl" / "blob.tar.gz"
    got = fetch.fetch("https://official.example/x/blob.tar.gz", dest, md5=_md5(body),
                      sha256=hashlib.sha256(body).hexdigest(), progress=False, mirror=base + "/ok")
    assert got == dest and dest.read_bytes() == body and _files_under(tmp_path / "dl") == ["blob.tar.gz"]
    fetch.fetch("https://official.example/x/blob.tar.gz", dest, md5=_md5(body), progress=False, mirror=base + "/ok")
    assert len(handler.log) == 1                                   # verified already: not downloaded again


@pytest.mark.parametrize("mode", ["html", "sniff"])
def test_an_html_page_is_one_line_naming_the_url(server, tmp_path, mode):
    base, handler = server
    _serve_blob(handler)
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "blob.tar.gz", md5="0" * 32, progress=False,
                    mirror=f"{base}/{mode}")
    msg = str(err.value)
    assert "\n" not in msg and f"{base}/{mode}/blob.tar.gz" in msg and "HTML page" in msg and "Quota" in msg
    assert _files_under(tmp_path) == []                            # neither the file nor a .part


def test_a_dropped_connection_resumes_with_range(server, tmp_path):
    base, handler = server
    body = _serve_blob(handler)
    dest = fetch.fetch("https://x/blob.tar.gz", tmp_path / "blob.tar.gz", md5=_md5(body), progress=False,
                       mirror=base + "/drop")
    assert dest.read_bytes() == body
    assert [r for _, _, r in handler.log] == [None, f"bytes={len(body) // 2}-"]


def test_a_server_ignoring_range_restarts_the_file(server, tmp_path):
    base, handler = server
    body = _serve_blob(handler)
    dest = fetch.fetch("https://x/blob.tar.gz", tmp_path / "blob.tar.gz", md5=_md5(body), progress=False,
                       mirror=base + "/norange")
    assert dest.read_bytes() == body and len(handler.log) == 2 and handler.log[1][2] is not None


def test_a_truncated_file_is_one_line_and_resumes_on_the_next_run(server, tmp_path):
    base, handler = server
    body = _serve_blob(handler)
    dest = tmp_path / "blob.tar.gz"
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch("https://x/blob.tar.gz", dest, md5=_md5(body), progress=False, retries=1,
                    mirror=base + "/dropall")
    msg = str(err.value)
    assert "\n" not in msg and "truncated" in msg and f"of {len(body):,d} bytes" in msg and base in msg
    assert not dest.exists() and (tmp_path / "blob.tar.gz.part").exists()   # kept to resume, never as dest
    have = (tmp_path / "blob.tar.gz.part").stat().st_size
    fetch.fetch("https://x/blob.tar.gz", dest, md5=_md5(body), progress=False, mirror=base + "/ok")
    assert dest.read_bytes() == body and handler.log[-1][2] == f"bytes={have}-"
    assert not (tmp_path / "blob.tar.gz.part").exists()


def test_a_checksum_mismatch_is_one_line_and_removes_the_file(server, tmp_path):
    base, handler = server
    body = _serve_blob(handler)
    with pytest.raises(fetch.FetchError) as err:
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "blob.tar.gz", md5="0" * 32, progress=False,
                    mirror=base + "/ok")
    msg = str(err.value)
    assert "\n" not in msg and f"md5 {_md5(body)}" in msg and "0" * 32 in msg and f"{len(body):,d} bytes" in msg
    assert _files_under(tmp_path) == []
    with pytest.raises(fetch.FetchError, match="sha256"):
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "blob.tar.gz", sha256="f" * 64, progress=False,
                    mirror=base + "/ok")


def test_http_errors_and_an_unreachable_host(server, tmp_path):
    base, handler = server
    _serve_blob(handler)
    with pytest.raises(fetch.FetchError, match="HTTP 404") as err:
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "a" / "blob.tar.gz", progress=False, mirror=base + "/gone")
    assert not isinstance(err.value, fetch.Offline)
    with pytest.raises(fetch.Offline, match="HTTP 503"):
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "a" / "blob.tar.gz", progress=False, mirror=base + "/down")
    with pytest.raises(fetch.Offline, match="cannot reach"):
        fetch.fetch("https://x/blob.tar.gz", tmp_path / "a" / "blob.tar.gz", progress=False,
                    mirror="http://127.0.0.1:9")                    # the discard port: connection refused
    assert _files_under(tmp_path) == []                            # not even the folder


# ----------------------------------------------------------------------------------------------------- extract
def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for info, payload in members:
            info.size = len(payload) if info.isfile() else 0
            t.addfile(info, io.BytesIO(payload) if info.isfile() else None)
    return path


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil.txt", "link-out", "hardlink-out"])
def test_extract_refuses_members_outside_the_target(tmp_path, bad):
    ok = tarfile.TarInfo("data/ok.txt")
    if bad.startswith("link") or bad.startswith("hard"):
        evil = tarfile.TarInfo(f"data/{bad}")
        evil.type = tarfile.SYMTYPE if bad.startswith("link") else tarfile.LNKTYPE
        evil.linkname = "../../outside.txt"
    else:
        evil = tarfile.TarInfo(bad)
    archive = _tar(tmp_path / "evil.tgz", [(ok, b"fine"), (evil, b"payload")])
    into = tmp_path / "root"
    with pytest.raises(fetch.FetchError) as err:
        fetch.extract(archive, into)
    assert "refusing" in str(err.value) and str(archive) in str(err.value) and "\n" not in str(err.value)
    assert not into.exists() and _files_under(tmp_path) == ["evil.tgz"]


def test_a_corrupt_archive_leaves_nothing(tmp_path):
    good = _tar(tmp_path / "good.tgz", [(tarfile.TarInfo(f"data/f{i}.bin"), os.urandom(50_000)) for i in range(4)])
    bad = tmp_path / "bad.tgz"
    bad.write_bytes(good.read_bytes()[:len(good.read_bytes()) * 2 // 3])   # cut inside the third member
    into = tmp_path / "root"
    into.mkdir()
    (into / "kept.txt").write_text("already here")
    with pytest.raises(fetch.FetchError, match="bad.tgz"):
        fetch.extract(bad, into)
    assert _files_under(into) == ["kept.txt"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.tgz", "good.tgz", "root"]
    fetch.extract(good, into)
    assert _files_under(into) == ["data", "data/f0.bin", "data/f1.bin", "data/f2.bin", "data/f3.bin", "kept.txt"]


# --------------------------------------------------------------------------------- datasets on the loopback mirror
DATASETS = [("cifar10", "test", 6, {}), ("svhn", "test", 7, {}), ("gtsrb", "test", 4, {}),
            ("flowers17", "val", 51, {"protocol": "official"}), ("cub200", "train", 2, {}),
            ("cifar10c", "test", 15, {"corruption": "fog", "regenerate": False})]


def _mirror(server, tmp_path, monkeypatch, name, mode="ok"):
    """Serve ``name``'s official files on the loopback server with the test archives' md5s put in
    ``data.DOWNLOADS``; returns the {file name: bytes} served."""
    base, handler = server
    served = write_official_archives(name, tmp_path / "src", tmp_path / "srv")
    handler.files.update({f: p.read_bytes() for f, p in served.items()})
    entries = [(url, _md5(handler.files[fetch.file_name(url)]), into) for url, _, into in data.DOWNLOADS[name]]
    monkeypatch.setitem(data.DOWNLOADS, name, entries)
    monkeypatch.setenv("ARTLIB_MIRROR", f"{base}/{mode}")
    return handler.files


@pytest.mark.parametrize("name,split,n,options", DATASETS)
def test_download_official_formats_from_the_mirror(server, tmp_path, monkeypatch, name, split, n, options):
    files = _mirror(server, tmp_path, monkeypatch, name)
    root = tmp_path / "root"
    path = data.download(name, root, progress=False)
    assert path.is_dir() and str(path).startswith(str(root)) and not (root / "_downloads").exists()
    assert len(data.load_dataset(name, split, root=root, **options)) == n
    asked = [f for _, f, _ in server[1].log]
    assert sorted(asked) == sorted(files) == sorted(fetch.file_name(u) for u, _, _ in data.DOWNLOADS[name])
    assert len(data.load_dataset(name, split, root=tmp_path / "fresh", download=True, **options)) == n


def test_trimaps_download_checks_the_structure(server, tmp_path, monkeypatch):
    _mirror(server, tmp_path, monkeypatch, "flowers17-trimaps")
    root = tmp_path / "root"
    write_trimaps(tmp_path / "imgs")
    (root / "flowers17").mkdir(parents=True)
    os.replace(tmp_path / "imgs" / "flowers17" / "jpg", root / "flowers17" / "jpg")
    assert not data.available("flowers17-trimaps", root)
    assert data.download("flowers17-trimaps", root, progress=False) == root / "flowers17" / "trimaps"
    assert data.available("flowers17-trimaps", root)


def test_a_failed_file_leaves_nothing_of_the_dataset_in_the_root(server, tmp_path, monkeypatch):
    """GTSRB has three archives: the third one's checksum fails, so neither of the first two is extracted; the
    verified ones stay in _downloads, and the next run fetches only what is missing."""
    files = _mirror(server, tmp_path, monkeypatch, "gtsrb")
    entries = list(data.DOWNLOADS["gtsrb"])
    entries[2] = (entries[2][0], "0" * 32, entries[2][2])
    monkeypatch.setitem(data.DOWNLOADS, "gtsrb", entries)
    root = tmp_path / "root"
    with pytest.raises(fetch.FetchError, match="GTSRB_Final_Test_GT.zip: md5"):
        data.download("gtsrb", root, progress=False)
    assert _files_under(root) == ["_downloads", "_downloads/GTSRB_Final_Test_Images.zip",
                                  "_downloads/GTSRB_Final_Training_Images.zip"]
    entries[2] = (entries[2][0], _md5(files["GTSRB_Final_Test_GT.zip"]), entries[2][2])
    n_before = len(server[1].log)
    data.download("gtsrb", root, progress=False)
    assert [f for _, f, _ in server[1].log[n_before:]] == ["GTSRB_Final_Test_GT.zip"]
    assert len(data.load_dataset("gtsrb", "test", root=root)) == 4 and not (root / "_downloads").exists()


def test_a_dropped_dataset_download_resumes(server, tmp_path, monkeypatch):
    _mirror(server, tmp_path, monkeypatch, "cub200", mode="drop")
    data.download("cub200", tmp_path / "root", progress=False)
    assert [r is not None for _, _, r in server[1].log] == [False, True]
    assert len(data.load_dataset("cub200", "test", root=tmp_path / "root")) > 0


def test_ensure_reports_found_downloaded_manual_and_offline(server, tmp_path, monkeypatch):
    _mirror(server, tmp_path, monkeypatch, "svhn")
    root = tmp_path / "root"
    write_flowers(root)
    rows = {r["name"]: r for r in data.ensure(["flowers17", "svhn", "imagenet"], root, progress=False)}
    assert {n: r["state"] for n, r in rows.items()} == {"flowers17": "found", "svhn": "downloaded",
                                                          "imagenet": "manual"}
    assert "image-net.org" in rows["imagenet"]["message"] and str(root / "imagenet") in rows["imagenet"]["message"]
    monkeypatch.setenv("ARTLIB_MIRROR", "http://127.0.0.1:9")
    before = _files_under(root)
    row, = data.ensure(["cub200"], root, progress=False)
    assert row["state"] == "offline" and "127.0.0.1:9/CUB_200_2011.tgz" in row["message"]
    assert _files_under(root) == before


def test_cli_ensure_exit_status_and_lines(server, tmp_path, monkeypatch, capsys):
    _mirror(server, tmp_path, monkeypatch, "cifar10", mode="html")
    root = tmp_path / "root"
    samples = []   # without CIFAR-10 the command falls back to the foolbox samples (PyPI): recorded, not fetched
    monkeypatch.setattr(data, "fetch_foolbox_samples", lambda r=None: samples.append(r) or Path(r) / "foolbox")
    assert cli(["data", "ensure", "cifar10", "--root", str(root), "--no-progress"]) == 2
    out = capsys.readouterr().out
    line, = [ln for ln in out.splitlines() if ln.startswith("cifar10 ") and "failed" in ln]
    assert "HTML page" in line and "cifar-10-python.tar.gz" in line and samples == [str(root)]
    monkeypatch.setenv("ARTLIB_MIRROR", f"{server[0]}/ok")
    assert cli(["data", "ensure", "cifar10", "--root", str(root), "--no-progress"]) == 0
    assert "cifar10            downloaded" in capsys.readouterr().out
    assert cli(["data", "ensure", "cifar10", "--root", str(root), "--no-progress"]) == 0
    assert "cifar10            found" in capsys.readouterr().out


def test_profile_datasets_and_paper_needs(tmp_path, monkeypatch):
    from artlib import reproduce
    smoke, paper = reproduce.profile_datasets("smoke"), reproduce.profile_datasets("paper")
    assert smoke == ["cifar10", "gtsrb", "cub200"] and set(smoke) < set(paper)
    assert {"svhn", "flowers17", "flowers17-trimaps", "cifar10c", "imagenet"} <= set(paper)
    monkeypatch.setenv("ARTLIB_DATA", str(tmp_path))
    write_flowers(tmp_path)
    by_name = {e.notebook: e for e in reproduce.MANIFEST}
    assert reproduce.missing_data(by_name["21_ineq_fig2_attributions.ipynb"], "paper") == ["cifar10:test",
                                                                                           "imagenet:val"]
    assert reproduce.missing_data(by_name["14_art_fig7_segmentation.ipynb"], "paper") == [
        "cub200:train", "cub200:test", "flowers17-trimaps"]
    assert reproduce.missing_data(by_name["21_ineq_fig2_attributions.ipynb"], "smoke") == ["cifar10:test"]


# ------------------------------------------------------------------------------------------ external weights
def _serve_torch(handler, name, obj) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    handler.files[name] = buf.getvalue()
    return handler.files[name]


def _same(a, b) -> bool:
    import torch
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_weights_by_url_are_fetched_once_and_verified(server, tmp_path, monkeypatch):
    from artlib import models
    base, handler = server
    monkeypatch.setenv("ARTLIB_WEIGHTS", str(tmp_path / "weights"))
    src = models.build_model("small-cnn", 10)
    body = _serve_torch(handler, "small.pt", src.state_dict())
    url = f"{base}/ok/small.pt"
    model = models.build_model("small-cnn", 10, pretrained=url)
    assert _same(model, src) and (tmp_path / "weights" / "small.pt").read_bytes() == body
    fresh = models.build_model("small-cnn", 10)
    models.load_torchvision_weights(fresh, url, sha256=hashlib.sha256(body).hexdigest())
    assert _same(fresh, src) and len(handler.log) == 1                # cached and verified: not fetched again
    with pytest.raises(fetch.FetchError, match="sha256 .* differs from the expected f{64}"):
        models.weights_file(f"{base}/ok/small.pt", sha256="f" * 64,
                            cache=tmp_path / "other")
    assert _files_under(tmp_path / "other") == []


def test_weights_by_url_refuse_html_and_a_wrong_name_prefix(server, tmp_path):
    from artlib import models
    base, handler = server
    with pytest.raises(fetch.FetchError, match="HTML page") as err:
        models.build_model("small-cnn", 10, pretrained=f"{base}/html/resnet50.pth")
    assert "\n" not in str(err.value)
    _serve_torch(handler, "small-deadbeef.pt", models.build_model("small-cnn", 10).state_dict())
    with pytest.raises(fetch.FetchError, match="does not start with deadbeef"):
        models.weights_file(f"{base}/ok/small-deadbeef.pt", cache=tmp_path / "w")
    assert _files_under(tmp_path / "w") == []


def test_weights_that_are_not_tensor_only_state_dicts_are_refused(server, tmp_path):
    import argparse
    import torch
    from artlib import models
    from artlib.checkpoints import UnsafeCheckpointError
    base, handler = server
    sd = models.build_model("small-cnn", 10).state_dict()
    _serve_torch(handler, "notes.pt", {**sd, "note": "trained on tuesday"})         # weights_only reads it
    with pytest.raises(UnsafeCheckpointError, match=r"not a tensor-only state dict.*'note'.*--trust-pickle"):
        models.load_torchvision_weights(models.build_model("small-cnn", 10), f"{base}/ok/notes.pt")
    net = models.build_model("small-cnn", 10).net
    ckpt = {"model": {f"module.model.{k}": v for k, v in net.state_dict().items()}, "epoch": torch.tensor(7),
            "args": argparse.Namespace(arch="small")}                                 # needs unpickling
    body = _serve_torch(handler, "small_linf_eps4.0.ckpt", ckpt)
    url, digest = f"{base}/ok/small_linf_eps4.0.ckpt", hashlib.sha256(body).hexdigest()
    out = tmp_path / "small_linf4.pt"
    cmd = ["models", "convert", url, "--sha256", digest, "--out", str(out)]
    with pytest.raises(UnsafeCheckpointError, match="--trust-pickle"):
        models.load_robustness_checkpoint(url, "small-cnn", num_classes=10, sha256=digest)
    assert cli(cmd) == 2 and not out.exists()
    assert cli(cmd + ["--trust-pickle"]) == 0
    loaded = models.load_robustness_checkpoint(out, "small-cnn", num_classes=10)
    assert all(torch.equal(a, b) for a, b in zip(loaded.net.state_dict().values(), net.state_dict().values()))
    assert cli(["models", "convert", url, "--sha256", "0" * 64, "--out", str(tmp_path / "x.pt"),
                "--trust-pickle"]) == 2 and not (tmp_path / "x.pt").exists()


def test_pretrained_imagenet_is_torchvisions_file_fetched_with_its_hash_prefix(server, tmp_path, monkeypatch):
    """``pretrained="imagenet"``: torchvision's IMAGENET1K_V1 file in torch hub's cache, downloaded with its hash
    prefix checked; offline or a wrong hash ends in one line naming the URL and the override, and leaves no file."""
    import torch
    import torchvision
    from artlib import checkpoints, models
    base, handler = server
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    name = fetch.file_name(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    assert name == "resnet18-f37072fd.pth"
    monkeypatch.setenv("ARTLIB_MIRROR", "http://127.0.0.1:9")                      # offline
    with pytest.raises(checkpoints.CheckpointError) as err:
        models.build_model("resnet18-imagenet", 200, pretrained="imagenet")
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and f"127.0.0.1:9/{name}" in msg and "pretrained=<local weights file>" in msg
    torch.manual_seed(3)
    tv = torchvision.models.resnet18()                                  # stands in for the ImageNet weights
    _serve_torch(handler, name, tv.state_dict())
    monkeypatch.setenv("ARTLIB_MIRROR", f"{base}/ok")
    with pytest.raises(checkpoints.CheckpointError, match="does not start with f37072fd"):
        models.imagenet_weights("resnet18-imagenet", progress=False)
    assert not any((tmp_path / "torch").rglob("*.pth*"))                # nothing half-written left
    cached = tmp_path / "torch" / "hub" / "checkpoints" / name           # put there by hand: used as it is
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(handler.files[name])
    assert models.imagenet_weights("resnet18-imagenet", progress=False) == cached
    model = models.build_model("resnet18-imagenet", 200, pretrained="imagenet")
    body = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(model.net.state_dict()[k], v) for k, v in body.items())
    assert model.net.fc.out_features == 200                             # a new head for CUB's 200 classes
    with pytest.raises(ValueError, match="no torchvision ImageNet weights for arch 'small-cnn'; choices: resnet50"):
        models.imagenet_weights("small-cnn")

"""Verified downloads: one resumable, checksum-checked fetch and one atomic archive extraction.

Everything artlib downloads from the web (the datasets' official archives, external checkpoints given by URL) goes
through :func:`fetch` and :func:`extract`, so each failure ends in one line naming the URL and what was received:

* an HTML page where a file was expected (quota, login and virus-scan pages of file hosts; what RobustBench users
  meet as ``invalid load key '<'``),
* a truncated body (a dropped connection: resumed with an HTTP ``Range`` request, ``retries`` times),
* a checksum mismatch (md5 and / or sha256; the bad file is removed),
* an unreachable host (:class:`Offline`, so callers can fall back to what is on disk).

``$ARTLIB_MIRROR`` (a base URL) replaces the official hosts, with the same file names: institutional mirrors and the
loopback server of the tests. Example::

    >>> from artlib import fetch
    >>> path = fetch.fetch("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "data/_downloads/c.tar.gz",
    ...                    md5="c58f30108f718f92721af3b95e74349a")                    # doctest: +SKIP
    >>> fetch.extract(path, "data")                                                     # doctest: +SKIP
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from artlib.checkpoints import is_html_head, looks_like_html

__all__ = ["FetchError", "Offline", "mirror_url", "file_name", "digest", "fetch", "extract", "merge_into",
           "ARCHIVE_SUFFIXES"]

#: File names that :func:`extract` unpacks (everything else is kept as downloaded).
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CHUNK = 1 << 20


class FetchError(RuntimeError):
    """A download or an extraction failed; the message is the one line to show."""


class Offline(FetchError):
    """The host could not be reached (no network, DNS failure, connection refused) or is down (HTTP 5xx, 429)."""


def file_name(url: str) -> str:
    """The file name of ``url``'s path, query string dropped: ``.../CUB_200_2011.tgz?download=1`` ->
    ``CUB_200_2011.tgz``."""
    name = urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name:
        raise ValueError(f"{url!r} names no file")
    return name


def mirror_url(url: str, mirror: str | None = None) -> str:
    """``url`` itself, or ``<mirror>/<file name>`` when a mirror is given or ``$ARTLIB_MIRROR`` is set."""
    mirror = mirror if mirror is not None else os.environ.get("ARTLIB_MIRROR", "")
    return f"{mirror.rstrip('/')}/{file_name(url)}" if mirror else url


def digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"md5"`` or ``"sha256"``), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _check_sums(path: Path, url: str, md5: str | None, sha256: str | None) -> str | None:
    """None when ``path`` matches every given checksum, else the one-line reason."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected and digest(path, algorithm) != expected.lower():
            return (f"{url}: {algorithm} {digest(path, algorithm)} of the {path.stat().st_size:,d} bytes received "
                    f"differs from the expected {expected}")
    return None


def _html_line(url: str, head: bytes, ctype: str, expected: str) -> str:
    text = head[:80].decode("utf-8", "replace").replace("\n", " ").strip()
    return (f"{url}: received an HTML page ({ctype or 'no Content-Type'}, starting {text!r}) where {expected} was "
            f"expected (a quota, login or virus-scan page of the host?); try again later, or set ARTLIB_MIRROR")


def fetch(url: str, dest: str | os.PathLike, *, md5: str | None = None, sha256: str | None = None,
          progress: bool = True, retries: int = 3, timeout: float = 60.0, mirror: str | None = None) -> Path:
    """Download ``url`` to ``dest``, verified; returns ``dest``.

    The body goes to ``<dest>.part`` and is moved onto ``dest`` only once complete and checked, so ``dest`` never
    holds a partial or unverified file. A dropped connection or a body shorter than its ``Content-Length`` is resumed
    from where it stopped (``Range: bytes=N-``; a server answering 200 instead of 206 restarts it), up to
    ``retries`` more times; a ``.part`` left by an earlier interrupted call is resumed too. A ``dest`` already there
    that matches the checksums (any ``dest`` when none are given) is not downloaded again.

    Args:
        url: the official URL; ``$ARTLIB_MIRROR`` (or ``mirror``) replaces its host (:func:`mirror_url`).
        md5, sha256: expected hex digests (either, both, or none when the source publishes none).
        progress: a tqdm bar over the bytes.
    Raises:
        Offline: the host cannot be reached. FetchError: an HTTP error, an HTML page, a truncated body after the
        retries, or a checksum mismatch (the file is removed) — each one line naming the URL.
    """
    dest = Path(dest)
    src = mirror_url(url, mirror)
    if dest.is_file() and _check_sums(dest, src, md5, sha256) is None:   # only ever written complete and verified
        return dest
    part = dest.with_name(dest.name + ".part")
    received = expected = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(src, headers={"User-Agent": "artlib", "Accept-Encoding": "identity",
                                                       **({"Range": f"bytes={have}-"} if have else {})})
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:        # the .part is already complete (or longer than the file): restart
                part.unlink()
                continue
            kind = Offline if exc.code >= 500 or exc.code == 429 else FetchError   # the host is down / throttling
            raise kind(f"{src}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise Offline(f"{src}: cannot reach the host ({reason})") from None
        with response:
            ctype = response.headers.get("Content-Type", "")
            resumed = have and response.status == 206
            length = response.headers.get("Content-Length")
            expected = (have if resumed else 0) + int(length) if length is not None else None
            try:
                first = response.read(min(_CHUNK, 512) if not resumed else _CHUNK)
                if not resumed and ("text/html" in ctype.lower() or is_html_head(first)) \
                        and not dest.name.endswith((".html", ".htm")):
                    part.unlink(missing_ok=True)
                    raise FetchError(_html_line(src, first, ctype, dest.name))
                dest.parent.mkdir(parents=True, exist_ok=True)   # only once the host answered with the file
                with open(part, "ab" if resumed else "wb") as out, _bar(progress, dest.name, expected,
                                                                         have if resumed else 0) as bar:
                    while first:
                        out.write(first)
                        bar.update(len(first))
                        first = response.read(_CHUNK)
            except (http.client.IncompleteRead, ConnectionError, socket.timeout, OSError):
                pass                            # a dropped connection: resumed below while tries are left
        received = part.stat().st_size if part.exists() else 0
        if expected is None or received >= expected:
            break
    else:
        raise FetchError(f"{src}: truncated: received {received:,d} of {expected:,d} bytes after {retries + 1} "
                         f"tries; run again to resume from {part}")
    bad = _check_sums(part, src, md5, sha256)
    if bad is None and not (md5 or sha256) and looks_like_html(part) and not dest.name.endswith((".html", ".htm")):
        bad = _html_line(src, part.read_bytes()[:512], "", dest.name)
    if bad is not None:
        part.unlink()
        raise FetchError(bad)
    os.replace(part, dest)
    return dest


class _NoBar:
    def update(self, n):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _bar(progress: bool, name: str, total: int | None, initial: int):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


# ------------------------------------------------------------------------------------------------------- extraction
def _unsafe(name: str) -> bool:
    parts = Path(name).parts
    return name.startswith(("/", "\\")) or Path(name).is_absolute() or ".." in parts or (parts and ":" in parts[0])


def _members(archive: Path) -> list[str]:
    """The member names of a tar / zip archive, refusing absolute paths, ``..`` and links that leave the archive."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                names = z.namelist()
        else:
            with tarfile.open(archive) as t:
                members = t.getmembers()
            names = [m.name for m in members]
            for m in members:
                if m.isdev():
                    raise FetchError(f"{archive}: refusing to extract the device file {m.name!r}")
                if (m.issym() or m.islnk()) and (_unsafe(m.linkname) or _unsafe(
                        os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname)))):
                    raise FetchError(f"{archive}: refusing to extract {m.name!r}, a link to {m.linkname!r} outside "
                                     f"the archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise FetchError(f"{archive}: not a readable tar or zip archive ({exc})") from None
    for name in names:
        if _unsafe(name):
            raise FetchError(f"{archive}: refusing to extract {name!r}, a path outside the target folder")
    return names


def _merge(src: Path, dst: Path) -> None:
    """Move the tree ``src`` onto ``dst``: folders merged, files replaced (each move an ``os.replace``)."""
    if dst.is_dir() and src.is_dir() and not src.is_symlink():
        for child in src.iterdir():
            _merge(child, dst / child.name)
    else:
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)


def merge_into(tree: str | os.PathLike, into: str | os.PathLike) -> None:
    """Move every entry of the folder ``tree`` into ``into`` (folders merged, files replaced; each an ``os.replace``
    within one file system)."""
    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    for child in sorted(Path(tree).iterdir()):
        _merge(child, into / child.name)


def extract(archive: str | os.PathLike, into: str | os.PathLike) -> Path:
    """Extract a tar (any compression) or zip ``archive`` into the folder ``into``; returns ``into``.

    The archive is unpacked into a temporary folder beside the archive (same file system), checked member by member
    (no absolute paths, no ``..``, no links leaving it, no device files), and only then moved into ``into``
    (folders merged, files replaced), so a corrupt or hostile archive leaves nothing in ``into``; the temporary
    folder is removed on success and on every failure. Raises FetchError (one line naming the archive).
    """
    archive, into = Path(archive), Path(into)
    _members(archive)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=archive.parent))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    z.extractall(tmp)
            else:
                with tarfile.open(archive) as t:
                    t.extractall(tmp, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise FetchError(f"{archive}: extraction failed ({exc})") from None
        merge_into(tmp, into)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into

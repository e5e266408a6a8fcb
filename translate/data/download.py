"""Downloading and unpacking dataset archives safely.

- Streaming download to ``NAME.part`` with a progress callback; an existing ``.part`` is resumed with an HTTP
  Range request (a server that ignores Range restarts it from zero); retries with exponential backoff and a
  socket timeout; the expected size and sha256 are checked when known; the finished file is renamed into
  place atomically, so a complete-looking archive is always a complete one.
- Extraction refuses absolute member paths, ``..`` components, and symbolic or hard links (zip or tar),
  tests a zip's CRCs first, unpacks into a temporary folder beside the target and renames it into place:
  an interrupted or refused extraction leaves nothing half-written under the final name.
- Free disk space is checked before downloading and before extracting.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from translate.errors import TranslateError

CHUNK = 1 << 20
USER_AGENT = "translate-datasets/1"


class DownloadError(TranslateError):
    """A download or an extraction failed; the message says why and what to do."""


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def check_free_space(folder: Path, needed: int | None, what: str) -> None:
    if not needed:
        return
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DownloadError(f"not enough disk space for {what}: {needed / 1e9:.2f} GB needed in {folder}, "
                            f"{free / 1e9:.2f} GB free")


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None) -> None:
    """One attempt: append to `part` from where it ends (Range), or restart it if the server ignores Range."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part is already complete (or longer than the file)
            return
        raise
    with response:
        if have and response.status != 206:  # Range ignored: the body is the whole file
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if length and length.isdigit():  # the server says how much is coming: check it fits
            check_free_space(part.parent, int(length), part.name)
        with part.open("ab" if have else "wb") as out:
            done = have
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")


def download(url: str, dest: str | Path, size: int | None = None, sha256: str | None = None, retries: int = 4,
             timeout: float = 30.0, backoff: float = 1.0, progress: Progress | None = None) -> Path:
    """Download `url` to `dest` (resuming ``dest.part``), verify it, and rename it into place."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(dest.parent, size, f"{dest.name}")
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch(url, part, timeout, progress)
            break
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            last_error = exc
        except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError, OSError) as exc:
            last_error = exc
    else:
        reason = getattr(last_error, "reason", None) or last_error
        kept = (f"; the partial file {part} is kept and the next try resumes it"
                if part.exists() and part.stat().st_size else "")
        raise DownloadError(f"cannot download {url} after {retries + 1} attempts ({reason}){kept}") from None
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url}: expected {size} bytes, got {got}; the download was deleted, try again")
    if sha256 is not None and _sha256(part) != sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: sha256 mismatch (corrupt or tampered download); it was deleted. "
                            "Try again or use another mirror (--url)")
    os.replace(part, dest)
    return dest


def _member_target(name: str, root: Path) -> Path:
    """Where an archive member would land; DownloadError for absolute paths and '..'."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DownloadError(f"archive member with an absolute path refused: {name}")
    if ".." in posix.parts:
        raise DownloadError(f"archive member leaving the target folder refused: {name}")
    return root.joinpath(*posix.parts)


def _extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        bad = zf.testzip()
        if bad is not None:
            raise DownloadError(f"{archive}: corrupt archive (bad CRC in {bad})")
        for info in zf.infolist():
            target = _member_target(info.filename, into)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DownloadError(f"archive member is a symbolic link, refused: {info.filename}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, CHUNK)


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _member_target(member.name, into)
            if member.issym() or member.islnk():
                raise DownloadError(f"archive member is a link, refused: {member.name} -> {member.linkname}")
            if not (member.isfile() or member.isdir()):
                raise DownloadError(f"archive member of an unsupported kind refused: {member.name}")
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4: the library's own safety net too
            tf.extractall(into, members=members, filter="data")
        else:
            tf.extractall(into, members=members)


def extract(archive: str | Path, target: str | Path) -> Path:
    """Unpack `archive` (zip or tar[.gz|.bz2|.xz]) so that its content ends up as folder `target`.

    Everything goes to a temporary folder beside `target` first and is renamed into place at the end. An
    archive with a single top-level folder (``horse2zebra/trainA/...``) is unwrapped into `target`."""
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists; remove it to extract again")
    if zipfile.is_zipfile(archive):
        unpack = _extract_zip
        needed = sum(i.file_size for i in zipfile.ZipFile(archive).infolist())
    elif tarfile.is_tarfile(archive):
        unpack, needed = _extract_tar, archive.stat().st_size * 2
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive (a broken download or an HTML error page?)")
    check_free_space(target.parent, needed, f"extracting {archive.name}")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
    try:
        try:
            unpack(archive, staging)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            raise DownloadError(f"{archive}: corrupt archive ({exc})") from None
        entries = [p for p in staging.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        os.replace(source, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target

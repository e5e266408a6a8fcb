"""Downloading and unpacking dataset archives safely.

- Streaming download to ``NAME.part`` with a progress callback; an existing ``.part`` is resumed with an HTTP
  Range request (a server that ignores Range restarts it from zero); retries with exponential backoff and a
  socket timeout. The body is read with ``read1`` (whatever has arrived), so a server that drips a byte at a
  time, which a socket timeout never catches, is seen: fewer than `stall_bytes` in a `stall_seconds` window is a
  stall, a failed attempt that the next one resumes. An overall `deadline` bounds all attempts together.
- The expected size and sha256 are checked when known. An archive (by its name: zip, tar[.gz|.bz2|.xz]) is also
  checked complete before it is renamed into place, because a short Content-Length, or an early close without
  one, looks like a finished download: a zip's central directory and CRCs; every tar member's data, the
  end-of-archive block and the compressed stream's own end check. An incomplete one is moved to ``NAME.bad``,
  so the next call downloads afresh. A complete-looking archive is therefore a complete one.
- Extraction refuses absolute member paths, ``..`` components, symbolic or hard links and special files (zip or
  tar), then copies member by member into a temporary folder beside the target (CRCs and compressed streams
  are checked as they are read) and renames it into place: an interrupted or refused extraction leaves nothing
  half-written under the final name.
- Free disk space is checked before downloading (against Content-Length), before extracting (against the
  members' declared sizes, exact for tar) and while extracting (a running total against the space free at the
  start, less a reserve), so a decompression bomb stops with "not enough disk space", never "corrupt archive".
- Errors: `NetworkError` (server or network: retrying later, by hand or from a mirror helps), `DiskSpaceError`,
  and plain `DownloadError` for the rest (checksum mismatch, incomplete, corrupt or hostile archive).
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from translate.errors import TranslateError

CHUNK = 1 << 20
RESERVE = 64 << 20  # left free when extracting: a full disk breaks everything else on it, not just us
USER_AGENT = "translate-datasets/1"
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DownloadError(TranslateError):
    """A download or an extraction failed; the message says why and what to do."""


class NetworkError(DownloadError):
    """The server or the network failed: trying later, by hand or from a mirror may help."""


class DiskSpaceError(DownloadError):
    """Not enough free disk space; the archive itself is fine."""


class _Stalled(ConnectionError):
    """Too few bytes in a stall window: handled like a dropped connection (retried, resumed)."""


class _Deadline(Exception):
    pass


Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _free(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free


def check_free_space(folder: Path, needed: int | None, what: str) -> None:
    if not needed:
        return
    free = _free(folder)
    if free < needed:
        raise DiskSpaceError(f"not enough disk space for {what}: {needed / 1e9:.2f} GB needed in {folder}, "
                             f"{free / 1e9:.2f} GB free")


def _fetch(url: str, part: Path, timeout: float, progress: Progress | None, stall_bytes: int,
           stall_seconds: float, give_up_at: float) -> None:
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
            mark_time, mark_done = time.monotonic(), done
            while True:
                block = response.read1(CHUNK)  # read(CHUNK) would wait for a whole chunk, however slow
                if not block:
                    break
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
                now = time.monotonic()
                if now >= give_up_at:
                    raise _Deadline
                if now - mark_time >= stall_seconds:
                    # near the end fewer than stall_bytes may be left: then all of them must arrive in the window
                    wanted = stall_bytes if total is None else min(stall_bytes, total - mark_done)
                    if done - mark_done < wanted:
                        raise _Stalled(f"the server stalled: {done - mark_done} bytes in {now - mark_time:.0f} s, "
                                       f"fewer than {stall_bytes}")
                    mark_time, mark_done = now, done
        if total is not None and done < total:
            raise ConnectionError(f"connection closed after {done} of {total} bytes")


def _kept(part: Path) -> str:
    return (f"; the partial file {part} is kept and the next try resumes it"
            if part.exists() and part.stat().st_size else "")


def download(url: str, dest: str | Path, size: int | None = None, sha256: str | None = None, retries: int = 4,
             timeout: float = 30.0, backoff: float = 1.0, progress: Progress | None = None,
             stall_bytes: int = 16 << 10, stall_seconds: float = 60.0, deadline: float = 6 * 3600.0) -> Path:
    """Download `url` to `dest` (resuming ``dest.part``), verify it, and rename it into place.

    An attempt that receives fewer than `stall_bytes` in `stall_seconds` has stalled and is retried like a
    dropped connection; after `deadline` seconds in all, the download gives up (the part is kept)."""
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(dest.parent, size, f"{dest.name}")
    part = dest.with_name(dest.name + ".part")
    give_up_at = time.monotonic() + deadline
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            if time.monotonic() >= give_up_at:
                raise _Deadline
            _fetch(url, part, timeout, progress, stall_bytes, stall_seconds, give_up_at)
            break
        except _Deadline:
            raise NetworkError(f"cannot download {url}: not done within the {deadline:g} s deadline"
                               f"{_kept(part)}") from None
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise NetworkError(f"{url}: HTTP {exc.code} {exc.reason}") from None
            last_error = exc
        except OSError as exc:  # URLError, ConnectionError, timeouts, _Stalled, and the disk we write to
            if exc.errno in DISK_FULL:
                raise DiskSpaceError(f"disk full while downloading {url} into {dest.parent}{_kept(part)}") from None
            last_error = exc
        except http.client.HTTPException as exc:  # a garbled response
            last_error = exc
    else:
        reason = getattr(last_error, "reason", None) or last_error
        tries = f"{retries + 1} attempt{'s' if retries else ''}"
        raise NetworkError(f"cannot download {url} after {tries} ({reason}){_kept(part)}") from None
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise DownloadError(f"{url}: expected {size} bytes, got {got}; the download was deleted, try again")
    if sha256 is not None and file_sha256(part) != sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: sha256 mismatch (corrupt or tampered download); it was deleted. "
                            "Try again or use another mirror (--url)")
    if dest.name.lower().endswith(ARCHIVES):
        why = archive_problem(part)
        if why:
            bad = dest.with_name(dest.name + ".bad")
            os.replace(part, bad)  # kept for a look, out of the way of the next try
            raise DownloadError(f"{url}: incomplete archive ({why}): a truncated download or an HTML page instead "
                                f"of the file; moved to {bad}, the next try downloads it again")
    os.replace(part, dest)
    return dest


def archive_problem(path: Path) -> str | None:
    """Why `path` is not a complete zip or tar[.gz|.bz2|.xz] archive, or None when it is one."""
    try:
        if zipfile.is_zipfile(path):  # the central directory sits at the very end: a cut file has none
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip()
            return None if bad is None else f"bad CRC in {bad}"
        if not tarfile.is_tarfile(path):
            return "not a zip or tar archive"
        with tarfile.open(path) as tf:
            for member in tf:
                if member.isfile():
                    with tf.extractfile(member) as data:
                        while data.read(CHUNK):
                            pass
            tf.fileobj.seek(tf.offset)  # tarfile stops quietly at a cut header: require the zero end block
            if tf.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
                return "no end-of-archive block"
            while tf.fileobj.read(CHUNK):  # gzip checks its trailer (CRC, length) only at the very end
                pass
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        return str(exc) or type(exc).__name__
    return None


def _member_target(name: str, root: Path) -> Path:
    """Where an archive member would land; DownloadError for absolute paths and '..'."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise DownloadError(f"archive member with an absolute path refused: {name}")
    if ".." in posix.parts:
        raise DownloadError(f"archive member leaving the target folder refused: {name}")
    return root.joinpath(*posix.parts)


Write = Callable[[object, Path], None]  # (readable member data, target file)


def _zip_plan(zf: zipfile.ZipFile) -> int:
    """Refuse hostile members before anything is written; the unpacked size."""
    for info in zf.infolist():
        _member_target(info.filename, Path())
        if stat.S_ISLNK(info.external_attr >> 16):
            raise DownloadError(f"archive member is a symbolic link, refused: {info.filename}")
    return sum(i.file_size for i in zf.infolist() if not i.is_dir())


def _zip_members(zf: zipfile.ZipFile):
    """(name, is a folder, opener) per member; zf.open checks the CRC when the member's end is read."""
    return [(info.filename, info.is_dir(), lambda info=info: zf.open(info)) for info in zf.infolist()]


def _tar_plan(tf: tarfile.TarFile) -> int:
    """Refuse hostile members before anything is written; the unpacked size (exact: tar states every size)."""
    needed = 0
    for member in tf.getmembers():
        _member_target(member.name, Path())
        if member.issym() or member.islnk():
            raise DownloadError(f"archive member is a link, refused: {member.name} -> {member.linkname}")
        if member.issparse() or not (member.isfile() or member.isdir()):  # sparse: expands past its size
            raise DownloadError(f"archive member of an unsupported kind refused: {member.name}")
        needed += member.size if member.isfile() else 0
    return needed


def _tar_members(tf: tarfile.TarFile):
    """(name, is a folder, opener) per member."""
    return [(m.name, m.isdir(), lambda m=m: tf.extractfile(m)) for m in tf.getmembers()]


def _unpack(members, into: Path, write: Write) -> None:
    """Write every member below `into` (names were checked by the plan, and are checked again here)."""
    for name, is_dir, open_member in members:
        target = _member_target(name, into)
        if is_dir:
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with open_member() as src:
            write(src, target)


def extract(archive: str | Path, target: str | Path) -> Path:
    """Unpack `archive` (zip or tar[.gz|.bz2|.xz]) so that its content ends up as folder `target`.

    Everything goes to a temporary folder beside `target` first and is renamed into place at the end. An
    archive with a single top-level folder (``horse2zebra/trainA/...``) is unwrapped into `target`."""
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists; remove it to extract again")
    if zipfile.is_zipfile(archive):
        opener, plan, members = zipfile.ZipFile, _zip_plan, _zip_members
    elif tarfile.is_tarfile(archive):
        opener, plan, members = tarfile.open, _tar_plan, _tar_members
    else:
        raise DownloadError(f"{archive}: not a zip or tar archive (a broken download or an HTML error page?)")
    staging: Path | None = None
    try:
        with opener(archive) as handle:
            needed = plan(handle)
            free = _free(target.parent)
            left = free - RESERVE

            def short(amount: str) -> DiskSpaceError:
                return DiskSpaceError(f"not enough disk space to extract {archive.name}: {amount} in "
                                      f"{target.parent}, {free / 1e9:.2f} GB free ({RESERVE >> 20} MB kept spare)")

            if needed > left:
                raise short(f"{needed / 1e9:.2f} GB needed")

            def write(src, path: Path) -> None:  # a running total: the declared sizes are not trusted alone
                nonlocal left
                with path.open("wb") as out:
                    while block := src.read(CHUNK):
                        left -= len(block)
                        if left < 0:
                            raise short("it unpacks to more than the free space")
                        out.write(block)

            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".extracting", dir=target.parent))
            _unpack(members(handle), staging, write)
        entries = [p for p in staging.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX"]
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        os.replace(source, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
            RuntimeError) as exc:  # the last two: unsupported compression, encrypted zip
        raise DownloadError(f"{archive}: corrupt or unsupported archive ({exc})") from None
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise DiskSpaceError(f"disk full while extracting {archive.name} into {target.parent}") from None
        if exc.errno is None:  # gzip's and bz2's complaints about their data are OSErrors without an errno
            raise DownloadError(f"{archive}: corrupt archive ({exc})") from None
        raise DownloadError(f"cannot extract {archive.name}: {exc.strerror}: {exc.filename}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return target

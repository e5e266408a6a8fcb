"""Planning batch jobs over a user's files: what the inputs are, where each output goes, and the one guard
every writer calls so that no output ever lands on an input.

* :func:`gather` accounts for every entry under the source: images to convert; files not converted and why
  (an unsupported format such as HEIC, a broken or looping symbolic link, a folder that cannot be read);
  and files skipped as not images. Nothing is dropped without a word. A path that exists is taken
  literally, so ``img[1].png`` is a file, not a glob pattern.
* :func:`unique_destinations` finds outputs that would collide (``same.png``, ``same.bmp`` and ``same.tif``
  all becoming ``same.png``): the input whose own name is the output name keeps it, the others keep their
  original suffix in the name (``same.bmp.png``); anything still colliding is refused for that file.
* :func:`guard_outputs` refuses a plan in which any destination resolves to an input file (the same path
  after resolving links, or the same file through a hard link), whatever the folders' relation.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from translate.data.io import classify_file
from translate.errors import DataError, TranslateError

GLOB_CHARS = "*?["


@dataclass
class Inputs:
    """What a source (a folder, a glob pattern or one file) holds."""

    root: Path  # the folder outputs mirror
    files: list[Path]  # images to convert, sorted by relative path
    failed: dict[str, str] = field(default_factory=dict)  # path -> why it cannot be converted
    skipped: dict[str, str] = field(default_factory=dict)  # path -> why it is not an input (not an image, hidden)


def _classify(path: Path, found: Inputs) -> None:
    """Put one file (or link) into `found`: an image, not convertible (and why), or not an image."""
    kind, why = classify_file(path)
    if kind == "image":
        found.files.append(path)
    else:
        (found.failed if kind == "unusable" else found.skipped)[str(path)] = why


def _walk(root: Path, found: Inputs) -> None:
    """Every entry below `root`, following links to folders but never around a loop; hidden entries (.git,
    .DS_Store) are recorded once, not entered."""
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        found.failed[str(exc.filename)] = f"folder cannot be read ({exc.strerror or exc})"

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=True):
        here = Path(dirpath)
        try:
            st = here.stat()
        except OSError as exc:
            found.failed[str(here)] = f"folder cannot be read ({exc.strerror or exc})"
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:  # a link back to a folder already walked: its images are in once
            found.skipped[str(here)] = "symbolic link loop (a folder already included)"
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        for name in sorted(dirnames):
            if name.startswith("."):
                found.skipped[str(here / name)] = "hidden folder"
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            path = here / name
            if name.startswith("."):
                found.skipped[str(path)] = "hidden file"
            else:
                _classify(path, found)


def gather(source: str | Path) -> Inputs:
    """Every input of a batch job: a folder (recursive), a glob pattern (only when no such path exists) or
    one file. DataError when there is nothing to convert."""
    text = str(source)
    path = Path(source)
    if os.path.lexists(path):
        if path.is_dir():
            found = Inputs(root=path, files=[])
            _walk(path, found)
        else:
            found = Inputs(root=path.parent, files=[])
            _classify(path, found)
            if not found.files:
                why = found.failed.get(str(path)) or found.skipped.get(str(path), "not an image")
                raise DataError(path, why)
    elif any(ch in text for ch in GLOB_CHARS):
        matches = [Path(p) for p in glob.glob(text, recursive=True)]
        found = Inputs(root=Path("."), files=[])
        for match in matches:
            if not match.is_dir():
                _classify(match, found)
        if found.files:
            found.root = Path(os.path.commonpath([str(p.parent) for p in found.files]))
    else:
        raise DataError(path, "input not found")
    if not found.files:
        detail = f" ({len(found.failed)} not convertible, {len(found.skipped)} other files)" if (
            found.failed or found.skipped) else ""
        raise DataError(Path(text), f"no images to convert (jpg, png, bmp, tif, webp, gif){detail}")
    found.files.sort(key=lambda p: p.relative_to(found.root).as_posix())
    return found


def output_root(source_root: Path, output: str | Path) -> Path:
    """The resolved output folder; refused when it lies inside the input tree (a later run would take the
    outputs for inputs) or is an existing file."""
    out = Path(output).resolve()
    root = source_root.resolve()
    if out == root or root in out.parents:
        raise TranslateError(f"output {output} is inside the input folder {source_root}; choose another folder")
    if out.exists() and not out.is_dir():
        raise TranslateError(f"output {output} is a file, not a folder")
    return out


def unique_destinations(planned: dict[Path, Path]) -> tuple[dict[Path, Path], dict[str, str]]:
    """(input -> a destination no other input shares, input -> why refused) for `planned` input -> destination.

    Of the inputs that would share a destination, the one whose own name is that name keeps it; the others
    get their original suffix kept in the name (``same.bmp`` -> ``same.bmp.png``)."""
    by_dst: dict[Path, list[Path]] = {}
    for src, dst in planned.items():
        by_dst.setdefault(dst, []).append(src)
    result: dict[Path, Path] = {}
    for dst, sources in by_dst.items():
        if len(sources) == 1:
            result[sources[0]] = dst
            continue
        for src in sources:
            result[src] = dst if src.name == dst.name else dst.with_name(src.name + dst.suffix)
    refused: dict[str, str] = {}
    owners: dict[Path, Path] = {}
    for src in sorted(result, key=str):
        dst = result[src]
        if dst in owners:
            refused[str(src)] = f"its output {dst} would collide with the output of {owners[dst]}"
        else:
            owners[dst] = src
    return {src: dst for src, dst in result.items() if str(src) not in refused}, refused


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def guard_outputs(destinations: Iterable[str | Path], inputs: Iterable[str | Path]) -> None:
    """TranslateError before anything is written if any destination is one of the inputs: the same path
    once links are resolved, or the same file through another name (a hard link)."""
    by_path: dict[str, Path] = {}
    by_inode: dict[tuple[int, int], Path] = {}
    for item in inputs:
        path = Path(item)
        by_path[os.path.realpath(path)] = path
        ident = _identity(path)
        if ident is not None:
            by_inode[ident] = path
    clashes = []
    for item in destinations:
        dst = Path(item)
        src = by_path.get(os.path.realpath(dst)) or (by_inode.get(_identity(dst)) if dst.exists() else None)
        if src is not None:
            clashes.append((dst, src))
    if clashes:
        dst, src = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise TranslateError(f"refusing to write {dst}: it is the input {src}{more}; nothing was written. "
                             "Choose an output that is not one of the inputs")


def ensure_writable(folder: str | Path) -> Path:
    """Create `folder` and check a file can be written in it, before any work is done."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # a unique name: processes on other machines writing to this folder may have this one's pid
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise TranslateError(f"cannot write in the output folder {folder}: {exc.strerror or exc}") from None
    return folder


@dataclass
class Plan:
    """A batch job's inputs and where each output goes, checked before any work: no output on an input,
    no two outputs on one file, the output folder writable, stale temporary files of killed runs removed."""

    inputs: Inputs
    out_root: Path
    destinations: dict[Path, Path]  # input -> output file
    failed: dict[str, str]  # input -> why it will not be converted (the inputs' own reasons and collisions)


def plan_batch(source: str | Path, output: str | Path, destination: Callable[[Path], Path],
               report_name: str, clean: bool = True) -> Plan:
    """Plan a job writing `destination(relative input path)` under `output` for every input of `source`,
    plus the report `output/report_name`; see :class:`Plan`. `clean=False` leaves temporary files alone: one
    of several processes writing this folder cannot tell whether another machine's writer still runs."""
    from translate.data.io import remove_stale_temporaries

    inputs = gather(source)
    out_root = output_root(inputs.root, output)
    planned = {src: out_root / destination(src.relative_to(inputs.root)) for src in inputs.files}
    destinations, collided = unique_destinations(planned)
    guard_outputs([*destinations.values(), out_root / report_name], inputs.files)
    ensure_writable(out_root)
    if clean:
        remove_stale_temporaries(out_root)
    return Plan(inputs, out_root, destinations, {**inputs.failed, **collided})

"""The dataset catalog: what `translate datasets list` shows and `translate datasets download` fetches.

CycleGAN's unpaired sets come as zip archives with trainA/trainB/testA/testB. pix2pix's paired sets
(edges2shoes, edges2handbags) come as tar.gz of side-by-side images [A | B]; they are split into unpaired A/B
halves after extraction, as DiscoGAN's authors do. CelebA and Cityscapes can't be downloaded here (their
terms need the user's own agreement), so the catalog prints what to place where.

``TRANSLATE_DATASETS_URL`` (or ``--url``) replaces the server part for a mirror: the archive name is appended.

Failures say what to do next. A network failure suggests a mirror or a download by hand; a disk-space failure
suggests freeing space or another root. An archive in ``ROOT/.downloads/`` that fails to unpack, or lacks
trainA/ and trainB/, is moved aside to ``NAME.bad`` (replacing an older one), so the next attempt downloads
afresh instead of unpacking the same bad file again. A dataset is built in a staging folder; an existing,
incomplete ``ROOT/NAME`` is moved aside to ``ROOT/.NAME.incomplete-PID`` (the user is told), and only the
newest such copy per name is kept.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from translate.data.download import DiskSpaceError, DownloadError, NetworkError, download, extract
from translate.data.files import unique_destinations
from translate.data.io import image_header, list_images, read_image
from translate.errors import DataError

MIRROR_ENV = "TRANSLATE_DATASETS_URL"
CYCLEGAN_SERVER = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets"
PIX2PIX_SERVER = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets"
CYCLEGAN_LICENCE = "research use; images from ImageNet, Flickr, WikiArt and others (see the CycleGAN repository)"


@dataclass(frozen=True)
class Entry:
    name: str
    model: str  # the model it suits
    domains: str  # "A <-> B"
    source: str  # "cyclegan" | "pix2pix" | "manual" | "builtin"
    licence: str
    archive: str = ""  # file name on the server
    instructions: str = ""  # for manual datasets: where the files go

    def url(self, mirror: str | None = None) -> str:
        base = mirror or os.environ.get(MIRROR_ENV) or (CYCLEGAN_SERVER if self.source == "cyclegan" else PIX2PIX_SERVER)
        return f"{base.rstrip('/')}/{self.archive}"


def _cyclegan(name: str, domains: str) -> Entry:
    return Entry(name, "cyclegan", domains, "cyclegan", CYCLEGAN_LICENCE, archive=f"{name}.zip")


CATALOG: dict[str, Entry] = {e.name: e for e in [
    _cyclegan("horse2zebra", "horses <-> zebras (ImageNet)"),
    _cyclegan("apple2orange", "apples <-> oranges (ImageNet)"),
    _cyclegan("summer2winter_yosemite", "Yosemite summer <-> winter (Flickr)"),
    _cyclegan("monet2photo", "Monet paintings <-> photos"),
    _cyclegan("cezanne2photo", "Cezanne paintings <-> photos"),
    _cyclegan("ukiyoe2photo", "Ukiyo-e prints <-> photos"),
    _cyclegan("vangogh2photo", "Van Gogh paintings <-> photos"),
    _cyclegan("maps", "aerial photos <-> Google maps"),
    _cyclegan("facades", "facade labels <-> photos"),
    _cyclegan("iphone2dslr_flower", "iPhone <-> DSLR flower photos (shallow depth of field)"),
    _cyclegan("ae_photos", "photos for the CycleGAN paper's demo (test images only)"),
    Entry("edges2shoes", "discogan", "shoe edges <-> shoe photos (halves of paired images)", "pix2pix",
          "research use; UT Zappos50K (see the pix2pix repository)", archive="edges2shoes.tar.gz"),
    Entry("edges2handbags", "discogan", "handbag edges <-> handbag photos (halves of paired images)", "pix2pix",
          "research use; iGAN handbags (see the pix2pix repository)", archive="edges2handbags.tar.gz"),
    Entry("handbags2shoes", "discogan", "handbag photos <-> shoe photos (the photo halves of the two sets above)",
          "derived", "as edges2handbags and edges2shoes"),
    Entry("celeba", "discogan, genegan", "faces with <-> without an attribute", "manual",
          "CelebA: non-commercial research only; download it yourself after accepting its terms",
          instructions="put the aligned crops in DATASETS/celeba/img_align_celeba/ and the attribute list in "
                       "DATASETS/celeba/list_attr_celeba.txt (list_eval_partition.txt optional), from "
                       "mmlab.ie.cuhk.edu.hk/projects/CelebA.html; then use the dataset celeba-ATTRIBUTE, e.g. "
                       "translate fit celeba-Eyeglasses (A: with the attribute, B: without)"),
    Entry("cityscapes", "cyclegan", "street photos <-> semantic labels", "manual",
          "Cityscapes: registration and licence at cityscapes-dataset.com; no redistribution",
          instructions="after registering, download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from "
                       "cityscapes-dataset.com and arrange DATASETS/cityscapes/trainA (photos) and trainB (labels)"),
]}


def _has_train(folder: Path) -> bool:
    return (folder / "trainA").is_dir() and (folder / "trainB").is_dir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def _staged(folder: Path, log=print) -> Iterator[Path]:
    """Build `folder` in a hidden staging folder beside it, renamed into place only if the block succeeds;
    an older, incomplete `folder` is moved aside rather than mixed with the new files (the newest copy only:
    older ones are removed, as they would otherwise pile up unseen)."""
    staging = folder.with_name(f".{folder.name}.preparing")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if folder.exists():
        prefix = f".{folder.name}.incomplete-"
        for old in sorted(p for p in folder.parent.iterdir() if p.name.startswith(prefix)):
            _remove(old)
            log(f"removed {old}, an older incomplete copy of {folder.name}")
        aside = folder.with_name(f"{prefix}{os.getpid()}")
        folder.rename(aside)
        log(f"{folder} was incomplete: moved it aside to {aside} (delete it if nothing in it is needed)")
    os.replace(staging, folder)


def on_disk(folder: Path) -> str:
    """Images per split as "trainA/trainB/testA/testB" ("-" for a missing split), or "no" without a folder."""
    found = {split: len(list_images(folder / split)) for split in ("trainA", "trainB", "testA", "testB")
             if (folder / split).is_dir()}
    return "/".join(str(found.get(s, "-")) for s in ("trainA", "trainB", "testA", "testB")) if found else "no"


@dataclass
class SplitReport:
    """What `translate datasets inspect` shows for one split folder."""

    split: str
    count: int
    sizes: list[tuple[int, int]]  # (width, height) of each readable image, smallest area first
    modes: dict[str, int]  # Pillow mode -> images
    unreadable: dict[str, str]  # file name -> why


def inspect(folder: Path) -> list[SplitReport]:
    """Counts, sizes, colour modes and unreadable headers of trainA/trainB/testA/testB, or of the folder itself
    when it has none of them. Every image is decoded, as training would."""
    splits = [d for d in ("trainA", "trainB", "testA", "testB") if (folder / d).is_dir()]
    if not splits and not folder.is_dir():
        raise DataError(folder, "folder not found")
    reports = []
    for split in splits or ["."]:  # a plain folder of images (translate fit --a DIR) is one domain
        files = list_images(folder / split)
        sizes, modes, unreadable = [], {}, {}
        for path in files:
            try:
                width, height, mode = image_header(path)
                read_image(path)  # a full decode: truncated files pass the header check
            except DataError as err:
                unreadable[path.name] = err.why
                continue
            sizes.append((width, height))
            modes[mode] = modes.get(mode, 0) + 1
        sizes.sort(key=lambda s: s[0] * s[1])
        reports.append(SplitReport(folder.name if split == "." else split, len(files), sizes, dict(sorted(modes.items(), key=lambda m: -m[1])),
                                   unreadable))
    return reports


def _split_pairs(folder: Path, log=print) -> None:
    """pix2pix layout (train/, val/ of [A | B] images) -> trainA/trainB/testA/testB of the halves, in place."""
    for split, target in (("train", "train"), ("val", "test")):
        source = folder / split
        if not source.is_dir():
            continue
        (folder / f"{target}A").mkdir(exist_ok=True)
        (folder / f"{target}B").mkdir(exist_ok=True)
        skipped = 0
        # 0_AB.jpg and 0_AB.png would both become 0_AB.png: the second keeps its suffix (0_AB.jpg.png)
        names, collided = unique_destinations({p: Path(p.stem + ".png") for p in list_images(source)})
        for path, why in collided.items():
            log(f"{path}: skipped, {why}")
        for path, name in names.items():
            try:
                image = read_image(path)
            except DataError:
                skipped += 1
                continue
            half = image.shape[1] // 2
            Image.fromarray(np.ascontiguousarray(image[:, :half])).save(folder / f"{target}A" / name)
            Image.fromarray(np.ascontiguousarray(image[:, half:2 * half])).save(folder / f"{target}B" / name)
        if skipped:
            log(f"{source}: {skipped} unreadable images skipped")


CELEBA_PREFIX = "celeba-"


def read_celeba_attributes(path: Path) -> tuple[list[str], dict[str, list[int]]]:
    """CelebA's list_attr_celeba.txt: (attribute names, {image file: [+1/-1 per attribute]})."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        names = lines[1].split()
        table = {}
        for number, line in enumerate(lines[2:], start=3):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != len(names) + 1:
                raise ValueError(f"line {number} has {len(parts) - 1} values for {len(names)} attributes")
            table[parts[0]] = [int(v) for v in parts[1:]]
    except (OSError, IndexError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a CelebA attribute list ({exc})") from None
    return names, table


def prepare_celeba(attribute: str, root: str | Path, log=print) -> Path:
    """`root/celeba-ATTRIBUTE` with trainA (faces with the attribute) and trainB (without), as symbolic links
    to the user-placed `root/celeba/img_align_celeba/*` images; CelebA's own test partition
    (list_eval_partition.txt, if present) becomes testA/testB. Nothing is copied or moved."""
    root = Path(root)
    source = root / "celeba"
    images, attrs = source / "img_align_celeba", source / "list_attr_celeba.txt"
    if not (images.is_dir() and attrs.is_file()):
        raise DataError(source, CATALOG["celeba"].instructions.replace("DATASETS", str(root)))
    names, table = read_celeba_attributes(attrs)
    if attribute not in names:
        import difflib

        close = difflib.get_close_matches(attribute, names, n=3)
        raise DataError(attrs, f"no attribute '{attribute}'" + (f"; did you mean {', '.join(close)}?" if close else "")
                        + f" (attributes: {', '.join(names)})")
    column = names.index(attribute)
    partition: dict[str, int] = {}
    if (source / "list_eval_partition.txt").is_file():
        for line in (source / "list_eval_partition.txt").read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                partition[parts[0]] = int(parts[1])
    missing = 0
    with _staged(root / f"{CELEBA_PREFIX}{attribute}", log) as staging:
        for file, values in table.items():
            image = images / file
            if not image.is_file():
                missing += 1
                continue
            split = "test" if partition.get(file) == 2 else "train"
            target = staging / f"{split}{'A' if values[column] == 1 else 'B'}" / file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.path.relpath(image, target.parent))
        if not _has_train(staging):
            raise DataError(images, f"no images found for both values of {attribute} "
                                    f"({missing} listed files missing)")
    if missing:
        log(f"{missing} images listed in {attrs.name} are missing from {images} and were left out")
    return root / f"{CELEBA_PREFIX}{attribute}"


def _handbags2shoes(root: Path, mirror: str | None, progress, log) -> Path:
    """DiscoGAN's handbags <-> shoes: A = edges2handbags' photo halves, B = edges2shoes' (symbolic links)."""
    bags, shoes = (prepare(n, root, mirror, progress, log) for n in ("edges2handbags", "edges2shoes"))
    with _staged(root / "handbags2shoes", log) as staging:
        for split in ("train", "test"):
            for domain, source in (("A", bags), ("B", shoes)):
                photos = source / f"{split}B"
                if not photos.is_dir():
                    continue
                target = staging / f"{split}{domain}"
                target.mkdir(parents=True)
                for image in list_images(photos):
                    (target / image.name).symlink_to(os.path.relpath(image, target))
    return root / "handbags2shoes"


def prepare(name: str, root: str | Path, mirror: str | None = None, progress=None, log=print) -> Path:
    """The dataset folder `root/name` with trainA/trainB, downloading and unpacking it if needed."""
    root = Path(root)
    folder = root / name
    if _has_train(folder):
        return folder
    if name.startswith(CELEBA_PREFIX):
        return prepare_celeba(name[len(CELEBA_PREFIX):], root, log)
    entry = CATALOG.get(name)
    if entry is not None and entry.source == "derived":
        return _handbags2shoes(root, mirror, progress, log)
    if entry is None:
        raise DataError(folder, f"not in the catalog ({', '.join(CATALOG)}) and not found")
    if entry.source == "manual":
        raise DataError(folder, f"{name} can't be downloaded automatically: {entry.instructions.replace('DATASETS', str(root))}")
    url = entry.url(mirror)
    archive = root / ".downloads" / entry.archive
    log(f"unpacking {archive}" if archive.exists() else f"downloading {name} from {url}")
    space = "Free some space, or keep datasets on another disk (--root DIR, or --set data.root=DIR for fit)"
    try:
        download(url, archive, progress=progress)
    except NetworkError as exc:
        raise NetworkError(f"{exc}. Offline or server down? Download {url} by hand and put it at {archive} "
                           f"(or unpack it so that {folder}/trainA exists), or use a mirror: --url or "
                           f"{MIRROR_ENV}=https://mirror/path") from None
    except DiskSpaceError as exc:
        raise DiskSpaceError(f"{exc}. {space}") from None
    try:
        with _staged(folder, log) as staging:
            extract(archive, staging)
            if entry.source == "pix2pix":
                _split_pairs(staging, log)
            if not _has_train(staging):
                raise DownloadError(f"{archive} does not contain trainA/ and trainB/ (or train/ of paired images)")
    except DiskSpaceError as exc:  # the archive is fine: keep it, the next attempt unpacks it without downloading
        raise DiskSpaceError(f"{exc}. {space}; {archive} is kept for the next attempt") from None
    except DownloadError as exc:  # a bad archive: out of the way, or every later attempt would unpack it again
        bad = archive.with_name(archive.name + ".bad")
        os.replace(archive, bad)
        raise DownloadError(f"{exc}; moved it to {bad}, the next attempt downloads it again (or use a mirror: "
                            f"--url or {MIRROR_ENV})") from None
    archive.unlink()
    return folder

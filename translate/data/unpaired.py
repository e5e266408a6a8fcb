"""Unpaired two-domain dataset over ``trainA/ trainB/ testA/ testB/`` with replayable pairing.

As in the classic CycleGAN loader, A is indexed and B is drawn at random; an epoch has max(|A|, |B|)
samples. Unlike it, all randomness lives in :class:`UnpairedSampler`, which is seeded by (run seed,
epoch): it yields ``(index_a, index_b, sample_seed)`` keys, shards them across DDP ranks itself, and so a
run resumed at an epoch boundary replays exactly the same pairs, crops and flips.

Bad files never end a run: headers are checked when the dataset is built (empty, not an image, too
small or too large), and a file that fails to decode later is skipped in favour of the next image of the
same domain, with one warning per file. A domain none of whose images decode is refused when the dataset
is built (in the main process, before training), by decoding its files in order until one succeeds, so a
healthy folder costs one decode.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from translate.data.io import MIN_SIDE, image_size, list_images, read_image
from translate.data.transforms import reseed, to_tensor
from translate.errors import DataError

log = logging.getLogger(__name__)

Key = tuple[int, int, int]

_warned: set[Path] = set()


def warn_skipped(err: DataError) -> None:
    """One warning per bad file per process, whichever reader (scan, training, sample grids) meets it."""
    if err.path not in _warned:
        _warned.add(err.path)
        log.warning("skipping %s", err)


def scan_domain(folder: Path) -> tuple[list[Path], list[DataError]]:
    """Image files of one domain whose headers read, and the errors of those that did not."""
    if not folder.is_dir():
        raise DataError(folder, "folder not found")
    good, bad = [], []
    dropped: dict[str, str] = {}  # broken links, formats without a decoder: warned about, not silently left out
    files = list_images(folder, dropped=dropped)
    bad += [DataError(Path(path), why) for path, why in dropped.items()]
    for path in files:
        try:
            width, height = image_size(path)
            if min(width, height) < MIN_SIDE:  # the same rule read_image applies, found before training
                raise DataError(path, f"image too small ({width}x{height})")
            good.append(path)
        except DataError as err:
            bad.append(err)
    if not good:
        why = f"no readable images ({len(bad)} unreadable)" if bad else "no images (jpg, png, bmp, tif, webp)"
        raise DataError(folder, why)
    for err in bad:
        warn_skipped(err)
    return good, bad


def check_decodes(folder: Path, files: list[Path]) -> None:
    """Decode `files` in order until one succeeds; DataError(folder, ...) if none does.

    Headers can all be fine while every file is truncated after them; finding that here gives one line
    before training instead of a traceback from a DataLoader worker."""
    errors: list[DataError] = []
    for path in files:
        try:
            read_image(path)
            return
        except DataError as err:
            errors.append(err)
    first = f"; the first: {errors[0].path.name}: {errors[0].why}" if errors else ""
    raise DataError(folder, f"none of the {len(files)} images could be decoded{first}")


def split_holdout(files: list[Path], share: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(kept for training, held out) with round(share * n) files held out (at least 1, never all), chosen by
    `seed`; both lists keep the files' order. The files are not moved: the split is recomputed from the seed."""
    if share <= 0 or len(files) < 2:
        return list(files), []
    n_held = min(len(files) - 1, max(1, round(share * len(files))))
    held = set(np.random.default_rng(seed).permutation(len(files))[:n_held].tolist())
    return ([f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held])


def subset(files: list[Path], n: int, seed: int) -> list[Path]:
    """`n` of `files` chosen by `seed`, in their order (all when `n` is 0 or not smaller): data.max_images."""
    if n <= 0 or n >= len(files):
        return list(files)
    kept = set(np.random.default_rng(seed).permutation(len(files))[:n].tolist())
    return [f for i, f in enumerate(files) if i in kept]


class UnpairedDataset(Dataset):
    """Yields ``{"A": uint8 [3,H,W], "B": uint8 [3,H,W]}`` for keys from :class:`UnpairedSampler`.

    Building it raises :class:`DataError` for a domain without a usable image (no readable header, or no
    training file that decodes)."""

    def __init__(self, dir_a: str | Path, dir_b: str | Path, transform: A.Compose, holdout_a: float = 0.0,
                 holdout_b: float = 0.0, seed: int = 0, max_images: int = 0) -> None:
        self.files_a, bad_a = scan_domain(Path(dir_a))
        self.files_b, bad_b = scan_domain(Path(dir_b))
        self.files_a, self.held_a = split_holdout(self.files_a, holdout_a, seed)
        self.files_b, self.held_b = split_holdout(self.files_b, holdout_b, seed + 1)
        self.files_a = subset(self.files_a, max_images, seed + 2)  # after the holdout: it stays the same
        self.files_b = subset(self.files_b, max_images, seed + 3)
        check_decodes(Path(dir_a), self.files_a)  # the training files: what __getitem__ will read
        check_decodes(Path(dir_b), self.files_b)
        self.skipped: list[DataError] = bad_a + bad_b
        self.transform = transform

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _load(self, files: list[Path], index: int, seed: int) -> torch.Tensor:
        # Try the next file of the same domain when one fails to decode; give up only if all do.
        for step in range(len(files)):
            path = files[(index + step) % len(files)]
            try:
                image = read_image(path)
            except DataError as err:
                warn_skipped(err)
                continue
            reseed(self.transform, seed)
            return to_tensor(self.transform(image=image)["image"])
        raise DataError(files[0].parent, "no image in this folder could be decoded")

    def __getitem__(self, key: Key) -> dict[str, torch.Tensor]:
        index_a, index_b, seed = key
        return {"A": self._load(self.files_a, index_a, seed), "B": self._load(self.files_b, index_b, seed + 1)}


class UnpairedSampler(Sampler[Key]):
    """Seeded keys for an epoch: A in a shuffled order, B uniformly at random, one seed per sample."""

    def __init__(self, n_a: int, n_b: int, seed: int, shuffle: bool = True,
                 num_replicas: int = 1, rank: int = 0) -> None:
        self.n_a, self.n_b, self.seed, self.shuffle = n_a, n_b, seed, shuffle
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.total = max(n_a, n_b)
        self.per_rank = math.ceil(self.total / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def keys(self) -> list[Key]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n_a, generator=g) if self.shuffle else torch.arange(self.n_a)
        index_a = order.repeat(math.ceil(self.total / self.n_a))[: self.total]
        index_b = torch.randint(self.n_b, (self.total,), generator=g)
        seeds = torch.randint(2**31 - 1, (self.total,), generator=g)
        keys = list(zip(index_a.tolist(), index_b.tolist(), seeds.tolist()))
        keys += keys[: self.per_rank * self.num_replicas - self.total]  # pad so every rank gets as many
        return keys[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys())

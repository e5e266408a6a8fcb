"""LightningDataModule for unpaired training: resolves the dataset folder, builds loaders and samples."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from translate.config import DataConfig
from translate.data.builtin import BUILTIN_DATASETS, ensure_builtin, is_builtin
from translate.data.io import list_images, read_image
from translate.data.transforms import eval_transform, to_tensor, train_transform
from translate.data.unpaired import UnpairedDataset, UnpairedSampler, warn_skipped
from translate.errors import DataError

log = logging.getLogger(__name__)


def resolve_dataset(dataset: str, root: str | Path) -> Path:
    """A built-in name (generated on first use), a folder, a dataset under `root`, or a catalog name
    (downloaded and unpacked on first use, see catalog.py)."""
    from translate.data.catalog import CATALOG, prepare

    if is_builtin(dataset):
        return ensure_builtin(dataset, root)
    path = Path(dataset).expanduser()
    if not path.exists() and not path.is_absolute() and (Path(root) / dataset).exists():
        path = Path(root) / dataset
    if dataset in CATALOG and not (path / "trainA").is_dir():
        return prepare(dataset, root, log=log.info)
    if not path.exists():
        raise DataError(path, f"dataset not found: give a built-in name ({', '.join(BUILTIN_DATASETS)}), a "
                              f"catalog name (translate datasets list) or a folder with trainA/ and trainB/")
    if not path.is_dir():
        raise DataError(path, "is not a folder")
    missing = [d for d in ("trainA", "trainB") if not (path / d).is_dir()]
    if missing:
        raise DataError(path, f"missing {' and '.join(missing)}/ (expected trainA/ trainB/ [testA/ testB/])")
    return path


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def load_samples(folder: Path, n: int, size: int) -> torch.Tensor:
    """The first `n` readable images of `folder`, resized for sample grids: uint8 [n,3,size,size]."""
    transform = eval_transform(size)
    images = []
    for path in list_images(folder):  # only the files needed, not a header scan of the whole folder
        if len(images) == n:
            break
        try:
            images.append(to_tensor(transform(image=read_image(path))["image"]))
        except DataError as err:
            warn_skipped(err)
    return torch.stack(images) if images else torch.empty(0, 3, size, size, dtype=torch.uint8)


class UnpairedDataModule(pl.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.root: Path | None = None
        self.train_set: UnpairedDataset | None = None

    def prepare_data(self) -> None:
        # Runs once per node before setup(): generation of built-in data happens here, not on every rank.
        resolve_dataset(self.cfg.dataset, self.cfg.root)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.root = resolve_dataset(self.cfg.dataset, self.cfg.root)
        self.train_set = UnpairedDataset(self.root / "trainA", self.root / "trainB",
                                         train_transform(self.cfg.load_size, self.cfg.crop_size, self.cfg.flip))
        if self.train_set.skipped:
            log.warning("%d unreadable training image(s) will be skipped", len(self.train_set.skipped))

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        trainer = self.trainer
        sampler = UnpairedSampler(
            len(self.train_set.files_a), len(self.train_set.files_b), self.seed,
            num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0)
        # Lightning creates the first iterator before it calls set_epoch, and worker processes prefetch
        # indices at creation: start from the (restored) epoch so a resumed run draws that epoch's keys.
        sampler.set_epoch(trainer.current_epoch if trainer else 0)
        workers = default_workers() if self.cfg.num_workers < 0 else self.cfg.num_workers
        return DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0, drop_last=False)

    def sample_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed test images of each domain (train images when there is no test split) for grids."""
        assert self.root is not None, "setup() first"
        out = []
        for domain in ("A", "B"):
            folder = self.root / f"test{domain}"
            if not folder.is_dir() or not any(folder.iterdir()):
                folder = self.root / f"train{domain}"
            out.append(load_samples(folder, self.cfg.n_samples, self.cfg.crop_size))
        return out[0], out[1]

"""LightningDataModule for unpaired training: resolves the dataset folder, builds loaders and samples."""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from translate.config import DataConfig
from translate.data.io import list_images, read_image
from translate.data.names import resolve_dataset
from translate.data.transforms import eval_transform, to_tensor, train_transform
from translate.data.unpaired import UnpairedDataset, UnpairedSampler, warn_skipped
from translate.errors import DataError

log = logging.getLogger(__name__)


def load_samples(source: Path | list[Path], n: int, size: int,
                 skipped: dict[str, str] | None = None) -> torch.Tensor:
    """The first `n` readable images of a folder (or of a list of files), resized for sample grids:
    uint8 [n,3,size,size]. Unreadable files are logged, and recorded in `skipped` (path -> why) if given."""
    transform = eval_transform(size)
    images = []
    files = source if isinstance(source, list) else list_images(source)
    for path in files:  # only the files needed, not a header scan of the whole folder
        if len(images) == n:
            break
        try:
            images.append(to_tensor(transform(image=read_image(path))["image"]))
        except DataError as err:
            warn_skipped(err)
            if skipped is not None:
                skipped[str(err.path)] = err.why
    return torch.stack(images) if images else torch.empty(0, 3, size, size, dtype=torch.uint8)


class UnpairedDataModule(pl.LightningDataModule):
    def __init__(self, cfg: DataConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.seed = seed
        self.train_set: UnpairedDataset | None = None
        self.folders: dict[str, Path | None] = {}

    def prepare_data(self) -> None:
        # Runs once per node before setup(): generation or download of data happens here, not on every rank.
        if not self.cfg.dir_a:
            resolve_dataset(self.cfg.dataset, self.cfg.root)

    def domain_folders(self) -> dict[str, Path | None]:
        """trainA/trainB/testA/testB folders (a test entry is None when the dataset has no such images)."""
        if self.cfg.dir_a:
            return {"trainA": Path(self.cfg.dir_a), "trainB": Path(self.cfg.dir_b), "testA": None, "testB": None}
        root = resolve_dataset(self.cfg.dataset, self.cfg.root)
        folders: dict[str, Path | None] = {split: root / split for split in ("trainA", "trainB", "testA", "testB")}
        for split in ("testA", "testB"):
            folder = folders[split]
            if not folder.is_dir() or not list_images(folder):
                folders[split] = None
        return folders

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self.folders = self.domain_folders()
        # A domain without test images lends a seeded share of its training images (never trained on).
        self.train_set = UnpairedDataset(
            self.folders["trainA"], self.folders["trainB"],
            train_transform(self.cfg.load_size, self.cfg.crop_size, self.cfg.flip),
            holdout_a=self.cfg.holdout if self.folders["testA"] is None else 0.0,
            holdout_b=self.cfg.holdout if self.folders["testB"] is None else 0.0, seed=self.seed,
            max_images=self.cfg.max_images)
        if self.train_set.skipped:
            log.warning("%d unreadable training image(s) will be skipped", len(self.train_set.skipped))
        for domain, held in (("A", self.train_set.held_a), ("B", self.train_set.held_b)):
            if held:
                log.info("domain %s has no test folder: %d of its images are held out for samples and "
                         "evaluation (data.holdout=%g, seed %d)", domain, len(held), self.cfg.holdout, self.seed)

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "setup() first"
        trainer = self.trainer
        sampler = UnpairedSampler(
            len(self.train_set.files_a), len(self.train_set.files_b), self.seed,
            num_replicas=trainer.world_size if trainer else 1, rank=trainer.global_rank if trainer else 0)
        # Lightning creates the first iterator before it calls set_epoch, and worker processes prefetch
        # indices at creation: start from the (restored) epoch so a resumed run draws that epoch's keys.
        sampler.set_epoch(trainer.current_epoch if trainer else 0)
        workers = self.cfg.num_workers  # resolved by config.concrete
        return DataLoader(
            self.train_set, batch_size=self.cfg.batch_size, sampler=sampler, num_workers=workers,
            pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0, drop_last=False)

    def sample_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed test images of each domain for grids: the test folder, else the held-out images, else
        training images."""
        assert self.train_set is not None, "setup() first"
        out = []
        for domain, held, train in (("A", self.train_set.held_a, self.train_set.files_a),
                                    ("B", self.train_set.held_b, self.train_set.files_b)):
            source = self.folders[f"test{domain}"] or held or train
            out.append(load_samples(source, self.cfg.n_samples, self.cfg.crop_size))
        return out[0], out[1]

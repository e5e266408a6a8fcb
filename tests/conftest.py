"""Shared fixtures: tiny configs and tiny unpaired image folders, so every test runs in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

TINY = {
    "model": {"generator": {"ngf": 4, "n_blocks": 1}, "discriminator": {"ndf": 4, "n_layers": 2}, "pool_size": 3},
    "data": {"load_size": 36, "crop_size": 32, "batch_size": 1, "num_workers": 0, "n_samples": 2},
    "optim": {"n_epochs": 1, "n_epochs_decay": 1},
    "train": {"accelerator": "cpu", "devices": "1", "sample_every_n_steps": 2, "log_every_n_steps": 1,
              "checkpoint_every_n_epochs": 0},
}


def make_domain(folder: Path, n: int, seed: int, size: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    """A dataset folder with trainA (4), trainB (3), testA (2), testB (2) random images."""
    root = tmp_path / "data"
    for i, (split, n) in enumerate({"trainA": 4, "trainB": 3, "testA": 2, "testB": 2}.items()):
        make_domain(root / split, n, seed=i)
    return root


@pytest.fixture
def tiny_config(tmp_path: Path, unpaired: Path) -> Path:
    """A YAML config for a tiny CycleGAN on `unpaired`, writing runs under tmp_path/runs."""
    cfg = {**TINY, "data": {**TINY["data"], "dataset": str(unpaired)},
           "train": {**TINY["train"], "out_dir": str(tmp_path / "runs")}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path

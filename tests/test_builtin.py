"""The built-in procedurally generated "shapes" dataset."""

from __future__ import annotations

import hashlib
import random
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.builtin import BUILTIN_DATASETS, MARKER, ensure_builtin, is_builtin
from translate.errors import DataError

SPEC = BUILTIN_DATASETS["shapes"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_builtin("shapes", tmp_path_factory.mktemp("data"))


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im, dtype=np.float64)


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for split in SPEC.counts:
        for k in (0, 1, 7, SPEC.counts[split] - 1):
            h.update(load(root / split / f"{k:05d}.png").tobytes())  # pixels, not file bytes
    return h.hexdigest()


def test_registry() -> None:
    assert is_builtin("shapes") and not is_builtin("horse2zebra")
    assert SPEC.image_size == 64
    assert set(SPEC.counts) == {"trainA", "trainB", "testA", "testB"}
    img = SPEC.draw("A", random.Random(0))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8


def test_creates_declared_folders_and_counts(shapes: Path) -> None:
    assert shapes.name == "shapes"
    for split, count in SPEC.counts.items():
        files = sorted((shapes / split).iterdir())
        assert [f.name for f in files] == [f"{k:05d}.png" for k in range(count)]
        for f in files[:3] + files[-2:]:
            with Image.open(f) as im:
                assert im.format == "PNG" and im.mode == "RGB" and im.size == (64, 64)
    assert (shapes / MARKER).read_text().strip() == SPEC.fingerprint
    assert not [p for p in shapes.parent.iterdir() if ".tmp-" in p.name]


def test_deterministic(shapes: Path, tmp_path: Path) -> None:
    again = ensure_builtin("shapes", tmp_path / "other")
    assert digest(again) == digest(shapes)


def test_second_call_is_a_noop(shapes: Path) -> None:
    f = shapes / "trainA" / "00000.png"
    before = f.stat().st_mtime_ns
    t0 = time.perf_counter()
    assert ensure_builtin("shapes", shapes.parent) == shapes
    assert time.perf_counter() - t0 < 0.1
    assert f.stat().st_mtime_ns == before


def test_incomplete_directory_is_regenerated(shapes: Path, tmp_path: Path) -> None:
    broken = tmp_path / "shapes"
    (broken / "trainA").mkdir(parents=True)
    (broken / "trainA" / "00000.png").write_bytes(b"not a png")
    (broken / "junk.txt").write_text("x")
    assert ensure_builtin("shapes", tmp_path) == broken
    assert not (broken / "junk.txt").exists()
    assert len(list((broken / "trainB").iterdir())) == SPEC.counts["trainB"]
    assert digest(broken) == digest(shapes)


def test_stale_marker_is_regenerated(shapes: Path, tmp_path: Path) -> None:
    stale = tmp_path / "shapes"
    stale.mkdir()
    (stale / MARKER).write_text("shapes v0 0000\n")
    ensure_builtin("shapes", tmp_path)
    assert digest(stale) == digest(shapes)


def test_unknown_name_raises() -> None:
    with pytest.raises(DataError, match="unknown built-in dataset; choose from: shapes"):
        ensure_builtin("horses", "/nonexistent-root")


def foreground(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask of the shape (pixels past half-way from the background to the shape colour) and its colour."""
    bg = img[0, 0]  # the shape never reaches a corner
    dist = np.linalg.norm(img - bg, axis=-1)
    assert dist.max() > 100, "shape does not stand out from the background"
    colour = img[dist > 0.95 * dist.max()].mean(axis=0)
    return dist > 0.5 * np.linalg.norm(colour - bg), colour


def bbox_fill(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    return mask.sum() / ((ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1))


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.argwhere(mask).mean(axis=0)


@pytest.mark.parametrize("k", range(SPEC.counts["testA"]))
def test_test_pairs_share_colour_size_position(shapes: Path, k: int) -> None:
    a, b = load(shapes / "testA" / f"{k:05d}.png"), load(shapes / "testB" / f"{k:05d}.png")
    assert np.abs(a[0, 0] - b[0, 0]).max() <= 1  # same background
    mask_a, colour_a = foreground(a)
    mask_b, colour_b = foreground(b)
    assert np.abs(colour_a - colour_b).max() < 6
    assert abs(mask_a.sum() / mask_b.sum() - 1) < 0.15
    assert 0.7 <= bbox_fill(mask_a) <= 0.85  # a disc fills ~pi/4 of its bounding box
    assert bbox_fill(mask_b) > 0.9
    assert np.abs(centroid(mask_a) - centroid(mask_b)).max() < 2
    radius = np.sqrt(mask_a.sum() / np.pi)
    assert 0.18 * 64 - 1 <= radius <= 0.32 * 64 + 1


def test_train_images_are_single_shapes(shapes: Path) -> None:
    for domain, lo, hi in (("A", 0.7, 0.85), ("B", 0.9, 1.0)):
        fills = [bbox_fill(foreground(load(shapes / f"train{domain}" / f"{k:05d}.png"))[0]) for k in range(0, 400, 25)]
        assert all(lo <= f <= hi for f in fills), fills
    a0, b0 = load(shapes / "trainA" / "00000.png"), load(shapes / "trainB" / "00000.png")
    assert not np.allclose(a0[0, 0], b0[0, 0])  # train domains are independent draws

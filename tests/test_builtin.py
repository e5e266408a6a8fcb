"""The built-in procedurally generated datasets, "shapes" and "stripes"."""

from __future__ import annotations

import hashlib
import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.builtin import BUILTIN_DATASETS, MARKER, ensure_builtin, is_builtin
from translate.errors import DataError

NAMES = ("shapes", "stripes")
SPEC = BUILTIN_DATASETS["shapes"]
STRIPES = BUILTIN_DATASETS["stripes"]
PERIOD = 8  # px across the stripes at 64 px: 1/8 of the image side


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module", params=NAMES)
def built(request: pytest.FixtureRequest, data_root: Path) -> Path:
    """Each built-in dataset, generated once per module (the named fixtures below reuse it)."""
    return ensure_builtin(request.param, data_root)


@pytest.fixture(scope="module")
def shapes(data_root: Path) -> Path:
    return ensure_builtin("shapes", data_root)


@pytest.fixture(scope="module")
def stripes(data_root: Path) -> Path:
    return ensure_builtin("stripes", data_root)


def load(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im, dtype=np.float64)


def digest(root: Path) -> str:
    counts = BUILTIN_DATASETS[root.name].counts
    h = hashlib.sha256()
    for split in counts:
        for k in (0, 1, 7, counts[split] - 1):
            h.update(load(root / split / f"{k:05d}.png").tobytes())  # pixels, not file bytes
    return h.hexdigest()


def test_registry() -> None:
    assert set(NAMES) <= set(BUILTIN_DATASETS)
    assert is_builtin("shapes") and is_builtin("stripes") and not is_builtin("horse2zebra")
    for name in NAMES:
        spec = BUILTIN_DATASETS[name]
        assert spec.name == name and spec.image_size == 64
        assert spec.counts == {"trainA": 400, "trainB": 400, "testA": 16, "testB": 16}
        for domain in "AB":
            img = spec.draw(domain, random.Random(0))
            assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert SPEC.fingerprint != STRIPES.fingerprint
    assert STRIPES.description == "solid shapes (A) <-> striped shapes (B), colour/shape/size/position preserved"


def test_shapes_pixels_unchanged(shapes: Path) -> None:
    """The "shapes" images are pinned: adding "stripes" (or any refactor) must not change a pixel."""
    assert SPEC.fingerprint == "shapes v1 84c0012cf65eb784"
    pinned = {"trainA/00000.png": "16a78f7c67586eb4", "trainB/00007.png": "31786acbafd84389",
              "testA/00003.png": "93b65348aff4b197", "testB/00003.png": "aed58dbc89ca593b"}
    for name, want in pinned.items():
        with Image.open(shapes / name) as im:
            assert hashlib.sha256(np.asarray(im).tobytes()).hexdigest()[:16] == want, name


def test_creates_declared_folders_and_counts(built: Path) -> None:
    spec = BUILTIN_DATASETS[built.name]
    for split, count in spec.counts.items():
        files = sorted((built / split).iterdir())
        assert [f.name for f in files] == [f"{k:05d}.png" for k in range(count)]
        for f in files[:3] + files[-2:]:
            with Image.open(f) as im:
                assert im.format == "PNG" and im.mode == "RGB" and im.size == (64, 64)
    assert (built / MARKER).read_text().strip() == spec.fingerprint
    assert not [p for p in built.parent.iterdir() if ".tmp-" in p.name]


def test_deterministic(built: Path, tmp_path: Path) -> None:
    again = ensure_builtin(built.name, tmp_path / "other")
    assert digest(again) == digest(built)


def test_second_call_is_a_noop(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A complete copy is returned as it is: nothing drawn or written, every file the same inode and mtime."""
    import translate.data.builtin as builtin

    def snapshot() -> dict[Path, tuple[int, int]]:
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in [built.parent, *built.parent.rglob("*")]}

    def refuse(*args: object) -> None:
        raise AssertionError("a complete built-in dataset was written again")

    before = snapshot()
    monkeypatch.setattr(builtin, "save_png", refuse)
    assert ensure_builtin(built.name, built.parent) == built
    assert snapshot() == before


def test_incomplete_directory_is_regenerated(built: Path, tmp_path: Path) -> None:
    broken = tmp_path / built.name
    (broken / "trainA").mkdir(parents=True)
    (broken / "trainA" / "00000.png").write_bytes(b"not a png")
    (broken / "junk.txt").write_text("x")
    assert ensure_builtin(built.name, tmp_path) == broken
    assert not (broken / "junk.txt").exists()
    assert len(list((broken / "trainB").iterdir())) == BUILTIN_DATASETS[built.name].counts["trainB"]
    assert digest(broken) == digest(built)


def test_stale_marker_is_regenerated(built: Path, tmp_path: Path) -> None:
    stale = tmp_path / built.name
    stale.mkdir()
    (stale / MARKER).write_text(f"{built.name} v0 0000\n")
    ensure_builtin(built.name, tmp_path)
    assert digest(stale) == digest(built)


@pytest.mark.parametrize("name", ["horses", "stripe"])
def test_unknown_name_raises(name: str) -> None:
    with pytest.raises(DataError, match="unknown built-in dataset; choose from: faces, shapes, stripes"):
        ensure_builtin(name, "/nonexistent-root")


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
def test_shapes_test_pairs_share_colour_size_position(shapes: Path, k: int) -> None:
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


def test_shapes_train_images_are_single_shapes(shapes: Path) -> None:
    for domain, lo, hi in (("A", 0.7, 0.85), ("B", 0.9, 1.0)):
        fills = [bbox_fill(foreground(load(shapes / f"train{domain}" / f"{k:05d}.png"))[0]) for k in range(0, 400, 25)]
        assert all(lo <= f <= hi for f in fills), fills
    a0, b0 = load(shapes / "trainA" / "00000.png"), load(shapes / "trainB" / "00000.png")
    assert not np.allclose(a0[0, 0], b0[0, 0])  # train domains are independent draws


# --- "stripes" -------------------------------------------------------------------------------------


def modes(img: np.ndarray, n: int) -> list[np.ndarray]:
    """The `n` most frequent pixel values, most frequent first (pure background, colour, dark band)."""
    values, counts = np.unique(img.reshape(-1, 3), axis=0, return_counts=True)
    return [values[i] for i in np.argsort(-counts, kind="stable")[:n]]


def striped_parts(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A "stripes" B image's background, band colour and dark-band colour (its three commonest values)."""
    bg, *bands = modes(img, 3)
    assert np.array_equal(bg, img[0, 0])  # the shape never reaches a corner
    colour, dark = sorted(bands, key=lambda c: -c.sum())
    return bg, colour, dark


def shape_mask(img: np.ndarray, bg: np.ndarray, *colours: np.ndarray) -> np.ndarray:
    """Pixels at least half covered by the shape: each pixel is unmixed into its coverage by each of
    `colours` over `bg` (least squares; exact up to rounding for an anti-aliased edge). Coverage comes
    in steps of 1/16 (4x4 supersampling): the threshold sits between 7/16 and 8/16, away from rounding."""
    basis = np.stack([c - bg for c in colours], axis=1)  # (3, n)
    cover = (img - bg) @ np.linalg.pinv(basis).T  # (H, W, n)
    return cover.sum(axis=-1) > 0.47


def bbox(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([ys.min(), xs.min(), ys.max(), xs.max()])


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= np.roll(mask, (dy, dx), axis=(0, 1))
    return out


def diagonal_profile(level: np.ndarray, interior: np.ndarray) -> np.ndarray:
    """Mean of `level` over each anti-diagonal x + y = s inside `interior`: the profile across the stripes
    (45 degrees), one sample per 1/sqrt(2) px."""
    ys, xs = np.nonzero(interior)
    s = ys + xs
    s0 = s.min()
    return np.bincount(s - s0, weights=level[ys, xs]) / np.bincount(s - s0)


def dominant_period_px(profile: np.ndarray) -> float:
    """The lag (in px across the stripes) of the autocorrelation peak between 4 and 12 px: one period,
    not two (the profile holds 1/sqrt(2) px per sample). Also checks the anti-correlation half-way."""
    x = profile - profile.mean()

    def ac(lag: int) -> float:
        return float(np.dot(x[:-lag], x[lag:]) / np.sqrt(np.dot(x[:-lag], x[:-lag]) * np.dot(x[lag:], x[lag:])))

    lags = range(round(4 * math.sqrt(2)), round(12 * math.sqrt(2)) + 1)
    best = max(lags, key=ac)
    assert ac(best) > 0.8 and ac(round(best / 2)) < -0.8, [round(ac(lag), 2) for lag in lags]
    return best / math.sqrt(2)


@pytest.mark.parametrize("k", range(STRIPES.counts["testA"]))
def test_stripes_test_pairs_differ_only_by_stripes(stripes: Path, k: int) -> None:
    a, b = load(stripes / "testA" / f"{k:05d}.png"), load(stripes / "testB" / f"{k:05d}.png")
    bg, colour = modes(a, 2)
    assert np.array_equal(bg, a[0, 0]) and np.array_equal(b[0, 0], bg)  # same background
    assert np.linalg.norm(colour - bg) > 100
    bg_b, colour_b, dark_b = striped_parts(b)
    assert np.array_equal(colour_b, colour)  # B's bright bands are A's colour ...
    assert np.abs(dark_b - 0.25 * colour).max() <= 0.5  # ... its dark bands that colour times 0.25

    # same outline: the same region is foreground, the same bounding box holds the bright bands
    mask_a, mask_b = shape_mask(a, bg, colour), shape_mask(b, bg, colour, dark_b)
    assert np.linalg.norm(dark_b - bg) > 25  # true of every test pair: the dark bands stand out too
    assert (mask_a ^ mask_b).sum() <= 0.02 * mask_a.sum()
    bright_b = np.linalg.norm(b - colour, axis=-1) < np.minimum(np.linalg.norm(b - dark_b, axis=-1),
                                                                np.linalg.norm(b - bg, axis=-1))
    assert np.abs(bbox(mask_a) - bbox(bright_b)).max() <= 2
    radius = np.sqrt(mask_a.sum() / np.pi)
    assert 0.18 * 64 - 1 <= radius <= 0.32 * 64 + 1

    # inside the shape: A is flat, B alternates between two levels with the declared period
    interior = erode(mask_a, 2)
    assert interior.sum() > 150
    assert a[interior].std(axis=0).max() < 1
    level = (b @ colour) / (colour @ colour)  # 1 on a bright band, 0.25 on a dark one
    inner = level[interior]
    near_bright, near_dark = np.mean(np.abs(inner - 1) < 0.05), np.mean(np.abs(inner - 0.25) < 0.05)
    assert near_bright > 0.25 and near_dark > 0.25 and near_bright + near_dark > 0.55, (near_bright, near_dark)
    assert np.abs(b[interior & (level > 0.95)].mean(axis=0) - colour).max() < 3
    profile = diagonal_profile(level, interior)
    assert profile.max() > 0.9 and profile.min() < 0.35  # each anti-diagonal lies in one band
    assert abs(dominant_period_px(profile) - PERIOD) <= 0.75


def test_stripes_train_images(stripes: Path) -> None:
    fills = {"A": [], "B": []}
    for domain in "AB":
        for k in range(0, 400, 20):
            img = load(stripes / f"train{domain}" / f"{k:05d}.png")
            if domain == "A":
                bg, colour = modes(img, 2)
                mask = shape_mask(img, bg, colour)
                assert img[erode(mask, 2)].std(axis=0).max() < 1  # solid
            else:
                bg, colour, dark = striped_parts(img)
                assert np.abs(dark - 0.25 * colour).max() <= 0.5
                mask = shape_mask(img, bg, colour, dark)
                level = (img @ colour) / (colour @ colour)
                assert abs(dominant_period_px(diagonal_profile(level, erode(mask, 2))) - PERIOD) <= 0.75
            assert np.array_equal(bg, img[0, 0]) and np.linalg.norm(colour - bg) > 100
            fills[domain].append(bbox_fill(mask))
    for domain, f in fills.items():
        discs = sum(0.7 <= x <= 0.85 for x in f)
        squares = sum(x > 0.9 for x in f)
        assert discs + squares == len(f) and discs >= 4 and squares >= 4, (domain, f)
    a0, b0 = load(stripes / "trainA" / "00000.png"), load(stripes / "trainB" / "00000.png")
    assert not np.allclose(a0[0, 0], b0[0, 0])  # train domains are independent draws


def test_stripes_phase_is_fixed() -> None:
    """Stripes line up with the image grid the same way in every image, wherever the shape is."""
    rng = random.Random(1)
    levels = []
    for _ in range(6):
        p = STRIPES.sample(rng, 64)
        img = STRIPES.render("B", p, 64).astype(np.float64)
        colour = np.asarray(p.colour)
        solid = STRIPES.render("A", p, 64)
        inside = erode((solid != solid[0, 0]).any(axis=-1), 2)
        levels.append(np.where(inside, (img @ colour) / (colour @ colour), np.nan))
    ys, xs = np.mgrid[:64, :64]
    u = ((xs + 0.5) + (ys + 0.5)) / math.sqrt(2) % PERIOD  # across the stripes, from the origin
    for level in levels:
        inside = ~np.isnan(level)
        bright, dark = inside & (u > 1) & (u < 3), inside & (u > 5) & (u < 7)  # band centres, away from edges
        assert bright.sum() > 20 and dark.sum() > 20
        assert np.allclose(level[bright], 1, atol=0.03) and np.allclose(level[dark], 0.25, atol=0.03)

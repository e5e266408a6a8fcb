"""Built-in, procedurally generated datasets: `translate fit shapes` trains with no download.

Both datasets hold one filled shape per 64x64 RGB image. What varies, and what a good translation
keeps: the shape's colour (one of 8 saturated palette colours plus +-12 jitter per channel), its size
(radius 18%-32% of the image side; a square's half-side is radius * sqrt(pi)/2 ~= 0.886 * radius, so
both kinds have the same area), its centre (continuous, the whole shape inside the image) and the
background. Background choice: a near-neutral plain gray, dark (level 35-75) or light (175-215) with a
+-8 per-channel tint, so a generator must carry the background through too (non-trivial) while the
shape always stands out from it by > 100 levels in some channel (easy).

"shapes" (a change of outline): domain A holds filled circles (discs), domain B filled axis-aligned
squares, both in a solid colour.

"stripes" (a change of texture, the synthetic horse -> zebra): the shape is a disc or a square (50/50
per image) in both domains. In A it is solid; in B it is filled with diagonal (45 degree) stripes:
alternating bands of the shape colour and of a dark band (the colour times 0.25), period 1/8 of the
image side (8 px at 64 px, measured across the stripes), half duty cycle, with a phase fixed to the
image grid, so the translation only has to add or remove the texture.

trainA and trainB are independent draws (unpaired). testA/k and testB/k are paired by construction:
same parameters (colour, size, centre, background and, for "stripes", the kind of shape), only the
shape ("shapes") or the stripes ("stripes") differ, so translation quality can be measured directly,
e.g. mean |G_AB(testA/k) - testB/k|.

Determinism: each split is drawn from `random.Random(seed)` with a fixed per-split seed (only its
`random()` method, whose sequence Python guarantees), rendered in float64 numpy with 4x4
supersampling (box-filter anti-aliasing, the same as drawing at 4x and downsampling with BOX), and
saved as lossless PNG, so the pixels are identical every time (the file bytes may differ between
Pillow versions, the images do not).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import random
import shutil
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from translate.data.faces import render_face, sample_face
from translate.errors import DataError

MARKER = ".complete"
DOMAINS = ("A", "B")

# red, orange, yellow, green, cyan, blue, purple, magenta
PALETTE = (
    (225, 40, 40), (245, 140, 20), (240, 220, 30), (40, 190, 60),
    (30, 210, 230), (40, 70, 230), (140, 50, 210), (230, 40, 180),
)
SHAPE_OF_DOMAIN = {"A": "disc", "B": "square"}  # "shapes"
STRIPE_PERIOD = 1 / 8  # of the image side, measured across the (45 degree) stripes
STRIPE_DARK = 0.25  # the dark band's colour is the shape's colour times this


@dataclass(frozen=True)
class ShapeParams:
    """Colour and background (RGB floats), centre and radius in px; `kind` ("disc" or "square") is
    None where the domain decides it ("shapes")."""

    colour: tuple[float, float, float]
    background: tuple[float, float, float]
    cx: float
    cy: float
    radius: float
    kind: str | None = None


def sample_shape(rng: random.Random, size: int) -> ShapeParams:
    """Draws one set of shape parameters for a `size` x `size` image."""
    base = PALETTE[int(rng.random() * len(PALETTE))]
    colour = tuple(min(255.0, max(0.0, c + (rng.random() * 2 - 1) * 12)) for c in base)
    level = 35 + rng.random() * 40 if rng.random() < 0.5 else 175 + rng.random() * 40
    background = tuple(level + (rng.random() * 2 - 1) * 8 for _ in range(3))
    radius = size * (0.18 + rng.random() * 0.14)
    lo, hi = radius + 1, size - 1 - radius
    cx, cy = lo + rng.random() * (hi - lo), lo + rng.random() * (hi - lo)
    return ShapeParams(colour, background, cx, cy, radius)  # type: ignore[arg-type]


def sample_kind(rng: random.Random, size: int) -> ShapeParams:
    """`sample_shape`, then the kind of shape, a disc or a square (50/50)."""
    p = sample_shape(rng, size)
    return replace(p, kind="disc" if rng.random() < 0.5 else "square")


@functools.lru_cache(maxsize=8)
def _bright_bands(size: int, supersample: int) -> np.ndarray:
    """Sub-pixel mask of the stripes' bright bands (45 degrees, phase fixed to the image grid)."""
    offsets = (np.arange(size * supersample) + 0.5) / supersample
    period = STRIPE_PERIOD * size
    across = (offsets[None, :] + offsets[:, None]) / math.sqrt(2)  # distance across the stripes from (0, 0)
    bright = across % period < period / 2
    bright.flags.writeable = False
    return bright


def _render(kind: str | None, p: ShapeParams, size: int, supersample: int, striped: bool) -> np.ndarray:
    """The shape on its background as uint8 (size, size, 3): solid, or striped when `striped`."""
    offsets = (np.arange(size * supersample) + 0.5) / supersample  # sub-pixel sample centres
    dx, dy = offsets[None, :] - p.cx, offsets[:, None] - p.cy
    if kind == "disc":
        inside = dx * dx + dy * dy <= p.radius * p.radius
    elif kind == "square":
        half = p.radius * math.sqrt(math.pi) / 2
        inside = (np.abs(dx) <= half) & (np.abs(dy) <= half)
    else:
        raise ValueError(f"shape kind must be 'disc' or 'square', not {kind!r}")
    colour = np.asarray(p.colour)
    layers = [(inside, colour)]  # (sub-pixel mask, its colour)
    if striped:
        bright = _bright_bands(size, supersample)
        layers = [(inside & bright, colour), (inside & ~bright, colour * STRIPE_DARK)]
    covers = [m.reshape(size, supersample, size, supersample).mean(axis=(1, 3))[..., None] for m, _ in layers]
    ink = sum(c * cover for (_, c), cover in zip(layers, covers))
    img = np.asarray(p.background) * (1 - sum(covers)) + ink
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_shape(domain: str, p: ShapeParams, size: int, supersample: int = 4) -> np.ndarray:
    """For "shapes": a disc (domain "A") or an equal-area square ("B"), uint8 of shape (size, size, 3)."""
    if domain not in SHAPE_OF_DOMAIN:
        raise ValueError(f"domain must be 'A' or 'B', not {domain!r}")
    return _render(SHAPE_OF_DOMAIN[domain], p, size, supersample, striped=False)


def render_stripes(domain: str, p: ShapeParams, size: int, supersample: int = 4) -> np.ndarray:
    """For "stripes": the shape `p.kind`, solid (domain "A") or striped ("B"), uint8 (size, size, 3)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'A' or 'B', not {domain!r}")
    return _render(p.kind, p, size, supersample, striped=domain == "B")


@dataclass(frozen=True)
class BuiltinSpec:
    """A generated dataset: its split folders and counts, and how to draw one image of a domain."""

    name: str
    description: str
    image_size: int
    counts: dict[str, int]
    sample: Callable[[random.Random, int], Any] = field(repr=False)  # the parameters of one image
    render: Callable[[str, Any, int], np.ndarray] = field(repr=False)
    version: int = 1  # bump when the drawing changes, so stale copies are regenerated

    def draw(self, domain: str, rng: random.Random) -> np.ndarray:
        """One independent uint8 (H, W, 3) image of `domain` ("A" or "B")."""
        return self.render(domain, self.sample(rng, self.image_size), self.image_size)

    @property
    def fingerprint(self) -> str:
        """The marker file's content: a hash of everything that determines the files."""
        key = f"{self.name}|v{self.version}|{self.image_size}|{sorted(self.counts.items())}"
        return f"{self.name} v{self.version} {hashlib.sha256(key.encode()).hexdigest()[:16]}"


_SPLIT_COUNTS = {"trainA": 400, "trainB": 400, "testA": 16, "testB": 16}

BUILTIN_DATASETS: dict[str, BuiltinSpec] = {
    "shapes": BuiltinSpec(
        name="shapes",
        description="circles (A) <-> squares (B), colour/size/position preserved",
        image_size=64,
        counts=_SPLIT_COUNTS,
        sample=sample_shape,
        render=render_shape,
    ),
    "stripes": BuiltinSpec(
        name="stripes",
        description="solid shapes (A) <-> striped shapes (B), colour/shape/size/position preserved",
        image_size=64,
        counts=_SPLIT_COUNTS,
        sample=sample_kind,
        render=render_stripes,
    ),
    "faces": BuiltinSpec(
        name="faces",
        description="cartoon faces with (A) and without (B) eyeglasses, for GeneGAN; face and pose preserved",
        image_size=64,
        counts={"trainA": 800, "trainB": 800, "testA": 64, "testB": 64},
        version=2,  # v2: bolder rims and tinted lenses
        sample=sample_face,
        render=render_face,
    ),
}


def is_builtin(name: str) -> bool:
    return name in BUILTIN_DATASETS


def save_png(img: np.ndarray, path: Path) -> None:
    Image.fromarray(img, mode="RGB").save(path, format="PNG")


def _is_complete(path: Path, spec: BuiltinSpec) -> bool:
    try:
        return (path / MARKER).read_text().strip() == spec.fingerprint
    except OSError:
        return False


def _seed(name: str, split: str) -> int:
    return zlib.crc32(f"translate-builtin/{name}/{split}".encode())


def _generate(spec: BuiltinSpec, out: Path) -> None:
    for split, count in spec.counts.items():
        if split.startswith("test"):
            continue  # written below, as pairs
        (out / split).mkdir(parents=True)
        rng = random.Random(_seed(spec.name, split))
        for k in range(count):
            save_png(spec.draw(split[-1], rng), out / split / f"{k:05d}.png")
    # test images are paired by construction: testA/k and testB/k share every parameter, only the domain
    rng = random.Random(_seed(spec.name, "test"))
    n = max(spec.counts.get("testA", 0), spec.counts.get("testB", 0))
    params = [spec.sample(rng, spec.image_size) for _ in range(n)]
    for domain in DOMAINS:
        split = "test" + domain
        if split in spec.counts:
            (out / split).mkdir(parents=True)
            for k in range(spec.counts[split]):
                img = spec.render(domain, params[k], spec.image_size)
                save_png(img, out / split / f"{k:05d}.png")
    (out / MARKER).write_text(spec.fingerprint + "\n")


def ensure_builtin(name: str, root: str | Path) -> Path:
    """Returns `root/name`, generating the built-in dataset `name` there first unless already complete."""
    if name not in BUILTIN_DATASETS:
        raise DataError(name, f"unknown built-in dataset; choose from: {', '.join(sorted(BUILTIN_DATASETS))}")
    spec = BUILTIN_DATASETS[name]
    dest = Path(root) / name
    if _is_complete(dest, spec):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _generate(spec, tmp)
        if _is_complete(dest, spec):  # another process finished first
            return dest
        if dest.exists():  # incomplete or stale: replace it
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not _is_complete(dest, spec):  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest

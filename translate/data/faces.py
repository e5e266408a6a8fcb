"""The built-in "faces" dataset: procedurally drawn faces with (A) and without (B) eyeglasses, for GeneGAN.

Each 64x64 image is a cartoon face: a plain background with a soft vertical gradient, hair (one of six
colours, or none) behind the head, a skin-toned oval face (six tones with jitter), eyes with irises,
eyebrows, a nose and a mouth (a smile of random width). Pose varies: the face is shifted, scaled and
tilted (+-12 degrees), and the features move sideways (a hint of yaw). Domain A adds eyeglasses: two round
or square rims around the eyes, a bridge and temples, in a dark or coloured frame, with a faint lens tint.

trainA and trainB are independent draws; testA/k and testB/k are the same face with and without the
glasses, so |testA/k - testB/k| marks exactly where the attribute is (used to measure that a swap keeps
the rest of the face). Drawn in float64 with 4x4 supersampling from `random.Random` streams, like the
other built-in datasets (see builtin.py), so the pixels are identical on every machine.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

SKIN = ((255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 134, 90), (141, 85, 50), (95, 60, 40))
HAIR = ((25, 20, 18), (70, 45, 25), (120, 80, 40), (215, 180, 110), (165, 70, 35), (160, 160, 165))
FRAMES = ((20, 20, 20), (60, 40, 25), (150, 30, 30), (30, 50, 140), (160, 160, 170))


@dataclass(frozen=True)
class FaceParams:
    background: tuple[float, float, float]
    gradient: float  # brightness change from top to bottom
    hair: tuple[float, float, float] | None
    hair_volume: float
    skin: tuple[float, float, float]
    cx: float  # face centre and half-axes, as fractions of the image side
    cy: float
    rx: float
    ry: float
    tilt: float  # radians
    yaw: float  # sideways shift of the features, fraction of rx
    eye_colour: tuple[float, float, float]
    smile: float  # mouth half-width, fraction of rx
    frame: tuple[float, float, float]
    square_rims: bool
    rim: float  # rim radius, fraction of rx


def _jitter(rng: random.Random, colour: tuple[int, int, int], amount: float) -> tuple[float, float, float]:
    return tuple(min(255.0, max(0.0, c + (rng.random() * 2 - 1) * amount)) for c in colour)  # type: ignore[return-value]


def _pick(rng: random.Random, options: tuple) -> tuple:
    return options[int(rng.random() * len(options))]


def sample_face(rng: random.Random, size: int) -> FaceParams:
    """Draws one face (the glasses' look is drawn too; only domain A shows them)."""
    level = 60 + rng.random() * 150
    background = tuple(min(255.0, max(0.0, level + (rng.random() * 2 - 1) * 45)) for _ in range(3))
    has_hair = rng.random() < 0.85
    return FaceParams(
        background=background,  # type: ignore[arg-type]
        gradient=(rng.random() * 2 - 1) * 40,
        hair=_jitter(rng, _pick(rng, HAIR), 12) if has_hair else None,
        hair_volume=0.05 + rng.random() * 0.12,
        skin=_jitter(rng, _pick(rng, SKIN), 14),
        cx=0.5 + (rng.random() * 2 - 1) * 0.05, cy=0.53 + (rng.random() * 2 - 1) * 0.04,
        rx=0.25 + rng.random() * 0.04, ry=0.32 + rng.random() * 0.04,
        tilt=math.radians((rng.random() * 2 - 1) * 12), yaw=(rng.random() * 2 - 1) * 0.12,
        eye_colour=_jitter(rng, _pick(rng, ((60, 40, 20), (40, 90, 150), (50, 110, 60), (30, 25, 20))), 10),
        smile=0.25 + rng.random() * 0.2,
        frame=_jitter(rng, _pick(rng, FRAMES), 10), square_rims=rng.random() < 0.4, rim=0.2 + rng.random() * 0.05,
    )


def render_face(domain: str, p: FaceParams, size: int, supersample: int = 4) -> np.ndarray:
    """Domain "A" (with eyeglasses) or "B" (without): uint8 (size, size, 3)."""
    if domain not in ("A", "B"):
        raise ValueError(f"domain must be 'A' or 'B', not {domain!r}")
    n = size * supersample
    grid = (np.arange(n) + 0.5) / n  # sub-pixel centres in [0, 1]
    x, y = grid[None, :], grid[:, None]
    # face coordinates: origin at the face centre, unit = the half-axes, rotated by the tilt
    dx, dy = x - p.cx, y - p.cy
    cos, sin = math.cos(p.tilt), math.sin(p.tilt)
    u = (cos * dx + sin * dy) / p.rx
    v = (-sin * dx + cos * dy) / p.ry
    fu = u - p.yaw  # the features' horizontal position

    def ellipse(cu: float, cv: float, au: float, av: float, uu: np.ndarray = fu) -> np.ndarray:
        return ((uu - cu) / au) ** 2 + ((v - cv) / av) ** 2 <= 1.0

    background = np.asarray(p.background) + p.gradient * (y[..., None] - 0.5)
    img = np.broadcast_to(background, (n, n, 3)).copy()

    def paint(mask: np.ndarray, colour: tuple[float, ...], alpha: float = 1.0) -> None:
        img[mask] = img[mask] * (1 - alpha) + np.asarray(colour) * alpha

    face = u ** 2 + v ** 2 <= 1.0
    if p.hair is not None:
        hair = ((u / (1 + p.hair_volume)) ** 2 + ((v + 0.15) / (1 + p.hair_volume)) ** 2 <= 1.0) & (v < 0.35)
        paint(hair, p.hair)
    paint(face, p.skin)
    if p.hair is not None:  # a fringe over the forehead
        paint(face & (v < -0.62 + 0.08 * np.cos(u * 9)), p.hair)
    skin = np.asarray(p.skin)
    dark = tuple(skin * 0.6)
    for side in (-1, 1):
        eye_u = side * 0.38
        paint(ellipse(eye_u, -0.12, 0.16, 0.075), (250, 250, 245))
        paint(ellipse(eye_u, -0.12, 0.07, 0.07), p.eye_colour)
        paint(ellipse(eye_u, -0.12, 0.03, 0.03), (10, 10, 10))
        brow = ellipse(eye_u, -0.33, 0.18, 0.035)
        paint(brow, p.hair if p.hair is not None else dark)
    paint(ellipse(0.0, 0.12, 0.05, 0.12), dark, alpha=0.5)  # nose
    mouth = ellipse(0.0, 0.45, p.smile, 0.09) & ~ellipse(0.0, 0.40, p.smile * 1.05, 0.08)
    paint(mouth, (150, 40, 50))
    if domain == "A":
        width = 0.08  # rim thickness in face units: ~1.5 px at 64 px, bold enough to learn in minutes
        for side in (-1, 1):
            cu, cv, r = side * 0.38, -0.12, p.rim / 0.25 * 0.25
            if p.square_rims:
                d = np.maximum(np.abs(fu - cu) / (r * 1.15), np.abs(v - cv) / r)
            else:
                d = np.sqrt(((fu - cu) / (r * 1.15)) ** 2 + ((v - cv) / r) ** 2)
            paint(d <= 1.0, (70, 80, 100), alpha=0.3)  # tinted lenses
            paint((d <= 1.0) & (d >= 1.0 - width / r), p.frame)
            temple = (np.abs(v - cv + 0.02) <= width * 0.8) & (np.abs(fu) >= 0.38 + r * 1.1) & (np.abs(u) <= 1.0)
            paint(temple & (np.sign(fu) == side), p.frame)
        bridge = (np.abs(v - cv + 0.03) <= width * 0.8) & (np.abs(fu) <= 0.38 - r * 1.1 + 0.02)
        paint(bridge, p.frame)
    small = img.reshape(size, supersample, size, supersample, 3).mean(axis=(1, 3))
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)

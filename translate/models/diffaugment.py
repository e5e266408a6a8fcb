"""DiffAugment (Zhao, Liu, Lin, Zhu, Han: "Differentiable Augmentation for Data-Efficient GAN Training",
NeurIPS 2020): the operations of the authors' DiffAugment_pytorch.py (mit-han-lab/data-efficient-gans), put on
real and fake images before every discriminator call (``train.augment: diffaugment``; models/base.py).

Per sample, in the order of ``train.augment_policy``:
- color: brightness x + U(-0.5, 0.5); saturation (x - mean over channels) * U(0, 2) + that mean; contrast
  (x - mean over the image) * U(0.5, 1.5) + that mean;
- translation: a shift by whole pixels, up to 1/8 of each side (``H // 8``) either way, zeros shifted in;
- cutout: a square of half the sides (``H // 2``) set to zero, its centre anywhere in the image (clipped).
The values are not rescaled: the authors feed the same operations images in [-1, 1] (their StyleGAN2 and
BigGAN code), as we do, so zero is mid-grey. Every operation is differentiable in the images (additions,
products and indexing), so the generators learn through it.

Deliberate deviation: the authors draw fresh random numbers at every call, so a discriminator's real and
fake batches get independent transforms. Here :func:`draw` draws one transform per sample and
:func:`apply` puts the same one on each batch of one discriminator call: real sample i and fake sample i
are changed alike (``TranslationModel.augmented``). Each discriminator in each step draws its own, from a
generator of the model's, seeded by ``train.seed`` and saved in the checkpoint (as the image pools' are), so
a resumed run draws what the uninterrupted one would have.
"""

from __future__ import annotations

import torch
from torch import Tensor

from translate.config import AUGMENT_OPS as OPS  # what train.augment_policy may name


Transform = list[tuple[str, tuple[Tensor, ...]]]  # (operation, its per-sample parameters), in order


def draw(policy: str, n: int, height: int, width: int, generator: torch.Generator,
         device: torch.device | str = "cpu") -> Transform:
    """Random parameters of each operation of `policy` ("color,translation,cutout") for `n` samples, drawn
    from the (CPU) `generator` and put on `device`."""

    def uniform(low: float, high: float) -> Tensor:
        return (torch.rand(n, 1, 1, 1, generator=generator) * (high - low) + low).to(device)  # [N,1,1,1]

    def integers(low: int, high: int) -> Tensor:  # [N,1] in [low, high)
        return torch.randint(low, high, (n, 1), generator=generator).to(device)

    out: Transform = []
    for op in (p.strip() for p in policy.split(",")):
        if op == "color":
            out.append((op, (uniform(-0.5, 0.5), uniform(0.0, 2.0), uniform(0.5, 1.5))))
        elif op == "translation":
            dy, dx = height // 8, width // 8
            out.append((op, (integers(-dy, dy + 1), integers(-dx, dx + 1))))
        elif op == "cutout":  # the authors' centre range: one more position when the side is even
            sy, sx = height // 2, width // 2
            out.append((op, (integers(0, height + 1 - sy % 2), integers(0, width + 1 - sx % 2))))
        else:
            raise ValueError(f"unknown DiffAugment operation '{op}' (known: {', '.join(OPS)})")
    return out


def _color(x: Tensor, brightness: Tensor, saturation: Tensor, contrast: Tensor) -> Tensor:
    x = x + brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * saturation + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * contrast + mean


def _translation(x: Tensor, dy: Tensor, dx: Tensor) -> Tensor:
    """out[:, :, i, j] = x[:, :, i + dy, j + dx], zero where that lies outside."""
    n, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) + dy  # [N,H]
    cols = torch.arange(w, device=x.device) + dx  # [N,W]
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # [N,H,W]
    batch = torch.arange(n, device=x.device)[:, None, None]
    moved = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # [N,H,W,C]
    return moved.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def _cutout(x: Tensor, cy: Tensor, cx: Tensor) -> Tensor:
    """x with a (H // 2) x (W // 2) square centred at (cy, cx) set to zero (the part inside the image)."""
    _, _, h, w = x.shape
    sy, sx = h // 2, w // 2
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    top, left = cy - sy // 2, cx - sx // 2  # [N,1]
    in_rows = (rows >= top) & (rows < top + sy)  # [N,H]
    in_cols = (cols >= left) & (cols < left + sx)  # [N,W]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])  # [N,H,W]
    return x * keep[:, None].to(x.dtype)


_APPLY = {"color": _color, "translation": _translation, "cutout": _cutout}


def apply(x: Tensor, transform: Transform) -> Tensor:
    """`x` [N,C,H,W] under `transform` (from :func:`draw` for N samples of this size)."""
    for op, params in transform:
        x = _APPLY[op](x, *params)
    return x

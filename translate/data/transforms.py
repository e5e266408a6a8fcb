"""Albumentations pipelines of the published CycleGAN recipe, on uint8 images.

Train: resize to ``load_size`` x ``load_size``, random crop ``crop_size``, horizontal flip. Eval: resize
straight to ``crop_size`` (the classic test options set load_size = crop_size). The order is the classic
code's (data/base_dataset.py ``get_transform``, preprocess ``resize_and_crop``), and so is the resize: Pillow
BICUBIC through :func:`translate.data.io.resize_bicubic`, bit for bit. Pillow antialiases when it shrinks;
albumentations' ``A.Resize`` with ``cv2.INTER_CUBIC`` (used here before) does not: shrinking a 512x600 photo
to 286x286 it differs from Pillow by up to 88 levels (PSNR 33 dB), to 72x72 by 197 levels (PSNR 22.5 dB).
Scaling to [-1, 1] is the last step of the recipe, but it runs on the device in :func:`to_model_range`:
a uint8 batch is a quarter of the float bytes to move from workers to the GPU.

Randomness is per sample and replayable: :func:`reseed` seeds every transform from the sample's own seed
(drawn by the sampler from the run seed and the epoch), so a resumed run sees the same crops and flips no
matter which worker decodes which image. The resize is deterministic and stays the first step, so each
random step keeps the stream it had.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from translate.data.io import resize_bicubic

if TYPE_CHECKING:
    import albumentations as A


def _albumentations():  # imported on first use: it costs ~0.6 s, and inference never needs it
    import albumentations

    return albumentations


def _resize_image(image: np.ndarray, *, size: tuple[int, int], **params: Any) -> np.ndarray:
    # albumentations passes its own params (among them "shape", the input's): hence `size`, not `shape`.
    return resize_bicubic(image, size)


def _resize(size: int) -> A.BasicTransform:
    """Pillow-BICUBIC resize to size x size as an albumentations step. A Lambda of a module-level partial
    pickles by reference, so DataLoader workers (fork or spawn) get it, while albumentations stays a lazy
    import. Images only: these pipelines carry no masks, boxes or keypoints."""
    A = _albumentations()
    return A.Lambda(image=partial(_resize_image, size=(size, size)), name="resize_bicubic")


def train_transform(load_size: int, crop_size: int, flip: bool = True) -> A.Compose:
    A = _albumentations()
    steps: list[A.BasicTransform] = [_resize(load_size)]
    if crop_size < load_size:
        steps.append(A.RandomCrop(crop_size, crop_size))
    if flip:
        steps.append(A.HorizontalFlip(p=0.5))
    return A.Compose(steps)


def eval_transform(size: int) -> A.Compose:
    A = _albumentations()
    return A.Compose([_resize(size)])


def reseed(pipeline: A.Compose, seed: int) -> None:
    """Give each transform its own stream derived from `seed`, so crop offset and flip are independent."""
    children = np.random.SeedSequence(seed).generate_state(len(pipeline.transforms) + 1)
    pipeline.set_random_seed(int(children[0]))
    for transform, child in zip(pipeline.transforms, children[1:]):
        transform.set_random_seed(int(child))


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H,W,3] uint8 -> [3,H,W] uint8 tensor (no copy of the data beyond making it contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]; float input is assumed to be in range already."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)
    return batch


def to_uint8(batch: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], rounding to nearest."""
    return batch.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)

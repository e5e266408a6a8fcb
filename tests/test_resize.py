"""The resize of training and evaluation images is Pillow's BICUBIC, bit for bit, as the classic CycleGAN code
(torchvision ``Resize(..., Image.BICUBIC)`` on PIL images), not OpenCV's INTER_CUBIC, which does not
antialias when it shrinks."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from PIL import Image

from translate.data.io import resize_bicubic
from translate.data.transforms import eval_transform, reseed, train_transform


def structured_image(height: int = 512, width: int = 600, seed: int = 0) -> np.ndarray:
    """A seeded noisy colour gradient with a checkerboard of sharp edges: detail finer than the target grid,
    which is where an antialiased and a plain cubic resize part ways."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) % 64 * 4], axis=-1)
    squares = (x // 37 + y // 29) % 2 == 0
    image[squares] = 255 - image[squares]
    image += np.random.default_rng(seed).normal(0, 20, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def pil_bicubic(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((shape[1], shape[0]), Image.BICUBIC))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def find_window(big: np.ndarray, small: np.ndarray) -> list[tuple[int, int]]:
    """Every (top, left) where `small` is exactly a window of `big`."""
    h, w = small.shape[:2]
    return [(top, left) for top in range(big.shape[0] - h + 1) for left in range(big.shape[1] - w + 1)
            if np.array_equal(big[top:top + h, left:left + w], small)]


def crop_and_flip(reference: np.ndarray, out: np.ndarray) -> tuple[tuple[int, int], bool]:
    """The single (offset, flipped) that makes `out` from `reference`."""
    found = [(offset, False) for offset in find_window(reference, out)]
    found += [(offset, True) for offset in find_window(reference, out[:, ::-1])]
    assert len(found) == 1, found
    return found[0]


# (H, W) source -> (H, W) target: the recipe's shrinks of a 600x512 photo, an enlargement, and a non-square
# target (which would catch (H, W) swapped for Pillow's (W, H)).
SHAPES = [((512, 600), (286, 286)), ((512, 600), (72, 72)), ((40, 50), (286, 286)), ((512, 600), (100, 180))]


@pytest.mark.parametrize(("source", "target"), SHAPES, ids=["600x512-286", "600x512-72", "50x40-286", "non-square"])
@pytest.mark.parametrize("mode", ["rgb", "single"])
def test_resize_bicubic_equals_pil_bicubic(source, target, mode):
    image = structured_image(*source)
    if mode == "single":  # e.g. an alpha mask
        image = np.ascontiguousarray(image[:, :, 1])
    out = resize_bicubic(image, target)
    assert out.dtype == np.uint8 and out.shape == target + image.shape[2:]
    assert out.flags.writeable  # torch.from_numpy warns on read-only arrays
    assert np.array_equal(out, pil_bicubic(image, target))


def test_resize_bicubic_other_channel_counts_are_per_channel_pil():
    image = structured_image(60, 70)
    for channels in (1, 4):
        stack = np.ascontiguousarray(np.concatenate([image, image[:, :, :1]], axis=2)[:, :, :channels])
        out = resize_bicubic(stack, (33, 41))
        assert out.shape == (33, 41, channels)
        for c in range(channels):
            assert np.array_equal(out[:, :, c], pil_bicubic(np.ascontiguousarray(stack[:, :, c]), (33, 41)))


def test_resize_bicubic_keeps_a_matching_image_and_refuses_other_dtypes():
    image = structured_image(40, 50)
    assert resize_bicubic(image, (40, 50)) is image
    with pytest.raises(ValueError, match="uint8"):
        resize_bicubic(image.astype(np.float32), (20, 20))


@pytest.mark.parametrize("size", [286, 72])
def test_opencv_cubic_is_far_from_pil_when_shrinking(size):
    # Why the pipelines no longer use A.Resize(interpolation=cv2.INTER_CUBIC): without antialiasing the
    # shrunk image aliases the fine detail. Measured here: 286 -> max 139 levels, PSNR 24.0 dB;
    # 72 -> max 176 levels, PSNR 17.2 dB.
    image = structured_image(512, 600)
    pil = pil_bicubic(image, (size, size))
    opencv = cv2.resize(image, (size, size), interpolation=cv2.INTER_CUBIC)
    max_diff = int(np.abs(pil.astype(np.int16) - opencv).max())
    print(f"600x512 -> {size}: OpenCV INTER_CUBIC vs PIL BICUBIC max {max_diff} levels, "
          f"PSNR {psnr(pil, opencv):.1f} dB")
    assert max_diff > 20
    assert np.array_equal(resize_bicubic(image, (size, size)), pil)


def test_eval_transform_equals_pil_bicubic():
    image = structured_image(512, 600)
    for size in (72, 256):
        assert np.array_equal(eval_transform(size)(image=image)["image"], pil_bicubic(image, (size, size)))


def test_train_transform_without_crop_or_flip_equals_pil_bicubic():
    image = structured_image(512, 600)
    t = train_transform(72, 72, flip=False)
    for seed in (0, 1):
        reseed(t, seed)
        assert np.array_equal(t(image=image)["image"], pil_bicubic(image, (72, 72)))


def test_train_crop_is_a_window_of_the_pil_resize_at_the_old_offsets():
    # Resize, then random crop, then flip, as the classic resize_and_crop; and the same seed still gives the
    # same crop offset and flip as the OpenCV pipeline did, so reseeding (and resumed runs) kept their streams.
    A = pytest.importorskip("albumentations")
    image = structured_image(512, 600)
    load, crop = 72, 64
    resized = pil_bicubic(image, (load, load))
    new = train_transform(load, crop, flip=True)
    old = A.Compose([A.Resize(load, load, interpolation=cv2.INTER_CUBIC), A.RandomCrop(crop, crop),
                     A.HorizontalFlip(p=0.5)])
    old_resized = cv2.resize(image, (load, load), interpolation=cv2.INTER_CUBIC)
    draws = []
    for seed in range(8):
        reseed(new, seed)
        reseed(old, seed)
        out = new(image=image)["image"]
        assert out.shape == (crop, crop, 3)
        draw = crop_and_flip(resized, out)
        assert draw == crop_and_flip(old_resized, old(image=image)["image"])
        draws.append(draw)
    assert len({offset for offset, _ in draws}) > 1 and {flipped for _, flipped in draws} == {False, True}


@pytest.mark.parametrize("build", [lambda: train_transform(72, 64), lambda: eval_transform(64)],
                         ids=["train", "eval"])
def test_pipelines_pickle_for_spawned_workers(build):
    image = structured_image(120, 140)
    pipeline = build()
    clone = pickle.loads(pickle.dumps(pipeline))
    for seed in (3, 4):
        reseed(pipeline, seed)
        reseed(clone, seed)
        assert np.array_equal(clone(image=image)["image"], pipeline(image=image)["image"])

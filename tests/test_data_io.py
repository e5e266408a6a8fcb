"""Tests for translate.data.io: every file is generated here with Pillow/numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.io import IMAGE_EXTENSIONS, MIN_SIDE, image_size, list_images, read_image
from translate.errors import DataError, TranslateError


def _gradient(h: int = 16, w: int = 24) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10 % 256, y * 15 % 256, (x + y) * 5 % 256], axis=-1).astype(np.uint8)


def _save(path: Path, img: Image.Image, **kwargs) -> Path:
    img.save(path, **kwargs)
    return path


# ---------------------------------------------------------------- RGB round trips


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".ppm"])
def test_lossless_formats_round_trip_exactly(tmp_path: Path, suffix: str) -> None:
    pixels = _gradient()
    out = read_image(_save(tmp_path / f"a{suffix}", Image.fromarray(pixels)))
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3)
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".webp"])
def test_lossy_formats_round_trip_approximately(tmp_path: Path, suffix: str) -> None:
    pixels = np.full((16, 24, 3), (200, 60, 30), np.uint8)
    out = read_image(_save(tmp_path / f"a{suffix}", Image.fromarray(pixels), quality=95))
    assert out.dtype == np.uint8 and out.shape == (16, 24, 3)
    assert np.abs(out.astype(int) - pixels.astype(int)).max() <= 6


# ---------------------------------------------------------------- colour modes


def test_grayscale_becomes_three_equal_channels(tmp_path: Path) -> None:
    gray = _gradient()[:, :, 0]
    out = read_image(_save(tmp_path / "g.png", Image.fromarray(gray, mode="L")))
    assert out.shape == (16, 24, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_bilevel_mode_1(tmp_path: Path) -> None:
    bits = np.zeros((8, 8), bool)
    bits[:, 4:] = True
    out = read_image(_save(tmp_path / "b.png", Image.fromarray(bits)))
    assert out.shape == (8, 8, 3)
    assert (out[:, :4] == 0).all() and (out[:, 4:] == 255).all()


def test_palette_image(tmp_path: Path) -> None:
    img = Image.new("P", (6, 4))
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.paste(1, (3, 0, 6, 4))
    out = read_image(_save(tmp_path / "p.png", img))
    assert (out[:, :3] == (255, 0, 0)).all() and (out[:, 3:] == (0, 0, 255)).all()


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    img = Image.new("P", (6, 4))
    img.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    img.paste(1, (3, 0, 6, 4))
    out = read_image(_save(tmp_path / "pt.png", img, transparency=0))
    assert (out[:, :3] == 255).all()  # index 0 is black but transparent
    assert (out[:, 3:] == (0, 200, 0)).all()


def test_rgba_composited_over_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[:, :3] = (10, 20, 30, 0)  # fully transparent: the colour must not leak through
    rgba[:, 3:] = (10, 20, 30, 255)
    out = read_image(_save(tmp_path / "rgba.png", Image.fromarray(rgba, mode="RGBA")))
    assert out.shape == (4, 6, 3)
    assert (out[:, :3] == 255).all() and (out[:, 3:] == (10, 20, 30)).all()


def test_la_composited_over_white(tmp_path: Path) -> None:
    la = np.zeros((4, 6, 2), np.uint8)
    la[:, :3] = (0, 0)
    la[:, 3:] = (80, 255)
    out = read_image(_save(tmp_path / "la.png", Image.fromarray(la, mode="LA")))
    assert (out[:, :3] == 255).all() and (out[:, 3:] == 80).all()


def test_sixteen_bit_grayscale_scaled_by_257(tmp_path: Path) -> None:
    values = np.array([[0, 65535, 32896], [257, 128, 65534]], np.uint16)
    img = Image.fromarray(values)
    assert img.mode.startswith("I")
    out = read_image(_save(tmp_path / "g16.png", img))
    expected = np.array([[0, 255, 128], [1, 0, 255]], np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], expected)


def test_float_image_in_unit_range_is_scaled(tmp_path: Path) -> None:
    values = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    out = read_image(_save(tmp_path / "f.tif", Image.fromarray(values, mode="F")))
    np.testing.assert_array_equal(out[:, :, 0], [[0, 255], [128, 64]])


def test_multi_frame_gif_uses_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = read_image(path)
    assert out.shape == (8, 8, 3) and (out == (255, 0, 0)).all()


# ---------------------------------------------------------------- EXIF orientation


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = _save(tmp_path / "rot.jpg", Image.new("RGB", (20, 10), (90, 90, 90)), exif=exif)
    assert read_image(path).shape == (20, 10, 3)
    assert image_size(path) == (10, 20)


def test_image_size_without_orientation(tmp_path: Path) -> None:
    assert image_size(_save(tmp_path / "s.png", Image.new("RGB", (20, 10)))) == (20, 10)


# ---------------------------------------------------------------- bad files


def _valid_bytes(tmp_path: Path, suffix: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return _save(tmp_path / f"valid{suffix}", Image.fromarray(noise)).read_bytes()


def test_data_error_is_a_translate_error() -> None:
    assert issubclass(DataError, TranslateError)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(DataError, match="empty file") as info:
        read_image(path)
    assert str(path) in str(info.value)
    with pytest.raises(DataError, match="empty file"):
        image_size(path)


def test_random_bytes_are_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(np.random.default_rng(1).bytes(500))
    with pytest.raises(DataError, match="not an image") as info:
        read_image(path)
    assert info.value.path == path


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path: Path, suffix: str) -> None:
    data = _valid_bytes(tmp_path, suffix)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="file not found"):
        image_size(tmp_path / "nope.png")


def test_folder_is_not_an_image(tmp_path: Path) -> None:
    folder = tmp_path / "dir.png"
    folder.mkdir()
    with pytest.raises(DataError, match="is a folder"):
        read_image(folder)


@pytest.mark.parametrize("size", [(1, 1), (1, 10), (10, 1)])
def test_too_small(tmp_path: Path, size: tuple[int, int]) -> None:
    assert MIN_SIDE == 2
    path = _save(tmp_path / "tiny.png", Image.new("RGB", size))
    with pytest.raises(DataError, match="too small"):
        read_image(path)


def test_smallest_allowed_image(tmp_path: Path) -> None:
    assert read_image(_save(tmp_path / "two.png", Image.new("RGB", (2, 2)))).shape == (2, 2, 3)


def test_too_large(tmp_path: Path) -> None:
    path = _save(tmp_path / "big.png", Image.new("RGB", (20, 20)))
    with pytest.raises(DataError, match=r"too large \(20x20 pixels\)"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=400).shape == (20, 20, 3)


# ---------------------------------------------------------------- list_images


def test_list_images_filters_and_sorts(tmp_path: Path) -> None:
    for name in ["b.png", "a.JPG", "c.PNG", "d.webp", "notes.txt", ".hidden.png", "e.tiff"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a folder with an image name is not a file
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "f.jpg").write_bytes(b"x")
    names = [p.name for p in list_images(tmp_path)]
    assert names == ["a.JPG", "b.png", "c.PNG", "d.webp", "e.tiff"]
    assert all(p.parent == tmp_path for p in list_images(str(tmp_path)))


def test_list_images_recursive(tmp_path: Path) -> None:
    for rel in ["z.png", "sub/b.png", "sub/a.jpg", "sub/deeper/c.bmp", ".git/x.png", "sub/.y.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    rels = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)]
    assert rels == ["sub/a.jpg", "sub/b.png", "sub/deeper/c.bmp", "z.png"]
    assert [p.name for p in list_images(tmp_path)] == ["z.png"]


def test_list_images_empty_folder(tmp_path: Path) -> None:
    assert list_images(tmp_path) == []


def test_list_images_bad_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "missing")
    file = tmp_path / "a.png"
    file.write_bytes(b"x")
    with pytest.raises(DataError, match="is not a folder"):
        list_images(file)


def test_extensions_are_lowercase_suffixes() -> None:
    assert {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"} <= IMAGE_EXTENSIONS
    assert all(e.startswith(".") and e == e.lower() for e in IMAGE_EXTENSIONS)

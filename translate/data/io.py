"""Finding, decoding and (atomically) writing files: every image the tool reads goes through here.

Policy, and why:

* Every failure becomes a `DataError(path, why)` with a short human reason, so one bad
  file in a folder of thousands is named instead of surfacing as a Pillow traceback.
* Truncated files are errors. Pillow's global `ImageFile.LOAD_TRUNCATED_IMAGES` would decode
  them silently with the missing part filled in, and would change behaviour for every other
  user of Pillow in the process, so it is left alone and `img.load()` runs inside the try.
* Sizes are checked from the header before decoding, so a decompression bomb is refused
  before it allocates gigabytes; tiny images are refused because no crop or resize
  of a 1-pixel side is meaningful training data.
* Transparent pixels are composited over white: their stored colour is undefined (often
  black), and white is what a viewer shows for a transparent area on a page.
* 16-bit data is divided by 257 with rounding: 65535 / 255 = 257 exactly, so the full 16-bit
  range maps onto the full 8-bit range (0->0, 65535->255) with each value going to its nearest
  8-bit level, and 8-bit data widened the usual way (v * 257) comes back unchanged.
  Shifting right by 8 would truncate instead of round.
* Resizing for the model is Pillow's BICUBIC (:func:`resize_bicubic`), exactly what the classic CycleGAN
  code does through torchvision on PIL images. Pillow widens the cubic kernel by the shrink factor, so it
  antialiases when it shrinks; OpenCV's INTER_CUBIC does not, and differs from it by tens of levels there.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from PIL import features as pil_features

from translate.errors import DataError

# GIF and animated WebP/TIFF/AVIF: the first frame is the image. AVIF where this Pillow decodes it.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"}
    | ({".avif"} if pil_features.check("avif") else set())
)
# Image formats people have that Pillow does not decode by itself: named in reports, with the way to get them.
_HEIF_HINT = "HEIC/HEIF (a phone photo): pip install pillow-heif to convert it"
UNSUPPORTED_IMAGE_FORMATS: dict[str, str] = {
    ".heic": _HEIF_HINT, ".heif": _HEIF_HINT, ".avif": "AVIF: this Pillow has no AVIF decoder (Pillow >= 11.3 has one)",
    ".jxl": "JPEG XL: pip install pillow-jxl-plugin to convert it",
    ".svg": "a vector drawing: render it to PNG first", ".pdf": "a document: export its pages as images first",
    **{s: "camera raw: develop it to JPEG or TIFF first" for s in (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf",
                                                                     ".orf", ".rw2", ".raw")},
}
_PLUGINS = {".heic": "pillow_heif", ".heif": "pillow_heif", ".jxl": "pillow_jxl"}
MIN_SIDE = 2
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own DecompressionBombError threshold

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})  # these swap width and height
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})


def supported_suffix(suffix: str) -> bool:
    """True for a file suffix this process decodes: Pillow's own, or an installed plugin's (pillow-heif ...),
    which is registered on first use."""
    suffix = suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return True
    module = _PLUGINS.get(suffix)
    if module is None:
        return False
    try:
        plugin = __import__(module)
    except ImportError:
        return False
    register = getattr(plugin, "register_heif_opener", None) or getattr(plugin, "register_opener", None)
    if register is not None:
        register()
    return True


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (other threads may be creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


# Temporary files of atomic_write: ".<stem>.<pid>.<random>.tmp<suffix>"; the pid tells a stale one from a live one.
_TEMP = re.compile(r"^\..*\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")
_LEGACY_TEMP = re.compile(r"^\..*\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")  # before the pid was in the name
_LEGACY_AGE = 3600.0


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path` (same suffix, so format sniffing works), then
    rename it into place: a reader never sees a half-written file, and a failure leaves none behind. The
    file gets the permissions a plain ``open`` would give it (0666 less the umask), not mkstemp's 0600.
    A process killed outright leaves its temporary file; :func:`remove_stale_temporaries` clears it later."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that killed writers left under `folder` (recursively): those of processes
    that no longer run, and old ones from before the pid was in their name. Returns what was removed."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    now = time.time()
    for dirpath, _, names in os.walk(root):
        for name in names:
            if not name.startswith(".") or ".tmp" not in name:
                continue
            path = Path(dirpath) / name
            match = _TEMP.match(name)
            try:
                stale = (not _alive(int(match["pid"]))) if match else (
                    _LEGACY_TEMP.match(name) is not None and now - path.lstat().st_mtime > _LEGACY_AGE)
                if stale:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return removed


def classify_file(path: Path) -> tuple[str, str | None]:
    """("image", None) for a file this process decodes, ("unusable", why) for one that looks like an image
    but cannot be used (a broken or looping link, a format without a decoder here), ("other", why) else."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "unusable", "symbolic link loop"
            return "unusable", f"broken symbolic link (to {os.readlink(path)})"
    suffix = path.suffix.lower()
    if supported_suffix(suffix):
        return ("image", None) if path.is_file() else ("unusable", "not a regular file")
    if suffix in UNSUPPORTED_IMAGE_FORMATS:
        return "unusable", f"not converted: unsupported format, {UNSUPPORTED_IMAGE_FORMATS[suffix]}"
    return "other", "not an image file"


def list_images(folder: str | Path, recursive: bool = False,
                dropped: dict[str, str] | None = None) -> list[Path]:
    """Image files in `folder` (and below it if `recursive`), sorted by relative path. Files that look like
    images but cannot be used (a broken symbolic link, a format without a decoder here, such as HEIC) are
    recorded in `dropped` (path -> why) when it is given."""
    root = Path(folder)
    if not root.exists():
        raise DataError(root, "does not exist")
    if not root.is_dir():
        raise DataError(root, "is not a folder")
    candidates = root.rglob("*") if recursive else root.iterdir()
    found = []
    for path in candidates:
        rel = path.relative_to(root)
        # A hidden folder (.git, .ipynb_checkpoints) hides everything inside it too.
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_dir():
            continue
        kind, why = classify_file(path)
        if kind == "image":
            found.append(path)
        elif kind == "unusable" and dropped is not None:
            dropped[str(path)] = why
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


@contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """Open `path` lazily (header only), translating every way that can fail."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a folder")
    try:
        if path.stat().st_size == 0:
            raise DataError(path, "empty file")
        with warnings.catch_warnings():
            # Our own max_pixels check is the authority; the warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(path, "image too large (decompression bomb check)") from None
    except PermissionError:
        raise DataError(path, "permission denied") from None
    except Image.UnidentifiedImageError:
        raise DataError(path, "not an image or unsupported format") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DataError(path, f"not an image or unsupported format ({exc})") from None
    with img:
        yield img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # broken EXIF is common and must not cost the pixels
        return 1


def image_header(path: str | Path) -> tuple[int, int, str]:
    """(width, height, Pillow mode) as `read_image` would see them, without decoding the pixels."""
    path = Path(path)
    with _open(path) as img:
        width, height = img.size
        if _orientation(img) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        return width, height, img.mode


def image_info(path: str | Path) -> tuple[int, int, int]:
    """(width, height, frames) as `read_image` sees them, without decoding the pixels; frames > 1 for an
    animation or a multi-page file, of which the first frame is the image."""
    path = Path(path)
    with _open(path) as img:
        width, height = img.size
        if _orientation(img) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        try:
            frames = int(getattr(img, "n_frames", 1))
        except Exception:  # a damaged later frame: the first one may still decode
            frames = 1
        return width, height, frames


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) as `read_image` would return it, without decoding the pixels."""
    return image_header(path)[:2]


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode `path` into a contiguous uint8 RGB array of shape (H, W, 3)."""
    return _read(Path(path), max_pixels, keep_alpha=False)[0]


def read_image_alpha(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, np.ndarray | None]:
    """`read_image`'s RGB array (transparency composited on white) and the alpha channel, (H, W) uint8,
    or None for an image without transparency; for tools that put the alpha back on their output."""
    return _read(Path(path), max_pixels, keep_alpha=True)


def _read(path: Path, max_pixels: int, keep_alpha: bool) -> tuple[np.ndarray, np.ndarray | None]:
    with _open(path) as img:
        width, height = img.size
        if width * height > max_pixels:
            raise DataError(path, f"image too large ({width}x{height} pixels)")
        if width < MIN_SIDE or height < MIN_SIDE:
            raise DataError(path, f"image too small ({width}x{height})")
        try:
            img.seek(0)  # multi-frame GIF/TIFF: the first frame is the image
            img.load()
        except MemoryError:
            raise DataError(path, f"out of memory while decoding ({width}x{height} pixels)") from None
        except Exception as exc:  # decoders raise OSError, SyntaxError, struct.error, ...
            raise DataError(path, f"truncated or corrupt image data ({exc})") from None
        try:
            img = ImageOps.exif_transpose(img)
        except Exception:  # broken EXIF: keep the pixels, ignore the orientation
            pass
        try:
            return _to_rgb(img), _alpha(img) if keep_alpha else None
        except MemoryError:
            raise DataError(path, f"out of memory while decoding ({width}x{height} pixels)") from None
        except ValueError:  # Pillow has no conversion path for a few exotic modes
            raise DataError(path, f"unsupported colour mode {img.mode!r}") from None


def _has_alpha(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa") or "transparency" in img.info


def _alpha(img: Image.Image) -> np.ndarray | None:
    if not _has_alpha(img):
        return None
    return np.ascontiguousarray(np.asarray(img.convert("RGBA").getchannel("A"), dtype=np.uint8))


def _to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in _SIXTEEN_BIT_MODES or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        values = np.clip(values, 0, 65535)
        gray = ((values + 128) // 257).astype(np.uint8)  # round(v / 257)
        return _gray_to_rgb(gray)
    if img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float32), nan=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        gray = np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)
        return _gray_to_rgb(gray)
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def resize_bicubic(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W, C) or (H, W) (a single channel, such as an alpha mask) resized to `shape` = (H, W) by
    Pillow's BICUBIC, bit for bit: the resize of the classic CycleGAN code (torchvision ``Resize(...,
    Image.BICUBIC)`` on PIL images). Returns `image` itself when it already has that shape.

    Costs ~4 ms for 600x512 -> 286x286 RGB on one core where cv2.INTER_CUBIC takes ~0.3 ms (Pillow's filter
    spans more source pixels when it shrinks, which is the antialiasing): about one JPEG decode more per
    sample, spent in the DataLoader workers."""
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"resize_bicubic takes uint8 (H, W) or (H, W, C) arrays, not {image.dtype} {image.shape}")
    height, width = int(shape[0]), int(shape[1])
    if height < 1 or width < 1:
        raise ValueError(f"resize_bicubic: target shape must be positive, not {shape}")
    if image.shape[:2] == (height, width):
        return image
    if image.ndim == 3 and image.shape[2] != 3:  # 1, 2, 4... channels: each one as an 8-bit "L" image
        # (RGBA would be premultiplied by Pillow before resampling, which is not a per-channel resize)
        return np.stack([resize_bicubic(np.ascontiguousarray(image[:, :, c]), shape)
                         for c in range(image.shape[2])], axis=2)
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((width, height), Image.Resampling.BICUBIC)
    return np.array(resized, dtype=np.uint8)  # a writable copy (np.asarray of a PIL image is read-only)

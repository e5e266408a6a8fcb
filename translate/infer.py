"""Inference without a Trainer: translate image files with one generator from a checkpoint or an export.

Sizes. Native by default: each image is reflection-padded up to the generator's size multiple and the
output cropped back, so the output has the input's size. ``size=N`` first resizes so the shorter side is N
(aspect ratio kept; the output has that size). ``tile=N`` translates images larger than N in overlapping
N x N tiles blended with a linear ramp, for images too large for memory in one piece.

Pipeline. Image headers are read first (cheap) so files can be planned into batches of equal size; the
batches are decoded (and resized) in DataLoader workers, stacked as uint8 and pinned; the device runs the
generator (bf16/fp16 autocast and channels_last on CUDA, optionally torch.compile); a background thread
encodes and writes. Alpha is carried over to PNG/WebP outputs (the RGB, composited on white, is what is
translated); grayscale, palette and 16-bit inputs are translated as 8-bit RGB.

Safety: outputs never go into the input tree, each file is written atomically (temporary file, then
rename), ``skip_existing`` resumes an interrupted job, and unreadable inputs are skipped and reported.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from translate.checkpoint import load_checkpoint, load_net
from translate.data.io import IMAGE_EXTENSIONS, atomic_write, image_size, list_images, read_image_alpha
from translate.data.transforms import to_model_range, to_uint8
from translate.errors import DataError, TranslateError
from translate.export import SUFFIX as EXPORT_SUFFIX
from translate.export import check_direction, load_exported, net_attr

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
_KEPT_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}  # written in their own format
PRECISIONS = ("auto", "32", "bf16", "16")
REPORT_NAME = "convert-report.json"
PIXELS_PER_BATCH = 4 * 1024 * 1024  # caps batch_size for large images (activation memory grows with pixels)


@dataclass
class ConvertReport:
    written: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input path -> why
    seconds: float = 0.0

    def write(self, path: Path) -> None:
        """The report as JSON at `path`, written atomically."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def to_dict(self) -> dict:
        return {"written": len(self.written), "skipped_existing": len(self.skipped_existing),
                "failed": self.failed, "seconds": round(self.seconds, 3),
                "images_per_second": round(len(self.written) / self.seconds, 3) if self.seconds else None}


@dataclass(frozen=True)
class _Job:
    src: Path
    dst: Path
    kind: str  # output format key
    size: tuple[int, int]  # (H, W) the net sees


def load_generator(checkpoint: str | Path, direction: str = "AtoB") -> nn.Module:
    """Only the generator for `direction`, from a checkpoint or a ``.safetensors`` export (no code run)."""
    check_direction(direction)
    if Path(checkpoint).suffix == EXPORT_SUFFIX:
        return load_exported(checkpoint, direction)
    ckpt = load_checkpoint(checkpoint)
    return load_net(ckpt, net_attr(ckpt["translate"], direction))


def gather_inputs(source: str | Path) -> tuple[Path, list[Path]]:
    """(root the outputs mirror, image files) for a folder (recursive), a glob pattern or one file."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_EXTENSIONS)
        root = Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path(".")
    else:
        path = Path(source)
        if path.is_dir():
            root, files = path, list_images(path, recursive=True)
        elif path.is_file():
            root, files = path.parent, [path]
        else:
            raise DataError(path, "input not found")
    if not files:
        raise DataError(Path(text), "no images to convert (jpg, png, bmp, tif, webp)")
    return root, files


def inputs_and_output(source: str | Path, output: str | Path) -> tuple[Path, list[Path], Path]:
    """:func:`gather_inputs` plus the resolved output root, refused when it lies inside the input tree
    (a batch job must never write among, or over, its inputs)."""
    root, files = gather_inputs(source)
    out_root = Path(output).resolve()
    if out_root == root.resolve() or root.resolve() in out_root.parents:
        raise TranslateError(f"output {output} is inside the input folder {root}; choose another folder")
    return root, files, out_root


def resized_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(H, W) after scaling the shorter side to `size` (unchanged when size is None)."""
    if size is None:
        return height, width
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if array.shape[:2] == shape:
        return array
    shrink = shape[0] * shape[1] < array.shape[0] * array.shape[1]
    return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


class _Decode(Dataset):
    """Decodes (and resizes) the files of one planned batch inside a DataLoader worker."""

    def __init__(self, jobs: list[_Job], batches: list[list[int]]):
        self.jobs, self.batches = jobs, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int) -> dict:
        groups: dict[tuple[int, int], tuple[list[int], list[np.ndarray], list]] = {}
        failed = []
        for i in self.batches[b]:
            job = self.jobs[i]
            try:
                rgb, alpha = read_image_alpha(job.src)
            except DataError as err:
                failed.append((i, err.why))
                continue
            rgb = _resize(rgb, job.size)
            alpha = None if alpha is None else _resize(alpha, job.size)
            entry = groups.setdefault(rgb.shape[:2], ([], [], []))
            entry[0].append(i), entry[1].append(rgb), entry[2].append(alpha)
        return {"failed": failed, "groups": [
            {"indices": idx, "images": torch.from_numpy(np.stack(images)), "alphas": alphas}
            for idx, images, alphas in groups.values()]}


def _forward_padded(net: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """net(batch) with H and W padded (reflection) to the net's size multiple, cropped back after."""
    h, w = batch.shape[-2:]
    m = int(getattr(net, "size_multiple", 1))
    pad_h, pad_w = -h % m, -w % m
    if pad_h or pad_w:  # reflection needs pad < size; replicate covers tiny images
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
    return net(batch)[..., :h, :w]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def _ramp(length: int, overlap: int) -> torch.Tensor:
    """Blending weight along one tile side: rises over `overlap` pixels at both ends, never zero."""
    i = torch.arange(length, dtype=torch.float32)
    return torch.minimum(torch.ones(()), torch.minimum(i + 1, length - i) / (overlap + 1))


def _forward_tiled(net: nn.Module, image: torch.Tensor, tile: int, overlap: int, batch_size: int) -> torch.Tensor:
    """One image [1,3,H,W] translated in overlapping tiles, each weighted by a ramp and normalised."""
    _, c, h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    corners = [(y, x) for y in _starts(h, th, th - overlap) for x in _starts(w, tw, tw - overlap)]
    weight = (_ramp(th, overlap)[:, None] * _ramp(tw, overlap)[None, :]).to(image.device)
    total = torch.zeros(1, c, h, w, device=image.device)
    norm = torch.zeros(1, 1, h, w, device=image.device)
    for k in range(0, len(corners), batch_size):
        chunk = corners[k:k + batch_size]
        crops = torch.cat([image[..., y:y + th, x:x + tw] for y, x in chunk])
        out = _forward_padded(net, crops).float()
        for (y, x), piece in zip(chunk, out):
            total[..., y:y + th, x:x + tw] += piece * weight
            norm[..., y:y + th, x:x + tw] += weight
    return total / norm


@torch.no_grad()
def translate_tensor(net: nn.Module, batch: torch.Tensor, tile: int | None = None, overlap: int | None = None,
                     batch_size: int = 8) -> torch.Tensor:
    """Model-range images [N,3,H,W] -> translated [N,3,H,W] (fp32), padded or tiled as needed."""
    h, w = batch.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return _forward_padded(net, batch).float()
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise TranslateError(f"tile overlap must be in [0, {tile}), got {overlap}")
    return torch.cat([_forward_tiled(net, image[None], tile, overlap, batch_size) for image in batch])


def _to_uint8_hwc(out: torch.Tensor) -> np.ndarray:
    return to_uint8(out).permute(0, 2, 3, 1).cpu().numpy()


def _as_is(item: dict) -> dict:
    """DataLoader collate for items that are already batches (a module-level function: picklable)."""
    return item


def _save(image: np.ndarray, alpha: np.ndarray | None, path: Path, fmt: str, quality: int) -> None:
    picture = Image.fromarray(image)
    if alpha is not None and fmt != "jpg":  # JPEG has no alpha: the RGB stays composited on white
        picture.putalpha(Image.fromarray(alpha))
    options = {"quality": quality} if fmt in ("jpg", "webp") else {}
    atomic_write(path, lambda tmp: picture.save(tmp, format=FORMATS[fmt], **options))


def _plan(jobs: list[_Job], batch_size: int, tile: int | None) -> list[list[int]]:
    """Indices of `jobs` in batches of one size each (a tiled image goes alone: its tiles are the batch)."""
    order = sorted(range(len(jobs)), key=lambda i: jobs[i].size)
    batches = []
    for size, members in groupby(order, key=lambda i: jobs[i].size):
        members = list(members)
        tiled = tile is not None and max(size) > tile
        n = 1 if tiled else max(1, min(batch_size, PIXELS_PER_BATCH // (size[0] * size[1])))
        batches += [members[k:k + n] for k in range(0, len(members), n)]
    return batches


def autocast_for(device: torch.device, precision: str = "auto"):
    """The autocast context for `precision` on `device` (auto: bf16, else fp16, on CUDA; fp32 elsewhere)."""
    if precision not in PRECISIONS:
        raise TranslateError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "auto":
        if device.type != "cuda":
            return nullcontext()
        precision = "bf16" if torch.cuda.is_bf16_supported() else "16"
    if precision == "32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def convert(checkpoint: str | Path, source: str | Path, output: str | Path, direction: str = "AtoB",
            fmt: str | None = None, quality: int = 95, skip_existing: bool = False, batch_size: int | None = None,
            device: str | None = None, size: int | None = None, tile: int | None = None,
            precision: str = "auto", compile: bool = False, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> ConvertReport:
    """Translate every image of `source` into `output`, mirroring relative paths; see module docstring.

    `progress(done, total)` is called after each batch (done counts written, failed and kept files).
    Defaults: on CUDA batches of 8 and up to 4 decoding workers; on a CPU batches of 1 and one worker,
    because convolutions already use every core there, and batching measured no faster
    (benchmarks/convert.py)."""
    started = time.perf_counter()
    if fmt is not None and fmt not in FORMATS:
        raise TranslateError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    for name, value in (("--size", size), ("--tile", tile), ("--batch-size", batch_size)):
        if value is not None and value < (2 if name != "--batch-size" else 1):
            raise TranslateError(f"{name} must be at least {2 if name != '--batch-size' else 1}, got {value}")
    root, files, out_root = inputs_and_output(source, output)
    net = load_generator(checkpoint, direction)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if batch_size is None:
        batch_size = 8 if dev.type == "cuda" else 1
    autocast = autocast_for(dev, precision)
    net.to(dev)
    if dev.type == "cuda":
        net.to(memory_format=torch.channels_last)
    if compile:
        net = torch.compile(net, dynamic=True)
    report = ConvertReport()
    total = len(files)

    jobs: list[_Job] = []
    for path in files:
        kept = _KEPT_SUFFIXES.get(path.suffix.lower())
        kind = fmt or kept or "png"
        # The input's own suffix (photo.JPEG stays photo.JPEG) unless the format changes.
        suffix = path.suffix if kind == kept else "." + kind
        dst = out_root / path.relative_to(root).with_suffix(suffix)
        if skip_existing and dst.exists():
            report.skipped_existing.append(str(path))
            continue
        try:
            width, height = image_size(path)  # header only; pixels are decoded in the workers
        except DataError as err:
            report.failed[str(path)] = err.why
            continue
        jobs.append(_Job(path, dst, kind, resized_shape(height, width, size)))
    batches = _plan(jobs, batch_size, tile)
    if workers is None:
        workers = 0 if len(batches) <= 2 else min(4, os.cpu_count() or 1) if dev.type == "cuda" else 1
    loader = DataLoader(_Decode(jobs, batches), batch_size=None, shuffle=False, num_workers=workers,
                        pin_memory=dev.type == "cuda", collate_fn=_as_is)
    done = len(report.skipped_existing) + len(report.failed)
    if progress:
        progress(done, total)

    pending: list[tuple[_Job, Future]] = []

    def settle(keep: int) -> None:
        """Wait for all but the newest `keep` writes, recording each outcome (bounds memory held)."""
        while len(pending) > keep:
            job, future = pending.pop(0)
            try:
                future.result()
                report.written.append(str(job.dst))
            except OSError as exc:
                report.failed[str(job.src)] = f"cannot write {job.dst}: {exc.strerror or exc}"

    with ThreadPoolExecutor(max_workers=1) as writer, torch.inference_mode(), autocast:
        for item in loader:
            for i, why in item["failed"]:
                report.failed[str(jobs[i].src)] = why
            done += len(item["failed"])
            for group in item["groups"]:
                x = group["images"].to(dev, non_blocking=True).permute(0, 3, 1, 2)
                x = to_model_range(x)
                if dev.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                out = _to_uint8_hwc(translate_tensor(net, x, tile=tile, batch_size=batch_size))
                for i, image, alpha in zip(group["indices"], out, group["alphas"]):
                    job = jobs[i]
                    pending.append((job, writer.submit(_save, image, alpha, job.dst, job.kind, quality)))
                done += len(group["indices"])
            settle(keep=4 * batch_size)
            if progress:
                progress(done, total)
        settle(keep=0)
    report.failed = dict(sorted(report.failed.items()))
    report.seconds = time.perf_counter() - started
    out_root.mkdir(parents=True, exist_ok=True)
    report.write(out_root / REPORT_NAME)
    return report

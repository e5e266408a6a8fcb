"""Inference without a Trainer: translate image files with one generator from a checkpoint or an export.

The generator comes from :func:`translate.checkpoint.load_generator` (a checkpoint, an export, a classic
CycleGAN file or a pretrained model name); this module owns sizes, batching, devices and safe writing.

Sizes. Native by default: each image is reflection-padded up to the generator's size multiple and the
output cropped back, so the output has the input's size. ``size=N`` first resizes so the shorter side is N
(aspect ratio kept; the output has that size). ``tile=N`` translates images larger than N in overlapping
N x N tiles blended with a linear ramp, for images too large for memory in one piece.

Pipeline. Image headers are read first (cheap) so files can be planned into batches of equal size; the
batches are decoded (and resized) in DataLoader workers, stacked as uint8 and pinned; the device runs the
generator (bf16/fp16 autocast and channels_last on CUDA, optionally torch.compile); a background thread
encodes and writes. Alpha is carried over to PNG/WebP outputs (the RGB, composited on white, is what is
translated); grayscale, palette and 16-bit inputs are translated as 8-bit RGB.

Safety (planned before any image is translated, see data/files.py): no output may be an input file, nor
lie inside the input tree; outputs that would share a name keep their source suffix (``same.bmp.png``);
the output folder must be writable. Each file is written atomically (temporary file, then rename;
temporaries left by a killed run are removed at the next one), ``skip_existing`` resumes an interrupted
job. The report accounts for every input file: written, kept, failed (and why: unreadable, unsupported
format such as HEIC, broken link, out of memory) and ignored (not images, hidden). Animated images (GIF,
WebP) are converted from their first frame, and the report notes it. A batch that runs out of memory is
retried image by image, then in ever smaller tiles, before the image is reported as failed.

Several processes (``--devices N``, torchrun, srun: parallel.py and shard.py) each run :func:`convert` with
their `rank` and `world_size`, on their share of the files.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from translate.checkpoint import load_generator
from translate.data.files import Plan, plan_batch
from translate.data.io import atomic_write, image_info, read_image_alpha, resize_bicubic
from translate.data.transforms import to_model_range, to_uint8
from translate.errors import DataError, TranslateError
from translate.precision import BACKENDS, InDtype, choose_precision, cast_autocast

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
_KEPT_SUFFIXES = {".png": "png", ".jpg": "jpg", ".jpeg": "jpg", ".webp": "webp"}  # written in their own format
REPORT_NAME = "convert-report.json"
PIXELS_PER_BATCH = 4 * 1024 * 1024  # caps batch_size for large images (activation memory grows with pixels)


@dataclass
class ConvertReport:
    written: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input path -> why
    ignored: dict[str, str] = field(default_factory=dict)  # path -> why it is no input (not an image, hidden)
    notes: dict[str, str] = field(default_factory=dict)  # input path -> what to know (animated: first frame)
    seconds: float = 0.0
    generator: str = ""  # what translated: "pretrained horse2zebra (resnet_9blocks, ngf 64, ...)"
    precision: str = ""  # what was chosen and why: "bf16 autocast (auto: this CPU has AVX-512 BF16 ...)"
    backend: str = "torch"
    ranks: list[dict] = field(default_factory=list)  # a job of several processes: each one's share (shard.py)

    def write(self, path: Path) -> None:
        """The report as JSON at `path`, written atomically."""
        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def to_dict(self) -> dict:
        ranks = {"ranks": self.ranks} if self.ranks else {}
        return {"inputs": len(self.written) + len(self.skipped_existing) + len(self.failed),
                "written": len(self.written), "skipped_existing": len(self.skipped_existing),
                "failed": self.failed, "ignored": self.ignored, "notes": self.notes, "generator": self.generator,
                "backend": self.backend, "precision": self.precision, "seconds": round(self.seconds, 3),
                "images_per_second": round(len(self.written) / self.seconds, 3) if self.seconds else None, **ranks}


@dataclass(frozen=True)
class _Job:
    src: Path
    dst: Path
    kind: str  # output format key
    size: tuple[int, int]  # (H, W) the net sees


def resized_shape(height: int, width: int, size: int | None) -> tuple[int, int]:
    """(H, W) after scaling the shorter side to `size` (unchanged when size is None)."""
    if size is None:
        return height, width
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _resize(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """--size: PIL bicubic (antialiased when shrinking), exactly as the classic code resizes."""
    return resize_bicubic(array, shape)


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


_CUDA_OOM = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


def is_out_of_memory(exc: BaseException) -> bool:
    """A failed allocation: CUDA's OutOfMemoryError, Python's MemoryError, or the CPU allocator's error."""
    if isinstance(exc, (MemoryError, _CUDA_OOM)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "DefaultCPUAllocator" in text)


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _fallback_tiles(height: int, width: int, multiple: int) -> list[int]:
    """Tile sides to retry an image with after running out of memory: halving from its longer side."""
    sides, side = [], max(height, width)
    floor = max(16, 4 * multiple)
    while side > floor:
        side = max(floor, (side // 2) // multiple * multiple)
        sides.append(side)
    return sides


def _translate_one(net: nn.Module, x: torch.Tensor, tile: int | None, batch_size: int) -> torch.Tensor | str:
    """One image [1,3,H,W], whole (or at `tile`), then in smaller tiles on each out-of-memory; the reason as
    a string when even the smallest tiles do not fit."""
    m = int(getattr(net, "size_multiple", 1))
    h, w = x.shape[-2:]
    tiles = [tile] + [t for t in _fallback_tiles(h, w, m) if tile is None or t < tile]
    for side in tiles:
        try:
            return translate_tensor(net, x, tile=side, batch_size=1 if side else batch_size)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            _free_memory(x.device)
    smallest = tiles[-1] or max(h, w)
    return f"out of memory, even in {smallest} x {smallest} tiles"


def _translate_group(net: nn.Module, x: torch.Tensor, group: dict, tile: int | None, batch_size: int,
                     report: ConvertReport, jobs: list[_Job]):
    """Yield (job index, uint8 HWC output, alpha) for a group of equal-size images; a group that runs out of
    memory is retried image by image (see :func:`_translate_one`), and an image that never fits is reported."""
    try:
        outs = _to_uint8_hwc(translate_tensor(net, x, tile=tile, batch_size=batch_size))
        yield from zip(group["indices"], outs, group["alphas"])
        return
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        _free_memory(x.device)
    for k, (i, alpha) in enumerate(zip(group["indices"], group["alphas"])):
        out = _translate_one(net, x[k:k + 1], tile, batch_size)
        if isinstance(out, str):
            report.failed[str(jobs[i].src)] = out
            continue
        yield i, _to_uint8_hwc(out)[0], alpha


def resolve_device(device: str | None) -> torch.device:
    """The torch device for `--device` (default: cuda if available), checked to exist before any work."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise TranslateError(f"--device: '{device}' is not a device (cpu, cuda, cuda:1, mps)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TranslateError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        if dev.index is not None and dev.index >= count:
            raise TranslateError(f"--device {device}: this machine has {count} CUDA GPU"
                                 f"{'s' if count > 1 else ''} (cuda:0{f' .. cuda:{count - 1}' if count > 1 else ''})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise TranslateError(f"--device {device}: MPS is not available here (use --device cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise TranslateError(f"--device {device}: unsupported device type '{dev.type}' (cpu, cuda, mps)")
    return dev


def check_options(fmt: str | None = None, quality: int = 95, size: int | None = None, tile: int | None = None,
                  batch_size: int | None = None, workers: int | None = None) -> None:
    """One-line errors for option values that would otherwise fail mid-job."""
    if fmt is not None and fmt not in FORMATS:
        raise TranslateError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if not 0 <= quality <= 100:
        raise TranslateError(f"--quality must be in 0..100, got {quality}")
    for name, value, least in (("--size", size, 2), ("--tile", tile, 2), ("--batch-size", batch_size, 1),
                               ("--workers", workers, 0)):
        if value is not None and value < least:
            raise TranslateError(f"{name} must be at least {least}, got {value}")


def output_kind(path: Path, fmt: str | None) -> str:
    """The output format of an input: `fmt`, else its own when it is one we write, else png."""
    return fmt or _KEPT_SUFFIXES.get(path.suffix.lower()) or "png"


def output_path(rel: Path, fmt: str | None) -> Path:
    """An output's relative path: the input's own suffix (photo.JPEG stays photo.JPEG) unless the format changes."""
    kind = output_kind(rel, fmt)
    return rel.with_suffix(rel.suffix if _KEPT_SUFFIXES.get(rel.suffix.lower()) == kind else "." + kind)


@dataclass
class Prepared:
    """What :func:`prepare` checked and planned."""

    device: torch.device
    precision: str  # chosen: "32", "bf16", "16"
    why: str  # what was chosen and why, for the report
    generator: Any  # checkpoint.load_generator's result
    plan: Plan  # the inputs and where each output goes


def prepare(checkpoint: str | Path, source: str | Path, output: str | Path, direction: str = "AtoB",
            fmt: str | None = None, quality: int = 95, batch_size: int | None = None, device: str | None = None,
            size: int | None = None, tile: int | None = None, precision: str = "auto", workers: int | None = None,
            backend: str = "torch", log: Callable[[str], None] | None = None, weights: str = "auto",
            clean: bool = True) -> Prepared:
    """Everything :func:`convert` checks before it translates, in its order: option values, the device, the
    backend, the generator (downloaded if it is a pretrained name) and the plan (see data/files.py), which
    creates the output folder and, with `clean`, removes the temporary files killed runs left there."""
    check_options(fmt=fmt, quality=quality, size=size, tile=tile, batch_size=batch_size, workers=workers)
    if backend not in BACKENDS:
        raise TranslateError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    dev = resolve_device(device)
    if backend == "onnxruntime" and dev.type != "cpu":
        if device is not None:
            raise TranslateError(f"--backend onnxruntime runs on the CPU here; leave out --device {device}")
        dev = torch.device("cpu")
    chosen, why = choose_precision(dev, precision, backend)
    if backend == "onnxruntime":
        from translate.onnx_runtime import require_onnx

        require_onnx(exporter=False)  # a missing extra is said before anything is planned or created
    generator = load_generator(checkpoint, direction, log=log, weights=weights)
    plan = plan_batch(source, output, lambda rel: output_path(rel, fmt), REPORT_NAME, clean=clean)
    return Prepared(dev, chosen, why, generator, plan)


def convert(checkpoint: str | Path, source: str | Path, output: str | Path, direction: str = "AtoB",
            fmt: str | None = None, quality: int = 95, skip_existing: bool = False, batch_size: int | None = None,
            device: str | None = None, size: int | None = None, tile: int | None = None,
            precision: str = "auto", compile: bool = False, workers: int | None = None,
            progress: Callable[[int, int], None] | None = None, backend: str = "torch",
            log: Callable[[str], None] | None = None, weights: str = "auto", rank: int = 0,
            world_size: int = 1) -> ConvertReport:
    """Translate every image of `source` into `output`, mirroring relative paths; see module docstring.

    `progress(done, total)` is called after each batch (done counts written, failed and kept files).
    Defaults: on CUDA batches of 8 and up to 4 decoding workers; on a CPU batches of 1 and one worker,
    because convolutions already use every core there, and batching measured no faster
    (benchmarks/convert.py).

    With `world_size` > 1 this process is rank `rank` of a job run by several (see translate/shard.py): it
    translates only its share of the files, counts the files that could not be planned and the ignored ones
    only on rank 0 (so merged reports count each file once), leaves temporary files alone (another rank's
    writer may still run) and writes no report: the caller merges the ranks' reports."""
    started = time.perf_counter()
    p = prepare(checkpoint, source, output, direction=direction, fmt=fmt, quality=quality, batch_size=batch_size,
                device=device, size=size, tile=tile, precision=precision, workers=workers, backend=backend, log=log,
                weights=weights, clean=world_size == 1)
    dev, chosen, plan = p.device, p.precision, p.plan
    # bf16 on a CPU: the weights themselves in bf16 (same outputs as autocast, measured, without its casts)
    cast_weights = dev.type == "cpu" and chosen == "bf16" and backend == "torch"
    autocast = nullcontext() if cast_weights else cast_autocast(dev, chosen)
    net = p.generator.net
    out_root = plan.out_root
    if batch_size is None:
        batch_size = 8 if dev.type == "cuda" else 1
    if backend == "onnxruntime":
        from translate.onnx_runtime import onnx_generator_for
        from translate.zoo import cache_dir

        # exported (once per generator: kept in the model cache) and checked against the PyTorch generator
        net = onnx_generator_for(net, cache=cache_dir() / "onnx")
    else:
        net.to(dev)
        if cast_weights:
            net = InDtype(net, torch.bfloat16)
        if dev.type == "cuda":
            net.to(memory_format=torch.channels_last)
        if compile:
            net = torch.compile(net, dynamic=True)
    first = rank == 0
    report = ConvertReport(failed=dict(plan.failed) if first else {}, ignored=dict(plan.inputs.skipped) if first else {},
                           generator=p.generator.describe(), precision=p.why, backend=backend)
    destinations = plan.destinations
    if world_size > 1:
        from translate.shard import in_share

        root = plan.inputs.root
        destinations = {src: dst for src, dst in destinations.items()
                        if in_share(src.relative_to(root), rank, world_size)}
    total = len(destinations) + len(report.failed)

    jobs: list[_Job] = []
    for path, dst in destinations.items():
        if skip_existing and dst.exists():
            report.skipped_existing.append(str(path))
            continue
        try:
            width, height, frames = image_info(path)  # header only; pixels are decoded in the workers
        except DataError as err:
            report.failed[str(path)] = err.why
            continue
        if frames > 1:
            report.notes[str(path)] = f"{frames} frames: the first frame was converted"
        jobs.append(_Job(path, dst, output_kind(path, fmt), resized_shape(height, width, size)))
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
                for i, out, alpha in _translate_group(net, x, group, tile, batch_size, report, jobs):
                    job = jobs[i]
                    pending.append((job, writer.submit(_save, out, alpha, job.dst, job.kind, quality)))
                done += len(group["indices"])
            settle(keep=4 * batch_size)
            if progress:
                progress(done, total)
        settle(keep=0)
    report.failed = dict(sorted(report.failed.items()))
    report.seconds = time.perf_counter() - started
    if world_size == 1:
        report.write(out_root / REPORT_NAME)
    return report

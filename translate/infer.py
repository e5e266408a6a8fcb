"""Inference without a Trainer: translate image files with one generator from a checkpoint.

Native size by default: each image is reflection-padded up to the generator's size multiple and the
output cropped back, so the output has the input's size. Images of equal size are batched together.
Safety: outputs never go into the input tree, each file is written atomically (temporary file, then
rename), ``skip_existing`` resumes an interrupted job, and unreadable inputs are skipped and reported.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from translate.checkpoint import load_checkpoint, load_net
from translate.data.io import IMAGE_EXTENSIONS, list_images, read_image
from translate.data.transforms import to_model_range, to_tensor, to_uint8
from translate.errors import DataError, TranslateError

DIRECTIONS = {"AtoB": "g_ab", "BtoA": "g_ba"}
FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}
REPORT_NAME = "convert-report.json"


@dataclass
class ConvertReport:
    written: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # input path -> why

    def to_dict(self) -> dict:
        return {"written": len(self.written), "skipped_existing": len(self.skipped_existing),
                "failed": self.failed}


def load_generator(checkpoint: str | Path, direction: str = "AtoB") -> nn.Module:
    """Only the generator for `direction`, rebuilt from the checkpoint (weights_only=True)."""
    if direction not in DIRECTIONS:
        raise TranslateError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
    return load_net(load_checkpoint(checkpoint), DIRECTIONS[direction])


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


def _atomic_save(image: np.ndarray, path: Path, fmt: str, quality: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            options = {"quality": quality} if fmt in ("jpg", "webp") else {}
            Image.fromarray(image).save(handle, format=FORMATS[fmt], **options)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@torch.no_grad()
def translate_batch(net: nn.Module, images: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """Same-size uint8 [H,W,3] images -> translated uint8 images of that size."""
    batch = to_model_range(torch.stack([to_tensor(im) for im in images]).to(device))  # [N,3,H,W]
    h, w = batch.shape[-2:]
    m = int(getattr(net, "size_multiple", 1))
    pad_h, pad_w = -h % m, -w % m
    if pad_h or pad_w:  # reflection needs pad < size; replicate covers tiny images
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        batch = F.pad(batch, (0, pad_w, 0, pad_h), mode=mode)
    out = to_uint8(net(batch)[..., :h, :w]).permute(0, 2, 3, 1).cpu().numpy()
    return list(out)


def convert(checkpoint: str | Path, source: str | Path, output: str | Path, direction: str = "AtoB",
            fmt: str | None = None, quality: int = 95, skip_existing: bool = False, batch_size: int = 8,
            device: str | None = None) -> ConvertReport:
    """Translate every image of `source` into `output`, mirroring relative paths; see module docstring."""
    if fmt is not None and fmt not in FORMATS:
        raise TranslateError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    root, files = gather_inputs(source)
    out_root = Path(output).resolve()
    if out_root == root.resolve() or root.resolve() in out_root.parents:
        raise TranslateError(f"output {output} is inside the input folder {root}; choose another folder")
    net = load_generator(checkpoint, direction)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net.to(dev)
    report = ConvertReport()
    groups: dict[tuple[int, int], list[tuple[Path, Path, str, np.ndarray]]] = defaultdict(list)

    def destination(path: Path) -> tuple[Path, str]:
        """Output path and format: the input's (jpg, webp) unless --format; other inputs become png."""
        kind = fmt or {".jpeg": "jpg", ".jpg": "jpg", ".webp": "webp"}.get(path.suffix.lower(), "png")
        return out_root / path.relative_to(root).with_suffix("." + kind), kind

    with ThreadPoolExecutor(max_workers=1) as writer:  # encoding and writing overlap the next batch
        pending = []

        def flush(key: tuple[int, int]) -> None:
            items = groups.pop(key)
            for (src, dst, kind, _), result in zip(items, translate_batch(net, [i[3] for i in items], dev)):
                pending.append((src, dst, writer.submit(_atomic_save, result, dst, kind, quality)))

        for path in files:
            dst, kind = destination(path)
            if skip_existing and dst.exists():
                report.skipped_existing.append(str(path))
                continue
            try:
                image = read_image(path)
            except DataError as err:
                report.failed[str(path)] = err.why
                continue
            key = image.shape[:2]
            groups[key].append((path, dst, kind, image))
            if len(groups[key]) == batch_size:
                flush(key)
        for key in list(groups):
            flush(key)
        for src, dst, future in pending:
            try:
                future.result()
                report.written.append(str(dst))
            except OSError as exc:
                report.failed[str(src)] = f"cannot write {dst}: {exc.strerror or exc}"
    out_root.mkdir(parents=True, exist_ok=True)
    (out_root / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return report

"""GeneGAN's test-time modes without a Trainer: swap, linear and bilinear (matrix) interpolation.

With (A, u) = split(donor) and (B, e) = split(target) (see models/genegan.py):
- swap: the target gains the donor's object, join(B, u); the donor loses it, join(A, 0);
- interpolation: join(B, s * u) for strengths s from 0 to 1 (s = 0 is the target with its object part
  zeroed, s = 1 the swap);
- matrix: over four donors u1..u4 (top-left, top-right, bottom-left, bottom-right), cell (i, j) of an
  m x n grid is join(B, sum_k w_k u_k) with bilinear weights [(1-r)(1-c), (1-r)c, r(1-c), rc],
  r = i/(m-1), c = j/(n-1), as in the authors' test.py.
Images are resized to the checkpoint's training size (square, as GeneGAN trains on aligned crops) for the
nets. With ``blend="footprint"`` (the default) only the edit is taken from the decoder: its footprint is
|decode(edited codes) - decode(own codes)|, thresholded, dilated and feathered as :class:`Footprint`
says (the constants were chosen on held-out twin faces, not on the test pairs). Then the
mask and the decoded image are resized (bilinear) to the input's own size and blended into the original
there: outside the footprint every pixel is the input's, at its full resolution, and the output has the
input's size. ``blend="none"`` is the paper's raw decoder output at the training size. Batch form: one donor's object onto every image of a folder, with the safety of
``translate convert`` (the same plan: no output on an input or inside the input tree, colliding names
kept apart, atomic writes, every input accounted for in the report). No output of any form may be one of
the inputs (data/files.py ``guard_outputs``). The net is the checkpoint's ``g``, loaded by
:func:`translate.checkpoint.load_generator` (``net=SWAP_NET``), which refuses checkpoints of other models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.utils import make_grid, save_image

from translate.checkpoint import SWAP_NET, load_generator
from translate.data.files import guard_outputs, plan_batch
from translate.data.io import atomic_write, read_image
from translate.data.transforms import eval_transform, to_model_range, to_tensor
from translate.errors import CheckpointError, DataError, TranslateError
from translate.infer import ConvertReport

REPORT_NAME = "swap-report.json"
BLENDS = ("footprint", "none")


@dataclass(frozen=True)
class Footprint:
    """Where an edit counts as one: |edited - own| (in [-1, 1], largest over the channels) below ``floor``
    is decoder noise, from ``full`` on the edit is taken whole, linear in between; the mask is then dilated
    by ``dilate`` and feathered by a box filter of radius ``feather`` (fractions of the training size)."""

    floor: float = 0.15  # about 19 levels out of 255: a decoder redraws every face a little after any edit
    full: float = 0.4  # about 51 levels
    dilate: float = 1 / 32  # 2 px at 64 px, so the edit's soft edges are inside the mask
    feather: float = 1 / 32  # the blend fades in over about as many pixels


FOOTPRINT = Footprint()  # chosen on held-out twin faces: benchmarks/genegan_faces.py --sweep, README


def check_blend(blend: str) -> None:
    if blend not in BLENDS:
        raise TranslateError(f"--blend must be one of {', '.join(BLENDS)}, got '{blend}'")


def footprint(edited: Tensor, own: Tensor, shape: Footprint = FOOTPRINT) -> Tensor:
    """[N,1,h,w] in [0, 1]: where `edited` [N,3,h,w] differs from `own` [1 or N,3,h,w], dilated and feathered;
    exactly 0 wherever no difference above the noise floor lies within the dilation and feather radius."""
    size = edited.shape[-1]
    dilate, feather = max(1, round(size * shape.dilate)), max(1, round(size * shape.feather))
    diff = (edited - own).abs().amax(dim=1, keepdim=True)
    mask = ((diff - shape.floor) / (shape.full - shape.floor)).clamp(0, 1)
    mask = F.max_pool2d(mask, 2 * dilate + 1, stride=1, padding=dilate)
    return F.avg_pool2d(mask, 2 * feather + 1, stride=1, padding=feather, count_include_pad=False)


def blend_into(original: Tensor, edited: Tensor, own: Tensor, shape: Footprint = FOOTPRINT) -> Tensor:
    """[N,3,H,W]: `original` [1,3,H,W] (full size, [-1, 1]) with `edited` [N,3,h,w] (decoded at the training
    size) blended in through the footprint of the edit against `own` (the decoder's reconstruction)."""
    height, width = original.shape[-2:]

    def up(t: Tensor) -> Tensor:
        return t if t.shape[-2:] == (height, width) else F.interpolate(t, size=(height, width), mode="bilinear",
                                                                      align_corners=False)

    mask = up(footprint(edited, own, shape)).clamp(0, 1)
    return torch.where(mask > 0, original * (1 - mask) + up(edited).clamp(-1, 1) * mask, original)


def read_full(path: str | Path, size: int) -> tuple[Tensor, Tensor]:
    """(the image at its own size [1,3,H,W], and resized for the nets [1,3,size,size]), both in [-1, 1]."""
    image = read_image(path)
    small = eval_transform(size)(image=image)["image"]
    return to_model_range(to_tensor(image)[None]), to_model_range(to_tensor(small)[None])


def load_genegan(checkpoint: str | Path, weights: str = "auto") -> tuple[nn.Module, int]:
    """(the encoder-decoder in eval mode, the training image size) of a GeneGAN checkpoint; `weights` as in
    :func:`~translate.checkpoint.load_generator` (its moving average when saved, unless "raw")."""
    found = load_generator(checkpoint, net=SWAP_NET, weights=weights)  # refuses other models, exports, classic files
    try:
        size = int(found.config["data"]["crop_size"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{checkpoint}: malformed translate checkpoint: its config has no data.crop_size") from None
    return found.net, size


def read_face(path: str | Path, size: int) -> Tensor:
    """One image as [1,3,size,size] in [-1, 1]."""
    image = eval_transform(size)(image=read_image(path))["image"]
    return to_model_range(to_tensor(image)[None])


@torch.no_grad()
def swap(g: nn.Module, donor: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """(target with the donor's object, donor without its object); donor [1 or N,...], target [N,...]."""
    bg_a, obj_a = g.split(donor)
    bg_b, _ = g.split(target)
    return g.join(bg_b, obj_a.expand(len(target), -1, -1, -1)), g.join(bg_a, torch.zeros_like(obj_a))


@torch.no_grad()
def interpolate(g: nn.Module, donor: Tensor, target: Tensor, strengths: list[float]) -> Tensor:
    """[len(strengths),3,H,W]: the target with the donor's object scaled by each strength."""
    _, obj = g.split(donor)
    bg, _ = g.split(target)
    scale = torch.tensor(strengths, dtype=obj.dtype).view(-1, 1, 1, 1)
    return g.join(bg.expand(len(strengths), -1, -1, -1), scale * obj)


def bilinear_weights(rows: int, cols: int) -> Tensor:
    """[rows*cols, 4] weights of the four corners (top-left, top-right, bottom-left, bottom-right)."""
    r = torch.linspace(0, 1, rows).view(-1, 1).expand(rows, cols).reshape(-1)
    c = torch.linspace(0, 1, cols).view(1, -1).expand(rows, cols).reshape(-1)
    return torch.stack([(1 - r) * (1 - c), (1 - r) * c, r * (1 - c), r * c], dim=1)


@torch.no_grad()
def matrix(g: nn.Module, corners: Tensor, target: Tensor, rows: int, cols: int) -> Tensor:
    """[rows*cols,3,H,W] (row-major): the target with bilinear mixes of the four corners' objects."""
    _, objs = g.split(corners)  # [4,k,h,w]
    bg, _ = g.split(target)
    mixed = torch.einsum("nc,ckhw->nkhw", bilinear_weights(rows, cols), objs)
    return g.join(bg.expand(rows * cols, -1, -1, -1), mixed)


def save_images(images: Tensor, path: str | Path, nrow: int) -> Path:
    """A grid of [-1, 1] images, written atomically (one image is written as itself)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = images[0] if len(images) == 1 else make_grid(images, nrow=nrow, padding=2, pad_value=1.0)
    grid = (grid.clamp(-1, 1) + 1) / 2
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(path.suffix.lower(), "png")
    atomic_write(path, lambda tmp: save_image(grid, tmp, format=fmt))
    return path


@torch.no_grad()
def reconstruct(g: nn.Module, face: Tensor) -> Tensor:
    """The decoder's own output for `face`: join(split(face)), what an edit is measured against."""
    return g.join(*g.split(face))


def swap_files(checkpoint: str | Path, donor: str | Path, target: str | Path, out: str | Path,
               removed: str | Path | None = None, blend: str = "footprint", weights: str = "auto") -> tuple[Path, Path]:
    """One pair: writes the target with the donor's object to `out` and the donor without it to `removed`
    (default: `out` with ``-removed`` before the suffix)."""
    check_blend(blend)
    out = Path(out)
    removed = Path(removed) if removed else out.with_name(f"{out.stem}-removed{out.suffix or '.png'}")
    guard_outputs([out, removed], [donor, target])
    if out.resolve() == removed.resolve():
        raise TranslateError(f"--out and --removed are the same file ({out}); give two paths")
    g, size = load_genegan(checkpoint, weights)
    (donor_full, donor_small), (target_full, target_small) = read_full(donor, size), read_full(target, size)
    gained, lost = swap(g, donor_small, target_small)
    if blend == "footprint":
        gained = blend_into(target_full, gained, reconstruct(g, target_small))
        lost = blend_into(donor_full, lost, reconstruct(g, donor_small))
    return save_images(gained, out, 1), save_images(lost, removed, 1)


def swap_folder(checkpoint: str | Path, donor: str | Path | None, source: str | Path, output: str | Path,
                skip_existing: bool = False, blend: str = "footprint", weights: str = "auto") -> ConvertReport:
    """The donor's object onto every image of `source` (folder, glob or file), mirrored into `output`;
    without a donor (``--remove``), every image loses its object instead."""
    check_blend(blend)
    started = time.perf_counter()
    g, size = load_genegan(checkpoint, weights)
    plan = plan_batch(source, output, lambda rel: rel.with_suffix(".png"), REPORT_NAME)
    guard_outputs(plan.destinations.values(), [donor] if donor is not None else [])
    obj = None
    if donor is not None:
        with torch.no_grad():
            _, obj = g.split(read_face(donor, size))  # the donor is encoded once for the whole folder
    report = ConvertReport(failed=dict(plan.failed), ignored=dict(plan.inputs.skipped))
    for path, dst in plan.destinations.items():
        if skip_existing and dst.exists():
            report.skipped_existing.append(str(path))
            continue
        try:
            full, face = read_full(path, size)
        except DataError as err:
            report.failed[str(path)] = err.why
            continue
        with torch.no_grad():
            bg, own_obj = g.split(face)
            edited = g.join(bg, obj if obj is not None else torch.zeros_like(own_obj))
            if blend == "footprint":
                edited = blend_into(full, edited, g.join(bg, own_obj))
            try:
                save_images(edited, dst, 1)
            except OSError as exc:
                report.failed[str(path)] = f"cannot write {dst}: {exc.strerror or exc}"
                continue
        report.written.append(str(dst))
    report.failed = dict(sorted(report.failed.items()))
    report.seconds = time.perf_counter() - started
    report.write(plan.out_root / REPORT_NAME)
    return report


def interpolate_files(checkpoint: str | Path, onto: str | Path, out: str | Path, donor: str | Path | None = None,
                      steps: int = 8, corners: tuple[str | Path, ...] | None = None, grid: int = 5,
                      blend: str = "footprint", weights: str = "auto") -> Path:
    """A strip (`donor`, `steps` strengths from 0 to 1) or a `grid` x `grid` bilinear mix of four `corners`
    on the image `onto`, written to `out` (never over one of the inputs). With footprint blending each cell
    is blended into `onto` at its own size through that cell's own footprint."""
    check_blend(blend)
    if (donor is None) == (corners is None):
        raise TranslateError("give either --from DONOR (a strip) or --corners A1 A2 A3 A4 (a grid)")
    if donor is not None and steps < 2:
        raise TranslateError(f"--steps must be at least 2, got {steps}")
    if corners is not None and grid < 2:
        raise TranslateError(f"--grid must be at least 2, got {grid}")
    guard_outputs([out], [onto, *([donor] if donor is not None else corners)])
    g, size = load_genegan(checkpoint, weights)
    full, target = read_full(onto, size)
    if donor is not None:
        images, nrow = interpolate(g, read_face(donor, size), target, [i / (steps - 1) for i in range(steps)]), steps
    else:
        images, nrow = matrix(g, torch.cat([read_face(p, size) for p in corners]), target, grid, grid), grid
    if blend == "footprint":
        images = blend_into(full, images, reconstruct(g, target))  # per cell: each its own footprint
    return save_images(images, out, nrow=nrow)

"""Images/s of `translate convert` against the classic one-image loop, same folder, same generator, same run.

The classic loop is what pytorch-CycleGAN-and-pix2pix's test.py does per image: PIL open, convert to RGB,
resize to the load size (bicubic; a no-op here because the images already have that size), ToTensor +
Normalize, one fp32 forward under no_grad, tensor2im, PIL save. `translate convert` runs with its defaults
(size-planned batches, decoding in DataLoader workers, background writer; on CUDA also pinned memory,
channels_last and bf16 autocast). The generator is the recipe's ResNet-9 (ngf 64) with seeded random
weights: speed does not depend on what the weights learned. Outputs of both are compared pixel by pixel.

    python benchmarks/convert.py                       # CPU here: 24 JPEGs of 256x256
    python benchmarks/convert.py --count 200 --device cuda
    python benchmarks/convert.py --ngf 16 --n-blocks 6 --count 64   # a light generator: I/O matters more
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from translate.export import save_generator
from translate.infer import convert
from translate.nets import ResnetGenerator

ARCH, KWARGS = "resnet", {"ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": False}


def make_photos(folder: Path, count: int, size: int, seed: int = 0) -> None:
    """Smooth random colour fields plus noise, saved as JPEG (decodes like a photo, not like flat colour)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC)).astype(np.int16)
        image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=92)


def classic_loop(net: torch.nn.Module, files: list[Path], out: Path, size: int, device: torch.device) -> float:
    """The reference implementation's test loop, one image at a time, fp32; returns seconds."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for path in files:
        image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)  # ToTensor
        x = ((x - 0.5) / 0.5)[None].to(device)  # Normalize((0.5,) * 3, (0.5,) * 3)
        with torch.no_grad():
            y = net(x)
        array = ((y[0].cpu().float().numpy().transpose(1, 2, 0) + 1) / 2.0 * 255.0).astype(np.uint8)  # tensor2im
        Image.fromarray(array).save(out / path.name, quality=95)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=24, help="images in the folder")
    parser.add_argument("--size", type=int, default=256, help="image side (pixels)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each; the median is reported")
    parser.add_argument("--batch-size", type=int, default=None, help="default: convert's (8 on CUDA, 1 on CPU)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--ngf", type=int, default=64, help="generator width (64: the recipe; smaller: where "
                        "decoding and writing weigh more)")
    parser.add_argument("--n-blocks", type=int, default=9, help="residual blocks (9: the recipe)")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    kwargs = {**KWARGS, "ngf": args.ngf, "n_blocks": args.n_blocks}
    net = ResnetGenerator(**kwargs).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_photos(root / "in", args.count, args.size)
        weights = save_generator(net, ARCH, kwargs, root / "g.safetensors")
        files = sorted((root / "in").iterdir())
        net = net.to(device)
        classic_loop(net, files[:2], root / "warm", args.size, device)  # warm-up: kernels, allocator
        convert(weights, files[0], root / "warm2", device=args.device)
        ours, theirs = [], []
        for r in range(args.repeats):
            theirs.append(classic_loop(net, files, root / f"classic{r}", args.size, device))
            report = convert(weights, root / "in", root / f"ours{r}", batch_size=args.batch_size, device=args.device)
            assert len(report.written) == args.count and not report.failed
            ours.append(report.seconds)
        diffs = [np.abs(np.asarray(Image.open(root / "classic0" / f.name), dtype=int)
                        - np.asarray(Image.open(root / "ours0" / f.name), dtype=int)).mean() for f in files]
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.count} JPEGs of {args.size}x{args.size}; ResNet-{args.n_blocks} ngf {args.ngf}; "
          f"median of {args.repeats} runs")
    print(f"classic one-image loop (fp32): {args.count / t_theirs:7.2f} images/s ({t_theirs:.2f} s)")
    print(f"translate convert:             {args.count / t_ours:7.2f} images/s ({t_ours:.2f} s)")
    print(f"ratio (translate / classic):   {t_theirs / t_ours:7.2f}x")
    print(f"mean |difference| of the JPEG outputs: {statistics.mean(diffs):.2f} levels "
          "(the classic tensor2im truncates where translate rounds; JPEG re-encoding adds the rest)")


if __name__ == "__main__":
    main()

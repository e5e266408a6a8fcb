"""Images/s of `translate convert` against the classic one-image loop, same folder, same generator, same run.

The classic loop is what pytorch-CycleGAN-and-pix2pix's test.py does per image: PIL open, convert to RGB,
resize to the load size (bicubic; a no-op here because the images already have that size), ToTensor +
Normalize, one fp32 forward under no_grad, tensor2im, PIL save. `translate convert` runs with its defaults
(size-planned batches, decoding in DataLoader workers, background writer; on CUDA also pinned memory,
channels_last and bf16 autocast) once per variant: torch fp32, torch bf16 autocast (on a CPU without native
bf16 it is emulated: measured, not assumed), onnxruntime (when the extra is installed) and `--precision auto`,
which picks one of them, and `compile` (auto with `--compile`: torch.compile of the generator, its
compilation paid in the warm-up run). The generator is the recipe's ResNet-9 (ngf 64) with seeded random weights (speed
does not depend on what the weights learned), saved as a classic `latest_net_G.pth`: both sides start from
that file, so loading the weights is timed on both. Each variant's outputs are compared with the classic
loop's. `convert --backend onnxruntime` exports the generator once and keeps the checked export in the model
cache; the warm-up run pays that export, the timed runs load it (and check it again).

    python benchmarks/convert.py                       # CPU here: 24 JPEGs of 256x256
    python benchmarks/convert.py --size 512 --count 8
    python benchmarks/convert.py --count 200 --device cuda
    python benchmarks/convert.py --count 200 --size 512 --device cuda --variants auto,compile --json out/convert.json
    python benchmarks/convert.py --ngf 16 --n-blocks 6 --count 64   # a light generator: I/O matters more
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/convert.py --variants 32,bf16,onnxruntime
        # as on a CPU without AVX-512 / AMX (bf16 emulated); onnxruntime keeps its own dispatch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from translate.infer import convert
from translate.nets import ResnetGenerator
from translate.upstream import to_upstream

KWARGS = {"ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": False}


def make_photos(folder: Path, count: int, size: int, seed: int = 0) -> None:
    """Smooth random colour fields plus noise, saved as JPEG (decodes like a photo, not like flat colour)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        low = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC)).astype(np.int16)
        image = np.clip(image + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:04d}.jpg", quality=92)


def classic_loop(weights: Path, kwargs: dict, files: list[Path], out: Path, size: int, device: torch.device) -> float:
    """The reference implementation's test path, fp32; returns seconds. Like test.py it starts from the weights
    file (build the net, torch.load, load_state_dict), then translates one image at a time."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    net = ResnetGenerator(**kwargs)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net = net.to(device)  # test.py does not call eval(): no difference for instance norm without dropout
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


def cpu_capability() -> str:
    """The CPU's name and the vector features that decide fp32 vs bf16 speed."""
    from translate.precision import cpu_bf16_flags

    name = "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    bf16 = cpu_bf16_flags()
    limited = os.environ.get("ONEDNN_MAX_CPU_ISA")  # e.g. AVX2: oneDNN as on a CPU without AVX-512 / AMX
    return (f"{name}, torch capability {torch.backends.cpu.get_cpu_capability()}, "
            f"native bf16: {', '.join(bf16) if bf16 else 'no (bf16 is emulated)'}"
            f"{f', but oneDNN limited to {limited} (ONEDNN_MAX_CPU_ISA)' if limited else ''}, "
            f"{torch.get_num_threads()} threads")


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
    parser.add_argument("--variants", default="32,bf16,onnxruntime,auto",
                        help="comma-separated: 32, bf16, 16, onnxruntime, auto, compile (auto with --compile)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    kwargs = {**KWARGS, "ngf": args.ngf, "n_blocks": args.n_blocks}
    net = ResnetGenerator(**kwargs).eval()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "onnxruntime" in variants:
        try:
            import onnxruntime  # noqa: F401  (installed?)
        except ImportError:
            print("onnxruntime is not installed (pip install 'translate[onnx]'): that variant is left out")
            variants.remove("onnxruntime")
    if device.type != "cpu" and "onnxruntime" in variants:
        variants.remove("onnxruntime")

    def options(variant: str) -> dict:
        if variant == "onnxruntime":
            return {"backend": "onnxruntime", "device": "cpu"}
        if variant == "compile":
            return {"precision": "auto", "device": args.device, "compile": True}
        return {"precision": variant, "device": args.device}

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["TRANSLATE_MODELS_DIR"] = str(root / "cache")  # the onnx export cache: not the user's
        make_photos(root / "in", args.count, args.size)
        weights = root / "latest_net_G.pth"  # a classic generator file: both sides start from it
        torch.save(to_upstream(net), weights)
        files = sorted((root / "in").iterdir())
        classic_loop(weights, kwargs, files[:2], root / "warm", args.size, device)  # warm-up: kernels, allocator
        for variant in variants:
            convert(weights, files[0], root / f"warm-{variant}", **options(variant))
        times: dict[str, list[float]] = {"classic": []}
        chosen: dict[str, str] = {}
        for r in range(args.repeats):  # interleaved, so a slow spell of the machine hits every variant alike
            times["classic"].append(classic_loop(weights, kwargs, files, root / f"classic{r}", args.size, device))
            for variant in variants:
                report = convert(weights, root / "in", root / f"{variant}{r}", batch_size=args.batch_size,
                                 **options(variant))
                assert len(report.written) == args.count and not report.failed
                times.setdefault(variant, []).append(report.seconds)  # includes the onnx export, once per run
                chosen[variant] = report.precision
        diffs = {v: statistics.mean(
            np.abs(np.asarray(Image.open(root / "classic0" / f.name), dtype=int)
                   - np.asarray(Image.open(root / f"{v}0" / f.name), dtype=int)).mean() for f in files)
            for v in variants}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_capability()
    print(f"device: {name}")
    print(f"{args.count} JPEGs of {args.size}x{args.size}; ResNet-{args.n_blocks} ngf {args.ngf}; "
          f"median of {args.repeats} runs each, interleaved")
    t_classic = statistics.median(times["classic"])
    print(f"  classic one-image loop (fp32): {args.count / t_classic:7.2f} images/s ({t_classic:.2f} s)")
    labels = {"32": "translate, torch fp32", "bf16": "translate, torch bf16", "16": "translate, torch fp16",
              "onnxruntime": "translate, onnxruntime fp32", "auto": "translate, --precision auto",
              "compile": "translate, auto + --compile"}
    figures = {"device": name, "count": args.count, "size": args.size, "repeats": args.repeats,
               "classic": {"images_per_s": args.count / t_classic, "seconds": times["classic"]}}
    for variant in variants:
        t = statistics.median(times[variant])
        figures[variant] = {"images_per_s": args.count / t, "seconds": times[variant], "ratio": t_classic / t,
                            "mean_abs_difference": float(diffs[variant]), "precision": chosen[variant]}
        print(f"  {labels[variant] + ':':31s}{args.count / t:7.2f} images/s ({t:.2f} s), {t_classic / t:5.2f}x "
              f"the classic loop; mean |difference| {diffs[variant]:.2f} levels"
              + (f"  [auto chose: {chosen[variant]}]" if variant in ("auto", "compile") else ""))
    print("(the classic tensor2im truncates where translate rounds; JPEG re-encoding adds the rest of the difference)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()

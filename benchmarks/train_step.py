"""Seconds per CycleGAN training step: `translate` (through the Lightning Trainer, as `translate fit` runs it)
against a plain-PyTorch loop that follows the classic implementation's step exactly, in the same process.

The baseline is pytorch-CycleGAN-and-pix2pix's `CycleGANModel.optimize_parameters`, written out: ResNet-9
generators and 70x70 PatchGANs (our nets, N(0, 0.02) init), forward G_A(a), G_B(G_A(a)), G_B(b), G_A(G_B(b));
generator step with D frozen on LSGAN + 10 x cycle L1 + 5 x identity L1 (two more forwards, G_A(b), G_B(a));
then D_A and D_B on real vs pooled fake (0.5 x LSGAN each); Adam 2e-4 (0.5, 0.999), fp32, batch 1.
Both see the same random uint8 images. Timing: median over the timed steps after warm-up. Each variant runs
in a fresh process (spawned), so one cannot leave memory or compiled kernels to the next. Peak memory: on
CUDA torch.cuda.max_memory_allocated over the steps (weights included, what nvidia-smi users compare); on a
CPU the peak resident memory during the steps above the process's resident memory just before the first
step (Linux: VmHWM reset through /proc/self/clear_refs; weights and imports are in the baseline).

`--models cut fastcut` also times translate's CUT and FastCUT at the authors' defaults (one antialiased
ResNet-9, its PatchNCE heads and one antialiased PatchGAN) and reports each against translate's CycleGAN.

    python benchmarks/train_step.py                              # CPU: 64 and 128 px
    python benchmarks/train_step.py --sizes 256 --precision bf16-mixed --device cuda
    python benchmarks/train_step.py --models cut fastcut         # and CUT's and FastCUT's steps
    python benchmarks/train_step.py --device cuda --sizes 256 --precision 32-true bf16-mixed --compile \
        --models cut fastcut --steps 30 --warmup 5 --json out/train_step.json   # as benchmarks/gpu_suite.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from translate.config import resolve
from translate.models import build_model
from translate.nets import PatchDiscriminator, ResnetGenerator, init_weights
from translate.train import loop_callbacks


class Pool:
    """The classic ImagePool: 50 images, return a stored one half of the time once full."""

    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for image in images:
            image = image.detach()[None]
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.random() > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out)


def _rss() -> int:
    """Resident memory of this process now, in bytes (Linux /proc; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return pages * resource.getpagesize()


class Peak:
    """Peak memory from `start()` (just before the first step) to `bytes()` (after the last)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.base, self.reset = device, 0, False

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        self.base = _rss()
        try:  # "5" resets the peak resident size (VmHWM) to the current one (Linux >= 4.0)
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            self.reset = False

    def bytes(self) -> int:
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device)
        peak = 0
        if self.reset:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        if not peak:  # no reset: the life-long peak, which the steps dominate
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return max(0, peak - self.base)


def classic_steps(size: int, steps: int, device: torch.device) -> tuple[list[float], int]:
    torch.manual_seed(0)
    g_a, g_b = ResnetGenerator().to(device), ResnetGenerator().to(device)
    d_a, d_b = PatchDiscriminator().to(device), PatchDiscriminator().to(device)
    for net in (g_a, g_b, d_a, d_b):
        init_weights(net, 0.02)
    opt_g = torch.optim.Adam(list(g_a.parameters()) + list(g_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(d_a.parameters()) + list(d_b.parameters()), lr=2e-4, betas=(0.5, 0.999))
    mse, l1 = nn.MSELoss(), nn.L1Loss()
    pool_a, pool_b = Pool(), Pool()
    peak = Peak(device)

    def gan(pred: torch.Tensor, real: bool) -> torch.Tensor:
        return mse(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def requires_grad(nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    times = []
    peak.start()
    for step in range(steps):
        g = torch.Generator().manual_seed(step)
        real_a = (torch.randint(0, 256, (1, 3, size, size), generator=g).float() / 127.5 - 1).to(device)
        real_b = (torch.randint(0, 256, (1, 3, size, size), generator=g).float() / 127.5 - 1).to(device)
        start = time.perf_counter()
        fake_b = g_a(real_a)
        rec_a = g_b(fake_b)
        fake_a = g_b(real_b)
        rec_b = g_a(fake_a)
        requires_grad([d_a, d_b], False)
        opt_g.zero_grad()
        idt_a, idt_b = g_a(real_b), g_b(real_a)
        loss_g = (gan(d_a(fake_b), True) + gan(d_b(fake_a), True) + 10 * l1(rec_a, real_a) + 10 * l1(rec_b, real_b)
                  + 5 * l1(idt_a, real_b) + 5 * l1(idt_b, real_a))
        loss_g.backward()
        opt_g.step()
        requires_grad([d_a, d_b], True)
        opt_d.zero_grad()
        for d, real, fake in ((d_a, real_b, pool_b.query(fake_b)), (d_b, real_a, pool_a.query(fake_a))):
            loss_d = 0.5 * (gan(d(real), True) + gan(d(fake.detach()), False))
            loss_d.backward()
        opt_d.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times, peak.bytes()


class StepTimer(pl.Callback):
    def __init__(self, device: torch.device) -> None:
        self.times: list[float] = []
        self.peak = Peak(device)

    def on_train_start(self, trainer, pl_module) -> None:
        self.peak.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)


class RandomPairs(torch.utils.data.Dataset):
    def __init__(self, size: int, n: int) -> None:
        self.size, self.n = size, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {k: torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8) for k in "AB"}


def translate_steps(size: int, steps: int, device: torch.device, precision: str,
                    model_name: str = "cyclegan", compile: bool = False) -> tuple[list[float], int]:
    torch.manual_seed(0)
    cfg = resolve({"model": {"name": model_name}, "data": {"crop_size": size, "load_size": size, "batch_size": 1}},
                  flags={"train.precision": precision, "train.compile": compile})
    model = build_model(cfg)
    timer = StepTimer(device)  # with the loop's jobs as translate fit runs them (channels_last on CUDA, ...)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=-1, max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer, *loop_callbacks(cfg)], num_sanity_val_steps=0,
                         limit_val_batches=0, log_every_n_steps=50)
    loader = torch.utils.data.DataLoader(RandomPairs(size, steps), batch_size=1, num_workers=0,
                                         pin_memory=device.type == "cuda")
    trainer.fit(model, train_dataloaders=loader)
    return timer.times, timer.peak.bytes()


def run_variant(variant: dict) -> dict:
    """One variant, timed in this process: {"times": [...], "peak": bytes}."""
    device = torch.device(variant["device"])
    if variant["threads"]:
        torch.set_num_threads(variant["threads"])
    if variant["model"] == "classic":
        times, peak = classic_steps(variant["size"], variant["steps"], device)
    else:
        times, peak = translate_steps(variant["size"], variant["steps"], device, variant["precision"],
                                      variant["model"], variant["compile"])
    return {"times": times, "peak": peak}


def in_fresh_process(variant: dict) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_variant, variant).result()


def label(variant: dict) -> str:
    if variant["model"] == "classic":
        return "classic fp32"
    return f"{variant['model']} {variant['precision']}" + (" compiled" if variant["compile"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 64 128 (CPU), 256 (CUDA)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["32-true"],
                        help="translate's precisions: 32-true, bf16-mixed, 16-mixed ... (each one timed)")
    parser.add_argument("--compile", action="store_true",
                        help="also time translate's CycleGAN at the last precision with train.compile=true")
    parser.add_argument("--models", nargs="*", default=[], choices=["cut", "fastcut"],
                        help="also time these translate models, at each precision, against translate's CycleGAN")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")
    device = torch.device(args.device)
    sizes = args.sizes or ([256] if device.type == "cuda" else [64, 128])
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {threads} threads"
    memory = ("peak memory: max_memory_allocated" if device.type == "cuda"
              else "peak memory: resident, above the resident size before the first step")
    print(f"device: {name}; ResNet-9 + PatchGAN, batch 1; median of {args.steps - args.warmup} steps after "
          f"{args.warmup} warm-up; classic fp32; each variant in a fresh process; {memory}", flush=True)
    records = []
    for size in sizes:
        base = {"size": size, "steps": args.steps, "device": args.device, "threads": threads, "compile": False}
        variants = [{**base, "model": "classic", "precision": "32-true"}]
        for precision in args.precision:
            variants.append({**base, "model": "cyclegan", "precision": precision})
            variants += [{**base, "model": m, "precision": precision} for m in args.models]
        if args.compile:
            variants.append({**base, "model": "cyclegan", "precision": args.precision[-1], "compile": True})
        found = {}
        for variant in variants:
            result = in_fresh_process(variant)
            seconds = statistics.median(result["times"][args.warmup:])
            record = {**variant, "label": label(variant), "s_per_step": seconds, "peak_bytes": result["peak"],
                      "times": result["times"]}
            found[(variant["model"], variant["precision"], variant["compile"])] = record
            classic = found[("classic", "32-true", False)]
            reference = classic if variant["model"] in ("classic", "cyclegan") else \
                found[("cyclegan", variant["precision"], False)]
            record["versus"] = reference["label"]
            record["speed_ratio"] = reference["s_per_step"] / seconds  # steps/s, this / reference
            record["memory_ratio"] = result["peak"] / reference["peak_bytes"] if reference["peak_bytes"] else None
            records.append(record)
            line = f"{size:4d} px: {record['label']:28s} {seconds:.3f} s/step, peak {result['peak'] / 2**30:.2f} GiB"
            if record is not reference:
                line += f"; {record['speed_ratio']:.2f}x the steps/s of {reference['label']}"
                if record["memory_ratio"] is not None:
                    line += f", {record['memory_ratio']:.2f}x its peak memory"
            print(line, flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": name, "warmup": args.warmup, "records": records}, indent=1))


if __name__ == "__main__":
    main()

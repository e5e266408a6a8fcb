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
        --models cut fastcut --steps 30 --warmup 5 --json out/train_step.json --profile out  # as gpu_suite.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import statistics
import time
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
    """Times each step; with `profile_from`, runs torch.profiler over the steps from that one on."""

    def __init__(self, device: torch.device, profile_from: int | None = None) -> None:
        self.times: list[float] = []
        self.peak = Peak(device)
        self.profile_from, self.profiler = profile_from, None

    def on_train_start(self, trainer, pl_module) -> None:
        self.peak.start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        if batch_idx == self.profile_from:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if pl_module.device.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(activities=activities)
            self.profiler.__enter__()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.profiler is not None:
            self.profiler.__exit__(None, None, None)


def profile_summary(profiler, device: torch.device, seconds: float) -> tuple[str, float | None]:
    """The profiler's top operators (by their own device time on CUDA, CPU time elsewhere) and, on CUDA, the
    share of the profiled wall time the GPU spent in kernels and copies: far below 1 at batch 1 means the
    step waits on launches (what CUDA graphs, torch.compile(mode="reduce-overhead"), would remove)."""
    averages = profiler.key_averages()
    on_cuda = device.type == "cuda"
    table = averages.table(sort_by="self_cuda_time_total" if on_cuda else "self_cpu_time_total", row_limit=25)
    busy = None
    if on_cuda and seconds > 0:
        busy = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in averages)
        busy = busy / 1e6 / seconds
    return table, busy


class RandomPairs(torch.utils.data.Dataset):
    def __init__(self, size: int, n: int) -> None:
        self.size, self.n = size, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {k: torch.randint(0, 256, (3, self.size, self.size), generator=g, dtype=torch.uint8) for k in "AB"}


def translate_steps(size: int, steps: int, device: torch.device, precision: str,
                    model_name: str = "cyclegan", compile: bool = False,
                    profile_from: int | None = None, compile_mode: str = "default"
                    ) -> tuple[list[float], int, StepTimer]:
    torch.manual_seed(0)
    cfg = resolve({"model": {"name": model_name}, "data": {"crop_size": size, "load_size": size, "batch_size": 1}},
                  flags={"train.precision": precision, "train.compile": compile, "train.compile_mode": compile_mode})
    model = build_model(cfg)
    timer = StepTimer(device, profile_from)  # with the loop's jobs as translate fit runs them (channels_last on CUDA, ...)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=-1, max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer, *loop_callbacks(cfg)], num_sanity_val_steps=0,
                         limit_val_batches=0, log_every_n_steps=50)
    loader = torch.utils.data.DataLoader(RandomPairs(size, steps), batch_size=1, num_workers=0,
                                         pin_memory=device.type == "cuda")
    trainer.fit(model, train_dataloaders=loader)
    return timer.times, timer.peak.bytes(), timer


def run_variant(variant: dict) -> dict:
    """One variant, timed in this process: {"times": [...], "peak": bytes}."""
    device = torch.device(variant["device"])
    if variant["threads"]:
        torch.set_num_threads(variant["threads"])
    if variant["model"] == "classic":
        times, peak = classic_steps(variant["size"], variant["steps"], device)
        return {"times": times, "peak": peak}
    profile_from = variant["warmup"] if variant.get("profile") else None
    times, peak, timer = translate_steps(variant["size"], variant["steps"], device, variant["precision"],
                                         variant["model"], variant["compile"], profile_from,
                                         variant.get("compile_mode", "default"))
    result = {"times": times, "peak": peak}
    if timer.profiler is not None:
        table, busy = profile_summary(timer.profiler, device, sum(times[variant["warmup"]:]))
        out = Path(variant["profile"]) / f"profile-{variant['size']}px-{variant['model']}-{variant['precision']}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table)
        result.update(profile=str(out), device_busy=busy)
    return result


class VariantFailed(RuntimeError):
    pass


def _child(variant: dict, conn) -> None:
    try:
        conn.send(("ok", run_variant(variant)))
    except BaseException as exc:  # noqa: BLE001 - reported by the parent, which goes on with the others
        conn.send(("error", f"{type(exc).__name__}: {str(exc).strip()[:300]}"))
    finally:
        conn.close()


def in_fresh_process(variant: dict, timeout: float | None = None) -> dict:
    """run_variant(variant) in a spawned process; VariantFailed when it raised, died or ran past `timeout`."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(variant, send))
    process.start()
    send.close()
    try:
        if not receive.poll(timeout):
            process.kill()
            raise VariantFailed(f"stopped after its limit of {timeout:.0f} s (--variant-timeout)")
        kind, value = receive.recv()
    except EOFError:
        process.join()
        raise VariantFailed(f"its process died (exit code {process.exitcode})") from None
    finally:
        process.join()
    if kind == "error":
        raise VariantFailed(value)
    return value


def label(variant: dict) -> str:
    if variant["model"] == "classic":
        return "classic fp32"
    mode = variant.get("compile_mode", "default")
    return (f"{variant['model']} {variant['precision']}"
            + ((" compiled" + (f" ({mode})" if mode != "default" else "")) if variant["compile"] else "")
            + (" profiled" if variant.get("profile") else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 64 128 (CPU), 256 (CUDA)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", nargs="+", default=["32-true"],
                        help="translate's precisions: 32-true, bf16-mixed, 16-mixed ... (each one timed)")
    parser.add_argument("--compile", nargs="*", default=None, metavar="MODE",
                        help="also time translate's CycleGAN at the last precision with train.compile=true, once per "
                             "train.compile_mode given (none given: default; reduce-overhead: CUDA graphs)")
    parser.add_argument("--models", nargs="*", default=[], choices=["cut", "fastcut"],
                        help="also time these translate models, at each precision, against translate's CycleGAN")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    parser.add_argument("--variant-timeout", type=float, default=None,
                        help="seconds for one variant's process; past it the variant is reported failed")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also run translate's CycleGAN at the last precision under torch.profiler (a run of "
                             "its own, not timed against the others) and write its top operators into this folder")
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
    records: list[dict] = []

    def write(records: list[dict]) -> None:  # after every variant, so a stopped run keeps what it measured
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"device": name, "warmup": args.warmup, "records": records}, indent=1))

    for size in sizes:
        base = {"size": size, "steps": args.steps, "warmup": args.warmup, "device": args.device, "threads": threads,
                "compile": False}
        variants = [{**base, "model": "classic", "precision": "32-true"}]
        for precision in args.precision:
            variants.append({**base, "model": "cyclegan", "precision": precision})
            variants += [{**base, "model": m, "precision": precision} for m in args.models]
        for mode in ([] if args.compile is None else args.compile or ["default"]):
            variants.append({**base, "model": "cyclegan", "precision": args.precision[-1], "compile": True,
                             "compile_mode": mode})
        if args.profile:
            variants.append({**base, "model": "cyclegan", "precision": args.precision[-1], "profile": str(args.profile)})
        found = {}
        for variant in variants:
            try:
                result = in_fresh_process(variant, args.variant_timeout)
            except VariantFailed as exc:
                records.append({**variant, "label": label(variant), "error": str(exc)})
                print(f"{size:4d} px: {label(variant):28s} FAILED: {exc}", flush=True)
                write(records)
                continue
            seconds = statistics.median(result["times"][args.warmup:])
            record = {**variant, "label": label(variant), "s_per_step": seconds, "peak_bytes": result["peak"],
                      "times": result["times"], **{k: result[k] for k in ("profile", "device_busy") if k in result}}
            if not variant.get("profile"):
                found[(variant["model"], variant["precision"], variant["compile"])] = record
            reference = found.get(("classic", "32-true", False)) if variant["model"] in ("classic", "cyclegan") \
                else found.get(("cyclegan", variant["precision"], False))
            if variant.get("profile") or reference is None:  # the profiler's cost is in its times: no comparison
                reference = record
            record["versus"] = reference["label"]
            record["speed_ratio"] = reference["s_per_step"] / seconds  # steps/s, this / reference
            record["memory_ratio"] = result["peak"] / reference["peak_bytes"] if reference["peak_bytes"] else None
            records.append(record)
            write(records)
            line = f"{size:4d} px: {record['label']:28s} {seconds:.3f} s/step, peak {result['peak'] / 2**30:.2f} GiB"
            if record is not reference:
                line += f"; {record['speed_ratio']:.2f}x the steps/s of {reference['label']}"
                if record["memory_ratio"] is not None:
                    line += f", {record['memory_ratio']:.2f}x its peak memory"
            if "profile" in record:
                busy = record.get("device_busy")
                line += (f"; GPU busy {busy:.0%} of the profiled steps" if busy is not None else "")
                line += f"; top operators in {record['profile']}"
            print(line, flush=True)
    failed = [r["label"] for r in records if "error" in r]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")

if __name__ == "__main__":
    main()

"""Seconds per CycleGAN training step: `translate` (through the Lightning Trainer, as `translate fit` runs it)
against a plain-PyTorch loop that follows the classic implementation's step exactly, in the same process.

The baseline is pytorch-CycleGAN-and-pix2pix's `CycleGANModel.optimize_parameters`, written out: ResNet-9
generators and 70x70 PatchGANs (our nets, N(0, 0.02) init), forward G_A(a), G_B(G_A(a)), G_B(b), G_A(G_B(b));
generator step with D frozen on LSGAN + 10 x cycle L1 + 5 x identity L1 (two more forwards, G_A(b), G_B(a));
then D_A and D_B on real vs pooled fake (0.5 x LSGAN each); Adam 2e-4 (0.5, 0.999), fp32, batch 1.
Both see the same random uint8 images. Timing: median over the timed steps after warm-up; peak memory on
CUDA from torch.cuda.max_memory_allocated.

`--models cut fastcut` also times translate's CUT and FastCUT at the authors' defaults (one antialiased
ResNet-9, its PatchNCE heads and one antialiased PatchGAN) and reports each against translate's CycleGAN.

    python benchmarks/train_step.py                              # CPU: 64 and 128 px
    python benchmarks/train_step.py --sizes 256 --precision bf16-mixed --device cuda
    python benchmarks/train_step.py --models cut fastcut         # and CUT's and FastCUT's steps
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

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

    def gan(pred: torch.Tensor, real: bool) -> torch.Tensor:
        return mse(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def requires_grad(nets, flag):
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    times = []
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
    return times, torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0


class StepTimer(pl.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

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
                    model_name: str = "cyclegan") -> tuple[list[float], int]:
    torch.manual_seed(0)
    cfg = resolve({"model": {"name": model_name}, "data": {"crop_size": size, "load_size": size, "batch_size": 1}},
                  flags={"train.precision": precision})
    model = build_model(cfg)
    timer = StepTimer()  # with the loop's jobs as translate fit runs them (channels_last on CUDA, ...)
    trainer = pl.Trainer(accelerator=device.type, devices=1, precision=precision, max_steps=-1, max_epochs=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[timer, *loop_callbacks(cfg)], num_sanity_val_steps=0,
                         limit_val_batches=0, log_every_n_steps=50)
    loader = torch.utils.data.DataLoader(RandomPairs(size, steps), batch_size=1, num_workers=0,
                                         pin_memory=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    trainer.fit(model, train_dataloaders=loader)
    return timer.times, torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="default: 64 128 (CPU), 256 (CUDA)")
    parser.add_argument("--steps", type=int, default=8, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default="32-true", help="translate's precision: 32-true, bf16-mixed, ...")
    parser.add_argument("--models", nargs="*", default=[], choices=["cut", "fastcut"],
                        help="also time these translate models against translate's CycleGAN")
    args = parser.parse_args()
    device = torch.device(args.device)
    sizes = args.sizes or ([256] if device.type == "cuda" else [64, 128])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; ResNet-9 + PatchGAN, batch 1; median of {args.steps - args.warmup} steps after "
          f"{args.warmup} warm-up; translate precision {args.precision}, classic fp32")
    for size in sizes:
        theirs, mem_theirs = classic_steps(size, args.steps, device)
        ours, mem_ours = translate_steps(size, args.steps, device, args.precision)
        t_theirs = statistics.median(theirs[args.warmup:])
        t_ours = statistics.median(ours[args.warmup:])
        line = (f"{size:4d} px: classic {t_theirs:.3f} s/step, translate {t_ours:.3f} s/step, "
                f"ratio (steps/s, translate / classic) {t_theirs / t_ours:.2f}x")
        if mem_theirs:
            line += f"; peak memory {mem_ours / 2**30:.2f} / {mem_theirs / 2**30:.2f} GiB = {mem_ours / mem_theirs:.2f}x"
        print(line, flush=True)
        for model_name in args.models:
            times, mem = translate_steps(size, args.steps, device, args.precision, model_name)
            t = statistics.median(times[args.warmup:])
            line = f"{size:4d} px: {model_name} {t:.3f} s/step, {t_ours / t:.2f}x CycleGAN's steps/s"
            if mem_ours:
                line += f"; peak memory {mem / 2**30:.2f} GiB = {mem / mem_ours:.2f}x CycleGAN's"
            print(line, flush=True)


if __name__ == "__main__":
    main()

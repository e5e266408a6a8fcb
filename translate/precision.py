"""Which precision a generator runs in for inference, and why (convert's --precision and --backend).

auto: bf16 (or fp16 where the GPU has no bf16) autocast on CUDA; on a CPU bf16 only where the CPU computes
it natively (AVX-512 BF16 or AMX, read from /proc/cpuinfo), because emulated bf16 was measured far slower
than fp32 (benchmarks/README.md); fp32 elsewhere and for onnxruntime. On a CPU, bf16 runs the weights in
bf16 (:class:`InDtype`) instead of autocasting.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from translate.errors import TranslateError

PRECISIONS = ("auto", "32", "bf16", "16")
BACKENDS = ("torch", "onnxruntime")


def cpu_bf16_flags() -> list[str]:
    """The native-bf16 features of this CPU (AVX-512 BF16, AMX BF16) from /proc/cpuinfo; [] elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    names = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX BF16"}
    return [names[f] for f in names if f in flags]


def choose_precision(device: torch.device, precision: str = "auto", backend: str = "torch") -> tuple[str, str]:
    """("32" | "bf16" | "16", why) for convert: auto is bf16 (or fp16) autocast on CUDA, bf16 on a CPU with
    native bf16 (emulated bf16 elsewhere measured slower than fp32, benchmarks/convert.py), else fp32."""
    if precision not in PRECISIONS:
        raise TranslateError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if backend == "onnxruntime":
        if precision not in ("auto", "32"):
            raise TranslateError(f"--backend onnxruntime runs in fp32; --precision {precision} needs --backend torch")
        return "32", "fp32 (onnxruntime)"
    if precision != "auto":
        why = {"32": "fp32", "bf16": "bf16", "16": "fp16"}[precision] + " (--precision)"
        if device.type == "cpu" and precision == "bf16" and not cpu_bf16_flags():
            why += ("; this CPU has no native bf16, so it is emulated: measured up to hundreds of times slower than "
                    "fp32 (benchmarks/README.md)")
        return precision, why
    if device.type == "cuda":
        return ("bf16", "bf16 autocast (auto on this GPU)") if torch.cuda.is_bf16_supported() else (
            "16", "fp16 autocast (auto: this GPU has no bf16)")
    if device.type == "cpu":
        flags = cpu_bf16_flags()
        if flags:
            return "bf16", f"bf16 (auto: this CPU has {' and '.join(flags)}; --precision 32 for fp32)"
        return "32", "fp32 (auto: this CPU has no native bf16)"
    return "32", "fp32"


class InDtype(nn.Module):
    """`net` with its weights in `dtype`: float inputs are cast to it, outputs come back as float32. On a CPU
    this gives bf16 autocast's outputs exactly (its convolutions already run in bf16, and instance norm
    accumulates in fp32 either way) without casting every weight on every call."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net.to(dtype)
        self.dtype = dtype
        self.size_multiple = int(getattr(net, "size_multiple", 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def cast_autocast(device: torch.device, precision: str):
    if precision == "32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def autocast_for(device: torch.device, precision: str = "auto"):
    """The autocast context for `precision` on `device` (auto: bf16, else fp16, on CUDA; fp32 elsewhere)."""
    if precision not in PRECISIONS:
        raise TranslateError(f"--precision must be one of {', '.join(PRECISIONS)}, got '{precision}'")
    if precision == "auto":
        if device.type != "cuda":
            return nullcontext()
        precision = "bf16" if torch.cuda.is_bf16_supported() else "16"
    return cast_autocast(device, precision)

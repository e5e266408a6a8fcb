"""Building blocks shared by the generators and discriminators.

Paper: Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (CycleGAN); Isola et al., "Image-to-Image
Translation with Conditional Adversarial Networks", CVPR 2017 (pix2pix).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py
(`get_norm_layer`, `init_weights` with init_type="normal").

Deliberate deviations from the reference:
- Norms are chosen by name and built per call (`norm_layer(norm, channels)`) instead of
  passing a `functools.partial` around, so every net's constructor takes only primitives
  and can be rebuilt from a small dict saved beside its weights.
- With norm="none" convolutions get a bias. The reference decides `use_bias` by
  `norm_layer == InstanceNorm2d`, which leaves a norm-free conv without a bias and therefore
  without any way to shift its output; that is an accident of the check, not a design.
- `init_weights` also reaches convolutions wrapped in a parametrization (spectral norm),
  which the reference never had to handle.

The antialiased resampling layers (`BlurDownsample`, `BlurUpsample`) follow Zhang, "Making Convolutional
Networks Shift-Invariant Again", ICML 2019, as CUT's generator and discriminator use them by default
(taesungp/contrastive-unpaired-translation, models/networks.py: `Downsample`, `Upsample`): a fixed binomial
blur, so they add no parameters. Their filters are non-persistent buffers (rebuilt by the constructor, not
saved in state dicts).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

NORMS: tuple[str, ...] = ("instance", "batch", "none")
INITS: tuple[str, ...] = ("normal", "xavier")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """A fresh normalisation layer for `channels` feature maps, chosen by name."""
    if norm == "instance":
        # No affine and no running stats, as in the reference: CycleGAN normalises every
        # image by its own statistics at train and test time alike.
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm '{norm}'; choose from: {', '.join(NORMS)}")


def uses_bias(norm: str) -> bool:
    """Whether a conv followed by this norm should carry its own bias.

    BatchNorm's affine shift makes a preceding bias redundant; instance norm (affine=False)
    subtracts the per-channel mean so a bias is harmless there, and the reference keeps it.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm '{norm}'; choose from: {', '.join(NORMS)}")
    return norm != "batch"


_WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)


def _weight_tensor(m: nn.Module) -> torch.Tensor | None:
    """The tensor that actually holds `m.weight`'s trainable values."""
    if parametrize.is_parametrized(m, "weight"):
        # `m.weight` is recomputed from `original` on every access; writing to the
        # computed tensor would be lost, so initialise the stored one.
        return m.parametrizations.weight.original
    return getattr(m, "weight", None)


@torch.no_grad()
def _refresh_spectral_norm(m: nn.Module) -> None:
    """Re-seed spectral norm's power iteration after its weight was re-initialised.

    Its `u`/`v` vectors were warmed up on the constructor's weight; without this the first
    few training steps would divide by a poor estimate of the new weight's sigma.
    Uses private torch API, so it is skipped quietly if that API changes.
    """
    for p in m.parametrizations.weight:
        if hasattr(p, "_power_method") and hasattr(p, "_reshape_weight_to_matrix") and hasattr(p, "_u"):
            w = m.parametrizations.weight.original
            p._power_method(p._reshape_weight_to_matrix(w), 15)


@torch.no_grad()
def init_weights(net: nn.Module, gain: float = 0.02, kind: str = "normal") -> None:
    """The reference's init_type="normal": conv/linear weights N(0, gain), biases 0,
    BatchNorm weights N(1, gain), biases 0. Other modules keep PyTorch's defaults.
    kind="xavier" (CUT's default) draws conv/linear weights with ``xavier_normal_(w, gain)`` instead."""
    if kind not in INITS:
        raise ValueError(f"unknown init '{kind}'; choose from: {', '.join(INITS)}")
    for m in net.modules():
        if isinstance(m, _WEIGHTED):
            w = _weight_tensor(m)
            if w is not None:
                if kind == "xavier":
                    nn.init.xavier_normal_(w, gain)
                else:
                    nn.init.normal_(w, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if parametrize.is_parametrized(m, "weight"):
                _refresh_spectral_norm(m)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


def _binomial(size: int) -> torch.Tensor:
    """The normalised 2-D binomial filter of `size` taps ([1, 2, 1] x [1, 2, 1] / 16 for 3)."""
    row = torch.tensor([math.comb(size - 1, k) for k in range(size)], dtype=torch.float32)
    kernel = row[:, None] * row[None, :]
    return kernel / kernel.sum()


class BlurDownsample(nn.Module):
    """Halve H and W antialiased: reflect-pad 1, blur with the 3x3 binomial filter, keep every second pixel
    (the reference's ``Downsample(channels)``, filt_size 3): out side = in side // 2 for even sides."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", _binomial(3).expand(channels, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt.to(x.dtype), stride=2, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Double H and W antialiased: replicate-pad 1, transposed conv with the 4x4 binomial filter (x4, so a
    constant stays constant), crop to 2H x 2W (the reference's ``Upsample(channels)``, filt_size 4)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", (_binomial(4) * 4).expand(channels, 1, 4, 4).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt.to(x.dtype), stride=2, padding=2,
                               groups=x.shape[1])  # [N,C,2H+2,2W+2]
        return y[:, :, 1:-1, 1:-1]  # [N,C,2H,2W]

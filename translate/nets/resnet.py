"""ResNet-based generator of CycleGAN.

Paper: Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (architecture after Johnson et al., 2016).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py
(`ResnetGenerator`, `ResnetBlock`). Layer order, kernel sizes, bias rules and therefore
parameter counts match: 11,378,179 for n_blocks=9 ("resnet_9blocks"), 7,837,699 for
n_blocks=6 ("resnet_6blocks"), at ngf=64 with instance norm.

`antialias` / `antialias_up` (off by default) give CUT's variant (taesungp/contrastive-unpaired-translation,
models/networks.py, on unless --no_antialias / --no_antialias_up): each stride-2 conv becomes a stride-1
conv, norm, ReLU and a blur-downsample; each transposed conv a blur-upsample followed by a 3x3 conv. Same
weights shapes, so the same parameter counts; the module indices shift (layer lists index ``model``).

Deliberate deviations:
- Constructor takes primitives (norm by name, `dropout` bool, `padding` name).
- norm="none" keeps conv biases (see common.py); the reference drops them.
"""

from __future__ import annotations

import torch
from torch import nn

from translate.nets.common import BlurDownsample, BlurUpsample, norm_layer, uses_bias

PADDINGS: tuple[str, ...] = ("reflect", "replicate", "zero")


class ResnetBlock(nn.Module):
    """conv-norm-relu-conv-norm with an identity skip; no activation after the add."""

    def __init__(self, channels: int, norm: str = "instance", dropout: bool = False, padding: str = "reflect") -> None:
        super().__init__()
        bias = uses_bias(norm)
        layers: list[nn.Module] = []
        for second in (False, True):
            conv_pad = 0
            if padding == "reflect":
                layers.append(nn.ReflectionPad2d(1))
            elif padding == "replicate":
                layers.append(nn.ReplicationPad2d(1))
            elif padding == "zero":
                conv_pad = 1
            else:
                raise ValueError(f"unknown padding '{padding}'; choose from: {', '.join(PADDINGS)}")
            layers += [
                nn.Conv2d(channels, channels, kernel_size=3, padding=conv_pad, bias=bias),
                norm_layer(norm, channels),
            ]
            if not second:
                layers.append(nn.ReLU(True))
                if dropout:
                    layers.append(nn.Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)  # [N,C,H,W]


class ResnetGenerator(nn.Module):
    """c7s1-ngf, d(2ngf), d(4ngf), n_blocks x R(4ngf), u(2ngf), u(ngf), c7s1-out, tanh.

    Input H and W must be multiples of `size_multiple` for the output to have the input's
    size (two stride-2 downsamplings, undone by transposed convs with output_padding=1).
    """

    size_multiple: int = 4

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        norm: str = "instance",
        dropout: bool = False,
        padding: str = "reflect",
        antialias: bool = False,
        antialias_up: bool = False,
    ) -> None:
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if min(in_channels, out_channels, ngf) < 1:
            raise ValueError("in_channels, out_channels and ngf must be positive")
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding '{padding}'; choose from: {', '.join(PADDINGS)}")
        bias = uses_bias(norm)

        # The 7x7 stem and head always reflect-pad, as in the reference; `padding` only
        # governs the residual blocks.
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, padding=0, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]  # [N,ngf,H,W]
        for i in range(2):
            mult = 2**i
            stride = 1 if antialias else 2  # antialiased: the blur below downsamples
            layers += [
                nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=stride, padding=1, bias=bias),
                norm_layer(norm, ngf * mult * 2),
                nn.ReLU(True),
            ]
            if antialias:
                layers.append(BlurDownsample(ngf * mult * 2))
            # [N,4ngf,H/4,W/4] after both
        layers += [ResnetBlock(ngf * 4, norm=norm, dropout=dropout, padding=padding) for _ in range(n_blocks)]
        for i in range(2):
            mult = 2 ** (2 - i)
            if antialias_up:
                layers += [BlurUpsample(ngf * mult), nn.Conv2d(ngf * mult, ngf * mult // 2, kernel_size=3, padding=1,
                                                               bias=bias)]
            else:
                layers.append(nn.ConvTranspose2d(
                    ngf * mult, ngf * mult // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias))
            layers += [
                norm_layer(norm, ngf * mult // 2),
                nn.ReLU(True),
            ]  # [N,ngf,H,W] after both
        layers += [
            nn.ReflectionPad2d(3),
            nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0),
            nn.Tanh(),
        ]  # [N,out,H,W] in [-1,1]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

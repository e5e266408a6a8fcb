"""U-Net generator with skip connections.

Paper: Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017 (pix2pix); offered as an alternative generator in Zhu et al., ICCV 2017 (CycleGAN).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py
(`UnetGenerator`, `UnetSkipConnectionBlock`), built recursively from the innermost block
outwards exactly as there. "unet_256" is num_downs=8, "unet_128" num_downs=7.
Parameter count of unet_256 at ngf=64: 54,413,955 with batch norm (the reference logs
"54.414 M"), 54,409,603 with instance norm.

Deliberate deviations:
- Default norm is "instance", the CycleGAN default (--norm instance); the reference's
  class default is BatchNorm, which pix2pix uses.
- norm="none" keeps conv biases (see common.py); the reference drops them.
- num_downs < 5 is rejected: the reference silently builds 5 levels anyway, which would
  make `size_multiple` wrong.
Kept on purpose, so that state dicts are interchangeable with the reference (same module
indices too): the outermost down-conv follows the norm's bias rule though no norm follows
it (no bias with batch norm), and the inplace LeakyReLU rectifies the skip tensor.
"""

from __future__ import annotations

import torch
from torch import nn

from translate.nets.common import norm_layer, uses_bias


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down -> submodule -> up, with the input concatenated to the output
    on every level but the outermost."""

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        bias = uses_bias(norm)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)

        if outermost:
            assert submodule is not None
            # Output layer: full bias and tanh, no norm, so the image range is free.
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            model: list[nn.Module] = [downconv, submodule, nn.ReLU(True), upconv, nn.Tanh()]
        elif innermost:
            # No norm after the innermost down-conv: its output is 1x1 at the design size,
            # where instance norm would zero it and batch norm needs batch > 1.
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            model = [nn.LeakyReLU(0.2, True), downconv, nn.ReLU(True), upconv, norm_layer(norm, outer_nc)]
        else:
            assert submodule is not None
            # inner_nc * 2: the submodule returns its input concatenated with its output.
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            model = [
                nn.LeakyReLU(0.2, True),
                downconv,
                norm_layer(norm, inner_nc),
                submodule,
                nn.ReLU(True),
                upconv,
                norm_layer(norm, outer_nc),
            ]
            if dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        # The first LeakyReLU is inplace, so by the time torch.cat reads x it has been
        # rectified: the skip carries LeakyReLU(x). Kept as in the reference, whose trained
        # weights assume it.
        return torch.cat([x, self.model(x)], 1)  # [N,outer_nc*2,H,W]


class UnetGenerator(nn.Module):
    """U-Net with `num_downs` stride-2 levels; H and W must be multiples of `size_multiple`."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be >= 5, got {num_downs}")
        if min(in_channels, out_channels, ngf) < 1:
            raise ValueError("in_channels, out_channels and ngf must be positive")
        uses_bias(norm)  # validates the name before any layer is built
        self.size_multiple: int = 2**num_downs

        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True, norm=norm
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # [N,out,H,W] in [-1,1]

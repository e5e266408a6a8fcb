"""PatchGAN discriminator: classifies overlapping patches as real or fake.

Paper: Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks",
CVPR 2017 (pix2pix), used as the 70x70 PatchGAN of Zhu et al., ICCV 2017 (CycleGAN).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py
(`NLayerDiscriminator`). Same layers, module indices and bias rules: 2,764,737 parameters
at n_layers=3, ndf=64, instance norm; a 256 px input gives a 30x30 logit map.

Deliberate deviations:
- Optional spectral norm on every conv (Miyato et al., ICLR 2018), off by default; the
  norm layers stay as configured, so hinge-loss setups pass norm="none" themselves.
- `forward_features` exposes the activations for feature-matching losses.
- `antialias` (off by default) is CUT's variant (taesungp/contrastive-unpaired-translation, on unless
  --no_antialias): each stride-2 conv becomes a stride-1 conv, [norm,] LeakyReLU and a blur-downsample.
  Same parameters and the same map sizes.
- norm="none" keeps conv biases (see common.py); the reference drops them.
Outputs raw logits, as the reference does (its GANLoss applies the sigmoid / LSGAN target).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.nets.common import BlurDownsample, norm_layer, uses_bias


class PatchDiscriminator(nn.Module):
    """C64-C128-C256-C512 (n_layers=3) then a 1-channel conv; receptive field 70 px."""

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        if min(in_channels, ndf) < 1:
            raise ValueError("in_channels and ndf must be positive")
        bias = uses_bias(norm)

        def conv(cin: int, cout: int, stride: int, has_bias: bool) -> nn.Module:
            c = nn.Conv2d(cin, cout, kernel_size=4, stride=stride, padding=1, bias=has_bias)
            return _spectral_norm(c) if spectral_norm else c

        # First layer has no norm: normalising raw pixels' first features would discard
        # the colour statistics the discriminator needs.
        down = 1 if antialias else 2
        layers: list[nn.Module] = [conv(in_channels, ndf, down, True), nn.LeakyReLU(0.2, True)]  # [N,ndf,H/2,W/2]
        if antialias:
            layers.append(BlurDownsample(ndf))
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [conv(ndf * prev, ndf * mult, down, bias), norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
            if antialias:
                layers.append(BlurDownsample(ndf * mult))
        prev, mult = mult, min(2**n_layers, 8)
        layers += [conv(ndf * prev, ndf * mult, 1, bias), norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(conv(ndf * mult, 1, 1, True))  # [N,1,h,w] logits
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # [N,1,h,w]

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and the n_layers+1 activations after each LeakyReLU, shallow to deep."""
        feats: list[torch.Tensor] = []
        for layer in self.model:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                # Safe to keep despite inplace activations: the next layer is a conv (or
                # a blur), which never writes into its input.
                feats.append(x)
        return x, feats

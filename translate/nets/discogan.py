"""DiscoGAN's 64x64 encoder-decoder generator and its feature-exposing discriminator.

Paper: Kim, Cha, Kim, Lee, Kim, "Learning to Discover Cross-Domain Relations with Generative Adversarial
Networks", ICML 2017, Sec. 4 / Fig. 2 and the authors' PyTorch code (SKTBrain/DiscoGAN, discogan/model.py,
`Generator` and `Discriminator`).

Generator (ngf=64): Conv4 s2 p1 3->64 LReLU(0.2); 64->128 BN LReLU; 128->256 BN LReLU; 256->512 BN LReLU
(a 4x4 bottleneck at 64 px); ConvT4 s2 p1 512->256 BN ReLU; 256->128 BN ReLU; 128->64 BN ReLU; 64->3.
No conv has a bias: 5,513,856 parameters (the authors' 5.514 M).
Discriminator (ndf=64): Conv4 s2 p1 3->64 LReLU; 64->128 BN LReLU (f1); 128->256 BN LReLU (f2);
256->512 BN LReLU (f3); Conv4 s1 p0 512->1, one logit per 64x64 image. 2,765,568 parameters (2.766 M).
`forward_features` returns the logits and [f1, f2, f3] (128x16x16, 256x8x8, 512x4x4) for feature matching.

Deviations from the authors' code, all deliberate:
- Output tanh in [-1, 1] instead of sigmoid in [0, 1]: every pipeline of this package works in [-1, 1].
- The discriminator returns raw logits; the authors apply a sigmoid and then BCELoss. The "vanilla"
  objective uses BCE-with-logits, the same loss without the sigmoid's saturation in float32.
- The encoder-decoder is fully convolutional, so sides that are multiples of 16 work (the generator's
  size multiple); the discriminator gives a logit map for inputs larger than 64 (mean-reduced by the
  objectives) and refuses inputs smaller than 64 with a clear error.
- `norm` ("batch" as published, "instance" or "none") and `spectral_norm` on D's convs (hinge objective)
  are options; the authors use batch norm and no spectral norm. With norm="none" convs get a bias
  (see common.py).
- Weights keep PyTorch's default initialisation, as the authors' code does (it has no custom init);
  the model asks `add_net` for init="default".
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from translate.nets.common import norm_layer, uses_bias


class DiscoGenerator(nn.Module):
    """Encoder (4 stride-2 convs) and decoder (4 stride-2 transposed convs), tanh output."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        if min(in_channels, out_channels, ngf) < 1:
            raise ValueError("in_channels, out_channels and ngf must be positive")
        bias = uses_bias(norm)
        self.size_multiple = 16
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ngf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for mult in (1, 2, 4):  # 64 -> 128 -> 256 -> 512 channels; 32 -> 16 -> 8 -> 4 px at 64 input
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 4, 2, 1, bias=bias), norm_layer(norm, ngf * mult * 2),
                       nn.LeakyReLU(0.2, True)]
        for mult in (8, 4, 2):  # 512 -> 256 -> 128 -> 64 channels; 8 -> 16 -> 32 px
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 4, 2, 1, bias=bias),
                       norm_layer(norm, ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf, out_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # [N,3,H,W]


class DiscoDiscriminator(nn.Module):
    """C64-C128-C256-C512, then a 4x4 valid conv to one logit per 64x64 image."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        if min(in_channels, ndf) < 1:
            raise ValueError("in_channels and ndf must be positive")
        bias = uses_bias(norm)

        def conv(cin: int, cout: int, stride: int, padding: int, has_bias: bool) -> nn.Module:
            c = nn.Conv2d(cin, cout, 4, stride, padding, bias=has_bias)
            return _spectral_norm(c) if spectral_norm else c

        self.stem = nn.Sequential(conv(in_channels, ndf, 2, 1, False), nn.LeakyReLU(0.2, True))
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(ndf * m, ndf * m * 2, 2, 1, bias), norm_layer(norm, ndf * m * 2), nn.LeakyReLU(0.2, True))
            for m in (1, 2, 4))
        self.head = conv(ndf * 8, 1, 1, 0, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [N,1,h,w] (1x1 at 64 px) and the activations f1, f2, f3 after blocks 1-3."""
        if min(x.shape[-2:]) < 64:
            raise ValueError(f"the DiscoGAN discriminator needs images of at least 64x64, got "
                             f"{x.shape[-2]}x{x.shape[-1]}")
        x = self.stem(x)
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return self.head(x), feats

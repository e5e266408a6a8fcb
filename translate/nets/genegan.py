"""GeneGAN nets (Zhou, Xiao, Yang, Feng, He, He: "GeneGAN: Learning Object Transfiguration and Attribute
Subspace from Unpaired Data", BMVC 2017), matching the authors' TensorFlow code (Prinsphield/GeneGAN,
model.py: ``splitter``, ``joiner``, ``discriminator``).

- :class:`GeneGenerator` holds the encoder ("splitter") and the decoder ("joiner"), shared by both domains.
  Encoder: Conv4 s2 (SAME = padding 1) without bias: 3 -> ngf LReLU 0.2; ngf -> 2ngf BN LReLU; 2ngf -> 4ngf
  BN LReLU: [N, 4ngf, H/8, W/8] (512 x 8 x 8 at 64 px with ngf 128). The last ``object_share`` (25 %) of the
  channels are the object part, the rest the background part. Decoder: concat -> ConvT4 s2 4ngf BN ReLU ->
  ConvT4 s2 2ngf BN ReLU -> ConvT4 s2 3 + a learned per-channel bias -> tanh.
- :class:`GeneDiscriminator`: Conv4 s2: 3 -> ndf LReLU; -> 2ndf BN LReLU; -> 4ndf BN LReLU; -> 4ndf BN LReLU;
  flatten -> linear 1 (a raw score per image). 6,832,641 parameters at 64 px with ndf 128.

``norm`` ("batch" as published, "instance" or "none"; without batch norm the convs get a bias) is an
option. Deviations: images in [-1, 1] (the authors scale [0, 255] to [0, 1] inside the nets and the joiner's tanh
back to [0, 255]); the same maps up to that affine change. ``forward`` of the generator is the
reconstruction Dec(Enc(x)), so the net also serves where a plain image-to-image generator is expected.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from translate.nets.common import norm_layer, uses_bias


def _down(cin: int, cout: int, norm: str | None) -> list[nn.Module]:
    """Conv4 s2 (+ norm) + LReLU 0.2; `norm` None: the first layer, without norm and bias."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=norm is not None and uses_bias(norm))]
    if norm is not None:
        layers.append(norm_layer(norm, cout))
    return layers + [nn.LeakyReLU(0.2, inplace=True)]


class GeneGenerator(nn.Module):
    """Encoder (``split``) and decoder (``join``) of GeneGAN; ``forward(x)`` reconstructs x."""

    size_multiple = 8

    def __init__(self, ngf: int = 128, object_share: float = 0.25, norm: str = "batch") -> None:
        super().__init__()
        channels = 4 * ngf
        self.object_channels = max(1, round(channels * object_share))
        if not 0 < self.object_channels < channels:
            raise ValueError(f"object_share must leave both parts non-empty, got {object_share}")
        bias = uses_bias(norm)
        self.encoder = nn.Sequential(*_down(3, ngf, None), *_down(ngf, 2 * ngf, norm), *_down(2 * ngf, channels, norm))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=bias), norm_layer(norm, channels),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(channels, 2 * ngf, 4, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * ngf),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * ngf, 3, 4, stride=2, padding=1, bias=True), nn.Tanh())

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Image [N,3,H,W] -> (background [N,C-k,H/8,W/8], object [N,k,H/8,W/8])."""
        code = self.encoder(x)
        return code[:, :-self.object_channels], code[:, -self.object_channels:]

    def join(self, background: Tensor, obj: Tensor) -> Tensor:
        return self.decoder(torch.cat([background, obj], dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.join(*self.split(x))


class GeneDiscriminator(nn.Module):
    """[N,3,S,S] -> [N,1,1,1] scores; `image_size` fixes the final linear layer's input (S/16 squared)."""

    def __init__(self, ndf: int = 128, image_size: int = 64, norm: str = "batch", spectral_norm: bool = False) -> None:
        super().__init__()
        if image_size % 16 or image_size < 16:
            raise ValueError(f"the GeneGAN discriminator needs an image size that is a multiple of 16, got {image_size}")
        layers = [nn.Conv2d(3, ndf, 4, stride=2, padding=1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                  *_down(ndf, 2 * ndf, norm), *_down(2 * ndf, 4 * ndf, norm), *_down(4 * ndf, 4 * ndf, norm)]
        linear = nn.Linear(4 * ndf * (image_size // 16) ** 2, 1)
        if spectral_norm:
            from torch.nn.utils.parametrizations import spectral_norm as sn

            layers = [sn(m) if isinstance(m, nn.Conv2d) else m for m in layers]
            linear = sn(linear)
        self.features = nn.Sequential(*layers)
        self.head = linear

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1)).view(-1, 1, 1, 1)  # a 1x1 score map, as the other Ds

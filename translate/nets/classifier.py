"""A small domain classifier (A vs B) for offline evaluation; not part of any published recipe.

Four 3x3 stride-2 convolutions with leaky ReLU (64 -> 4 px), global average pooling to `4 * width`
features, and one linear logit (> 0: domain B). `translate evaluate` trains it on a dataset's real
training images in seconds on a CPU: its logit says whether a translation looks like the target domain,
and its pooled features stand in for Inception features when no pretrained weights can be had.
"""

from __future__ import annotations

import torch
from torch import nn


class DomainClassifier(nn.Module):
    """[N,3,size,size] images in [-1, 1] -> [N] logits (A < 0 < B); ``features`` gives [N, 4*width]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            channels = out
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)
        self.num_features = channels
        # per-feature statistics over the training images, set after training (FID/KID on a unit scale)
        self.register_buffer("feature_mean", torch.zeros(channels))
        self.register_buffer("feature_std", torch.ones(channels))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # [N, 4*width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # [N]

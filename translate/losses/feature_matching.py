"""Feature matching on discriminator features (Salimans et al. 2016; DiscoGAN's authors' code).

sum over layers l of mean((E_batch f_l(real) - E_batch f_l(fake))^2): the generator matches the batch
statistics of the discriminator's intermediate features instead of (or besides) fooling its output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def feature_matching(real_features: Sequence[Tensor], fake_features: Sequence[Tensor]) -> Tensor:
    if len(real_features) != len(fake_features):
        raise ValueError(f"{len(real_features)} real vs {len(fake_features)} fake feature maps")
    terms = [((r.detach().float().mean(0) - f.float().mean(0)) ** 2).mean()
             for r, f in zip(real_features, fake_features)]
    return torch.stack(terms).sum()

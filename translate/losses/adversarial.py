"""Adversarial objectives: tensors in, tensors out.

Each objective defines the discriminator loss over a discriminator callable and real/fake images (so an
objective that needs D elsewhere, like WGAN-GP on interpolates, can carry its own regularizer), and the
generator loss over D's logits on fakes. Logits are cast to fp32 before the loss so mixed precision only
affects the networks.

- ``lsgan``: Mao et al. 2017, least squares with targets 1 (real) / 0 (fake); the classic CycleGAN default.
  D loss = 0.5 * (MSE(D(real), 1) + MSE(D(fake), 0)), as in Zhu et al. 2017 / the classic code.
- ``vanilla``: Goodfellow et al. 2014 with the non-saturating generator loss -log D(G(z)), on logits
  (BCE with logits); D loss halved like the classic code's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Disc = Callable[[Tensor], Tensor]


def real_fake_logits(disc: Disc, real: Tensor, fake: Tensor, batched: bool) -> tuple[Tensor, Tensor]:
    """D on real and fake; one call on the concatenation when D has no batch coupling (same result)."""
    if batched and real.shape[1:] == fake.shape[1:]:
        logits = disc(torch.cat([real, fake]))
        return logits[: real.shape[0]].float(), logits[real.shape[0] :].float()
    return disc(real).float(), disc(fake).float()


class AdversarialLoss(nn.Module):
    """Base: subclasses give the per-logit targets of D and G. What an objective asks of the recipe (critic
    steps, pool, spectral norm, optimizer) is in recipes/objectives.py, where the resolve pass reads it."""

    def after_discriminator_step(self, discriminators: list[nn.Module]) -> None:
        """Called after each discriminator optimizer step (weight clipping lives here)."""

    def d_loss_from_logits(self, real: Tensor, fake: Tensor) -> Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        raise NotImplementedError

    def discriminator_loss(self, disc: Disc, real: Tensor, fake: Tensor, batched: bool = False) -> dict[str, Tensor]:
        """Terms of the discriminator loss; ``"loss"`` is the one to minimise."""
        real_logits, fake_logits = real_fake_logits(disc, real, fake, batched)
        return {"loss": self.d_loss_from_logits(real_logits, fake_logits)}


class LSGAN(AdversarialLoss):
    def d_loss_from_logits(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake)))

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        fake_logits = fake_logits.float()
        return F.mse_loss(fake_logits, torch.ones_like(fake_logits))


class Vanilla(AdversarialLoss):
    def d_loss_from_logits(self, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                      + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        fake_logits = fake_logits.float()
        return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))

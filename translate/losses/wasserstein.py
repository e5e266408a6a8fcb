"""Wasserstein critics and the hinge loss: objectives whose discriminator is a critic, not a classifier.

- ``wgan-gp``: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Alg. 1. Critic loss
  E[D(fake)] - E[D(real)] + lambda * E[(||grad_x D(x_hat)||_2 - 1)^2] on per-sample random interpolates
  x_hat = e*real + (1-e)*fake, lambda = 10; generator loss -E[D(fake)]. The penalty is part of the
  loss (it cannot be forgotten, unlike the classic CycleGAN code's unused ``cal_gradient_penalty``) and is
  computed with autocast off, in fp32: a grad scaler scales only the outer loss, so an fp16 inner gradient
  could underflow. 5 critic steps per generator step and no image pool (recipes/objectives.py).
- ``wgan-clip``: Arjovsky et al. 2017, Alg. 1: the same critic loss without a penalty; critic weights are
  clipped to [-c, c] (c = 0.01) after every critic step; RMSprop (lr 5e-5 in the paper); 5 critic steps.
- ``hinge``: Miyato et al. 2018 / Lim & Ye 2017: D loss E[relu(1 - D(real))] + E[relu(1 + D(fake))],
  G loss -E[D(fake)], with spectral normalization on every discriminator conv (recipes/objectives.py).

For a PatchGAN the critic value of an image is the mean of its patch outputs, so the penalty constrains
the gradient of that per-image scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from translate.losses.adversarial import AdversarialLoss, Disc, real_fake_logits


def gradient_penalty(disc: Disc, real: Tensor, fake: Tensor) -> Tensor:
    """E[(||grad D(x_hat)||_2 - 1)^2] over random per-sample interpolates, in fp32 with autocast off."""
    real, fake = real.detach().float(), fake.detach().float()
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)  # [N,1,1,1]
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        scores = disc(x_hat).float().flatten(1).mean(1)  # [N] one critic value per image
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


class Wasserstein(AdversarialLoss):
    """Critic loss E[D(fake)] - E[D(real)] (an estimate of -W), generator loss -E[D(fake)]."""

    def d_loss_from_logits(self, real: Tensor, fake: Tensor) -> Tensor:
        return fake.mean() - real.mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.float().mean()


class WGANGP(Wasserstein):
    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__()
        self.gp_weight = gp_weight

    def discriminator_loss(self, disc: Disc, real: Tensor, fake: Tensor, batched: bool = False) -> dict[str, Tensor]:
        real_logits, fake_logits = real_fake_logits(disc, real, fake, batched)
        critic = self.d_loss_from_logits(real_logits, fake_logits)
        gp = gradient_penalty(disc, real, fake)
        return {"loss": critic + self.gp_weight * gp, "wdist": -critic.detach(), "gp": gp.detach()}


class WGANClip(Wasserstein):
    def __init__(self, clip_value: float = 0.01) -> None:
        super().__init__()
        self.clip_value = clip_value

    @torch.no_grad()
    def after_discriminator_step(self, discriminators: list[nn.Module]) -> None:
        for disc in discriminators:
            for p in disc.parameters():
                p.clamp_(-self.clip_value, self.clip_value)


class Hinge(AdversarialLoss):
    def d_loss_from_logits(self, real: Tensor, fake: Tensor) -> Tensor:
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()

    def generator_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.float().mean()

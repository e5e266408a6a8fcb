"""CycleGAN (Zhu, Park, Isola, Efros: "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017, Sec. 3-4 and Appendix 7), matching the classic PyTorch implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, models/cycle_gan_model.py).

Per batch: generators first with both discriminators frozen, loss
    adv(D_B(G_AB(a))) + adv(D_A(G_BA(b))) + l_cyc * [rec(G_BA(G_AB(a)), a) + rec(G_AB(G_BA(b)), b)]
                      + l_idt * [rec(G_AB(b), b) + rec(G_BA(a), a)];
then both discriminators on real images and on fakes drawn through a 50-image pool per direction.
Adam(2e-4, (0.5, 0.999)), one optimizer for both generators and one for both discriminators; the LR is
constant for n_epochs, then decays linearly (models/base.py).

Deliberate differences, none of which changes the maths:
- ``lambda_identity`` is an absolute weight (5.0), not a fraction of ``lambda_cycle`` (0.5).
- Work on the same net is batched: G_AB runs once on [a, b] (translation and identity) and once on G_BA(b);
  D runs once on [real, pooled fake]. With instance norm (the default) this is the same per-sample
  computation; nets with batch norm fall back to separate calls (``run_batched``).
- The adversarial objective comes from the loss registry (``losses.adversarial``); LSGAN by default. It
  also decides what the recipe needs (filled in by the resolve pass, recipes/objectives.py): spectral norm
  in D (hinge), critic steps per generator step and no image pool (WGAN-GP, WGAN-clip), RMSprop and weight
  clipping (WGAN-clip). With n_critic > 1 the generators step on every n_critic-th batch and the
  discriminators on every batch.
- Off in the recipe, switches of our own: ``train.ema`` (outputs from the generators' moving averages) and
  ``train.augment`` (DiffAugment on the images of every D call, in the G step too); see models/base.py.

Settings and their defaults: recipes/cyclegan.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from translate.config import Config
from translate.models.base import TwoWayModel, run_batched
from translate.models.image_pool import ImagePool


class CycleGAN(TwoWayModel):
    name = "cyclegan"

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        seed = self.cfg.train.seed
        self.pool_a = ImagePool(self.cfg.model.pool_size, seed=seed * 2 + 1)  # fakes of domain A, for d_a
        self.pool_b = ImagePool(self.cfg.model.pool_size, seed=seed * 2 + 2)  # fakes of domain B, for d_b

    def generator_terms(self, real_a: Tensor, real_b: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Loss terms of both generators, and the fakes for the discriminator step."""
        w = self.cfg.losses
        identity = w.lambda_identity > 0
        if identity:
            fake_b, idt_b = run_batched(self.g_ab, real_a, real_b)  # [N,3,H,W] each
            fake_a, idt_a = run_batched(self.g_ba, real_b, real_a)
        else:
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        terms = {
            "adv_ab": self.adversarial.generator_loss(self.d_b(*self.augmented(fake_b))),
            "adv_ba": self.adversarial.generator_loss(self.d_a(*self.augmented(fake_a))),
            "cycle_a": w.lambda_cycle * self.reconstruction(rec_a.float(), real_a.float()),
            "cycle_b": w.lambda_cycle * self.reconstruction(rec_b.float(), real_b.float()),
        }
        if identity:
            terms["idt_ab"] = w.lambda_identity * self.reconstruction(idt_b.float(), real_b.float())
            terms["idt_ba"] = w.lambda_identity * self.reconstruction(idt_a.float(), real_a.float())
        return terms, fake_a, fake_b

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()

        # 1. Generators, discriminators frozen: every batch, or every n_critic-th for WGAN critics.
        if self.batches_done % self.n_critic == 0:
            with self.toggled_optimizer(opt_g):
                g_terms, fake_a, fake_b = self.generator_terms(real_a, real_b)
                self.step_generators(opt_g, g_terms)
        else:
            with torch.no_grad():
                fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)

        # 2. Discriminators on real images and on (pooled) fakes.
        self.step_discriminators(opt_d, real_a, self.pool_a.query(fake_a), real_b, self.pool_b.query(fake_b))

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state_dict(), "pool_b": self.pool_b.state_dict()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_a.load_state_dict(state["pool_a"])
        self.pool_b.load_state_dict(state["pool_b"])

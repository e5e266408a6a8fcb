"""DiscoGAN (Kim, Cha, Kim, Lee, Kim: "Learning to Discover Cross-Domain Relations with Generative
Adversarial Networks", ICML 2017), matching the authors' PyTorch code (SKTBrain/DiscoGAN,
discogan/image_translation.py and model.py).

Nets: two 64x64 encoder-decoder generators and two discriminators that expose their features
(nets/discogan.py). Per direction, for G_AB (and symmetrically G_BA):
    L_GAB = (1 - rate) * [(1 - fm_weight) * adv(D_B(G_AB(a))) + fm_weight * FM(D_B; b, G_AB(a))]
            + rate * rec(G_BA(G_AB(a)), a)
with fm_weight 0.9, rec = MSE, adv the non-saturating GAN, FM = sum over D's three inner feature maps of
mean((E_batch f(real) - E_batch f(fake))^2), and rate = 0.01 for the first 10,000 iterations, then 0.5.
The generators minimise L_GAB + L_GBA; the discriminators 0.5 * (BCE(real, 1) + BCE(fake, 0)) each.
Updates alternate on fresh batches: iteration i (0-based) steps only D when i % 3 == 0, otherwise only G
(G:D = 2:1). Adam(2e-4, (0.5, 0.999), weight decay 1e-5) for both; constant learning rate; batch 64;
images resized straight to 64x64 (no crop, no flip); PyTorch's default weight init.

Deviations from the authors' code, all deliberate:
- [-1, 1] images with tanh and raw-logit discriminators (BCE with logits), not [0, 1], sigmoid and BCELoss;
  the same losses.
- The adversarial objective comes from the registry (``losses.adversarial``). With a WGAN critic
  (n_critic 5) the cycle is 5 discriminator batches, then ``losses.g_steps`` generator batches (default 1
  for critics, 2 otherwise: the authors' 1:2 cycle is n_critic 1, g_steps 2).
- Data order: domain A is visited in a seeded permutation and B drawn at random per sample, an epoch being
  max(|A|, |B|) samples (the sampler every model shares); the authors shuffle both lists and stop at
  min(|A|, |B|) per epoch.
- On discriminator batches the fakes are made under no_grad; the authors build them with a graph and only
  step the discriminators' optimizer, which gives the same update.
- ``losses.lambda_identity`` (0 in the recipe, absolute weight) adds CycleGAN's identity term,
  reconstruction(G_AB(b), b) + reconstruction(G_BA(a), a). DiscoGAN only asks for a bijection between the
  domains, and on the built-in stripes it often finds one that also swaps colours or inverts the
  background; the demo preset uses a small identity weight to keep them (configs/discogan-stripes.yaml).
- Nets with batch norm see real and fake images in separate calls, as in the authors' code (batch
  statistics per call); the discriminators with ``forward_features`` can be used (recipes/discogan.py).
- Off in the recipe, switches of our own: ``train.ema`` (outputs from the generators' moving averages) and
  ``train.augment`` (DiffAugment on the images of every D call; feature matching compares the features of
  real and fake images under the same transform); see models/base.py.

Settings and their defaults: recipes/discogan.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from translate.config import Config
from translate.losses.feature_matching import feature_matching
from translate.models.base import TwoWayModel


class DiscoGAN(TwoWayModel):
    name = "discogan"

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        self.g_steps = self.cfg.losses.g_steps  # resolved: 2, or 1 after a critic's n_critic batches

    # ----------------------------------------------------------------- schedule

    def recon_rate(self, iteration: int) -> float:
        """Weight of reconstruction against the adversarial mix at 0-based `iteration` (all batches count)."""
        w = self.cfg.losses
        return w.recon_rate_start if iteration < w.recon_curriculum else w.recon_rate

    def is_discriminator_batch(self, iteration: int) -> bool:
        """The authors' alternation: n_critic D batches, then g_steps G batches (i % 3 == 0 -> D by default)."""
        return iteration % (self.n_critic + self.g_steps) < self.n_critic

    # ----------------------------------------------------------------- losses

    def generator_terms(self, real_a: Tensor, real_b: Tensor, rate: float) -> dict[str, Tensor]:
        w = self.cfg.losses
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        rec_a, rec_b = self.g_ba(fake_b), self.g_ab(fake_a)
        terms: dict[str, Tensor] = {}
        for direction, disc, real, fake, original, rec in (("ab", self.d_b, real_b, fake_b, real_a, rec_a),
                                                           ("ba", self.d_a, real_a, fake_a, real_b, rec_b)):
            real, fake = self.augmented(real, fake)  # feature matching compares alike-augmented images
            with torch.no_grad():
                _, real_feats = disc.forward_features(real)
            fake_logits, fake_feats = disc.forward_features(fake)
            adv = self.adversarial.generator_loss(fake_logits)
            fm = feature_matching(real_feats, fake_feats)
            recon = self.reconstruction(rec.float(), original.float())
            terms[f"adv_{direction}"] = (1 - rate) * (1 - w.fm_weight) * adv
            terms[f"fm_{direction}"] = (1 - rate) * w.fm_weight * fm
            terms[f"recon_{direction[0]}"] = rate * recon
        if w.lambda_identity > 0:  # optional, not the authors': G_AB(b) = b and G_BA(a) = a (CycleGAN's term)
            idt_b, idt_a = self.g_ab(real_b), self.g_ba(real_a)
            terms["idt_ab"] = w.lambda_identity * self.reconstruction(idt_b.float(), real_b.float())
            terms["idt_ba"] = w.lambda_identity * self.reconstruction(idt_a.float(), real_a.float())
        return terms

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        iteration = self.batches_done - 1  # the authors' `iters`, 0 on the first batch

        if not self.is_discriminator_batch(iteration):
            rate = self.recon_rate(iteration)
            with self.toggled_optimizer(opt_g):
                self.step_generators(opt_g, self.generator_terms(real_a, real_b, rate))
            self.log("recon_rate", rate, batch_size=real_a.shape[0])
            return
        with torch.no_grad():
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        self.step_discriminators(opt_d, real_a, fake_a, real_b, fake_b)

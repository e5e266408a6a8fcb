"""GeneGAN (Zhou et al., "GeneGAN: Learning Object Transfiguration and Attribute Subspace from Unpaired
Data", BMVC 2017), matching the authors' TensorFlow code (Prinsphield/GeneGAN, model.py and train.py).

Domain A holds images with the attribute ("Au": background A, object u), domain B images without it ("B0").
One encoder splits an image into (background, object) parts; one decoder joins them (nets/genegan.py).
Per generator step, with (A, u) = split(Au) and (B, e) = split(B0):
    Au' = join(A, u), B0' = join(B, 0)        reconstructions       lambda_recon * (|Au - Au'| + |B0 - B0'|)
    Bu = join(B, u), A0 = join(A, 0)          crossbreeds (children)
    nulling        lambda_nulling * mean |e|                      (B's object part is driven to zero)
    parallelogram  lambda_parallelogram * mean |Au + B0 - Bu - A0|
    adversarial    d_a judges "has the object" (real Au vs Bu), d_b "has none" (real B0 vs A0)
    reproduction   lambda_reproduction * (|join(bg(A0), obj(Bu)) - Au| + |join(bg(Bu), 0) - B0|), off (0) by
                   default: it is not in the authors' code; it recovers the parents from the children.
Weights on our [-1, 1] scale equal the authors' on theirs: recon 0.5 each (their /255 on [0, 255]),
parallelogram 1.275 (their 0.01 on [0, 255]), nulling 1. Their objective: WGAN with weight clipping at
0.01, RMSprop (lr 5e-5, decay 0.8) for G and D, batch 64; the critic takes 100 steps at the first and at
every 500th generator step, otherwise 1 (``losses.critic_burst``/``critic_burst_every``/``n_critic``).

Deviations, all deliberate: [-1, 1] images (see nets/genegan.py); the encoder and the decoder each run
once per step on both domains' images (batch norm with shared statistics, see ``crossbreed``); every step uses a fresh batch (critic
steps included), from the sampler all models share; the authors' small L2 penalty on G's weights
(0.5 * decay * mean(W^2)) is RMSprop's weight decay on G (``optim.weight_decay``, 1e-5); the adversarial
objective is swappable through the registry (``losses.adversarial``).
``train.ema`` (off in the recipe) keeps a moving average of ``g`` for sample grids, swap and interpolate;
``train.augment`` is refused (not measured for GeneGAN).

Settings and their defaults: recipes/genegan.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from translate.config import Config
from translate.models.base import TranslationModel


class GeneGAN(TranslationModel):
    name = "genegan"
    generators = ("g",)

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        m = self.cfg.model
        self.add_net("g", m.generator)  # split / join (recipes/genegan.py accepts only such generators)
        self.add_net("d_a", m.discriminator)  # judges "has the object"
        self.add_net("d_b", m.discriminator)  # judges "has no object"

    # ----------------------------------------------------------------- schedule

    def is_critic_batch(self, iteration: int) -> bool:
        """Batch `iteration` (0-based) steps the discriminators: ``critic_burst`` of them before the first
        and every ``critic_burst_every``-th generator step, ``n_critic`` before the others."""
        w = self.cfg.losses
        burst = max(w.critic_burst, self.n_critic)
        every = max(1, w.critic_burst_every)
        block = burst + 1 + (every - 1) * (self.n_critic + 1)  # batches per `every` generator steps
        r = iteration % block
        if r <= burst:
            return r < burst
        return (r - burst - 1) % (self.n_critic + 1) < self.n_critic

    # ----------------------------------------------------------------- the algorithm

    def crossbreed(self, real_a: Tensor, real_b: Tensor, g: Any = None) -> dict[str, Tensor]:
        """Codes and the four decodings of one step. Both parents go through the encoder in one call and
        the four children through the decoder in one call, so batch norm normalises A and B images with
        shared statistics: with a call per domain (the authors' code) B's object part is normalised to the
        same scale as A's, whatever the encoder learns, and the nulling loss cannot single it out."""
        g = self.g if g is None else g  # sample grids pass the moving average
        n = len(real_a)
        background, obj = g.split(torch.cat([real_a, real_b]))
        bg_a, bg_b, obj_a, obj_b = background[:n], background[n:], obj[:n], obj[n:]
        zero = torch.zeros_like(obj_b)
        children = g.join(torch.cat([bg_a, bg_b, bg_b, bg_a]), torch.cat([obj_a, zero, obj_a, zero]))
        rec_a, rec_b, b_with_u, a_without = children.split(n)
        return {"bg_a": bg_a, "obj_a": obj_a, "bg_b": bg_b, "obj_b": obj_b, "rec_a": rec_a, "rec_b": rec_b,
                "b_with_u": b_with_u, "a_without": a_without}

    def generator_terms(self, real_a: Tensor, real_b: Tensor) -> dict[str, Tensor]:
        w = self.cfg.losses
        c = self.crossbreed(real_a, real_b)
        terms = {
            "recon_a": w.lambda_recon * self.reconstruction(c["rec_a"].float(), real_a.float()),
            "recon_b": w.lambda_recon * self.reconstruction(c["rec_b"].float(), real_b.float()),
            "nulling": w.lambda_nulling * c["obj_b"].float().abs().mean(),
            "parallelogram": w.lambda_parallelogram * (real_a + real_b - c["b_with_u"] - c["a_without"]).float().abs().mean(),
            "adv_a": self.adversarial.generator_loss(self.d_a(c["b_with_u"])),
            "adv_b": self.adversarial.generator_loss(self.d_b(c["a_without"])),
        }
        if w.lambda_reproduction:
            bg_a0, _ = self.g.split(c["a_without"])
            bg_bu, obj_bu = self.g.split(c["b_with_u"])
            terms["reproduction"] = w.lambda_reproduction * (
                self.reconstruction(self.g.join(bg_a0, obj_bu).float(), real_a.float())
                + self.reconstruction(self.g.join(bg_bu, torch.zeros_like(obj_bu)).float(), real_b.float()))
        return terms

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        if not self.is_critic_batch(self.batches_done - 1):
            with self.toggled_optimizer(opt_g):
                self.step_generators(opt_g, self.generator_terms(real_a, real_b))
            return
        with torch.no_grad():
            c = self.crossbreed(real_a, real_b)
        # d_a: real "with" images vs B given A's object; d_b: real "without" images vs A stripped of it
        self.step_discriminators(opt_d, real_a, c["b_with_u"], real_b, c["a_without"])

    # ----------------------------------------------------------------- test-time modes

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows: A (with the object), A with it removed, B (without), B given A's object (column-wise pairs)."""
        c = self.crossbreed(real_a, real_b, self.output_net("g"))
        return [real_a, c["a_without"], real_b, c["b_with_u"]]


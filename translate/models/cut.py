"""CUT and FastCUT (Park, Efros, Zhang, Zhu: "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020, Sec. 3 and 4), matching the authors' code (taesungp/contrastive-unpaired-translation,
models/cut_model.py, patchnce.py, networks.py).

One generator G (A -> B, here ``g_ab``), projection heads F (``f``, nets/patchnce.py) and one discriminator
D (``d_b``, judges domain-B images). Per batch, in the authors' order:
    X = [A, B] with the NCE identity term (CUT), else A; FastCUT flips X horizontally with probability 1/2
    Y = G(X): the translation G(A) and, with the identity term, G(B)
    1. D on B vs G(A) (detached):          0.5 * (adv_real + adv_fake)
    2. G and F, D frozen (after D's step):  lambda_GAN * adv(D(G(A))) + NCE, where
       NCE = lambda_NCE * PatchNCE(A, G(A))                          without the identity term,
       NCE = lambda_NCE * (PatchNCE(A, G(A)) + PatchNCE(B, G(B))) / 2 with it;
       PatchNCE(x, y): G's encoder features of y (flipped back) as queries, of x as keys, both through F on
       the same num_patches positions per layer, averaged over layers (losses/patchnce.py).
One optimizer for G and F (the authors' two Adams with the same settings: Adam is per parameter, so one is
the same), one for D; the LR schedule of all models (models/base.py).

Deliberate differences:
- F's heads are built with the model from the generator's channel counts, not on the first batch: the
  optimizer, the checkpoint and DDP see them from the start (nets/patchnce.py). The authors' first-batch
  pass only creates them (its gradients are zeroed before the first step), so nothing else changes, but the
  random streams differ. The flips and patch positions come from the model's own CPU generator (seeded from
  train.seed, its state saved in the checkpoint, so a resumed run draws what the uninterrupted one would;
  the global RNG's state at an epoch's first batch differs after a resume); the heads' initial weights from
  torch's global RNG, as every net's. Under DDP all ranks draw the same flips and positions.
- The keys' features and projections are computed without autograd: the authors detach them, so this only
  saves memory.
- With ``losses.n_critic`` > 1 (WGAN critics) G and F step on every n_critic-th batch, as in CycleGAN here.
- Logged terms: ``adv``, ``nce`` and, with the identity term, ``nce_idt``, each already weighted (halved
  with the identity term) so that they sum to the total.
- Not offered: their single-image options (negatives from the whole batch, StyleGAN2 nets) and the other
  ``netF`` kinds; ``--nce_layers`` is a string as theirs, with its own layer list for the U-Net.

Settings and their defaults: recipes/cut.py.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from translate.config import Config
from translate.errors import ConfigError
from translate.losses.patchnce import patch_nce_layers
from translate.models.base import TranslationModel, has_batch_coupling
from translate.nets import init_weights
from translate.nets.patchnce import PatchProjector, encode, encoder_layers, feature_channels
from translate.recipes.cut import nce_layer_ids


class CUT(TranslationModel):
    name = "cut"
    generators = ("g_ab", "f")
    discriminators = ("d_b",)

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        m = self.cfg.model
        self.nce_layers = nce_layer_ids(self.cfg.losses.nce_layers)
        g = self.add_net("g_ab", m.generator)  # A -> B
        self.add_net("d_b", m.discriminator)  # judges domain-B images
        try:
            channels = feature_channels(g, self.nce_layers)
        except ValueError as exc:
            raise ConfigError(f"losses.nce_layers: {exc}") from None
        self.encoder = encoder_layers(g)  # a plain list: the modules stay g_ab's
        self.f = PatchProjector(channels, m.head_units)
        if m.init_type != "default":
            init_weights(self.f, m.init_gain, m.init_type)
        self.rng = torch.Generator().manual_seed(self.cfg.train.seed * 2 + 3)  # flips and patch positions

    def forward(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        if direction != "AtoB":
            raise ValueError(f"{self.name} translates one way only (AtoB), not {direction}")
        return self.g_ab(x)

    def nce(self, source: Tensor, output: Tensor, flipped: bool) -> Tensor:
        """lambda_NCE * PatchNCE between G's input `source` and its `output` (losses/patchnce.py)."""
        w = self.cfg.losses
        queries = encode(self.encoder, output, self.nce_layers)
        if flipped:  # G saw the source flipped: flip its features back onto the source's positions
            queries = [q.flip(3) for q in queries]
        with torch.no_grad():  # the keys are detached (as the authors'), so build no graph for them
            k, ids = self.f(encode(self.encoder, source, self.nce_layers), w.num_patches, generator=self.rng)
        q, _ = self.f(queries, w.num_patches, ids)
        return w.lambda_nce * patch_nce_layers(q, k, source.shape[0], w.nce_t)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        w = self.cfg.losses
        n = real_a.shape[0]
        g_step = self.batches_done % self.n_critic == 0
        flipped = w.flip_equivariance and bool(torch.rand((), generator=self.rng) < 0.5)
        x = torch.cat([real_a, real_b]) if w.nce_idt else real_a
        if flipped:
            x = x.flip(3)
        with torch.set_grad_enabled(g_step):
            y = self.g_ab(x)  # [N or 2N,3,H,W]
        fake_b, idt_b = y[:n], y[n:]

        # 1. The discriminator on real B vs G(A).
        with self.toggled_optimizer(opt_d):
            d_terms = self.adversarial.discriminator_loss(self.d_b, *self.augmented(real_b, fake_b.detach()),
                                                          batched=not has_batch_coupling(self.d_b))
            self.watch_finite(d_terms["loss"])
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_terms["loss"])
            opt_d.step()
            self.adversarial.after_discriminator_step([self.d_b])
        self.log_terms("d", d_terms)
        self.log("d_loss", d_terms["loss"].detach(), prog_bar=True, batch_size=self.cfg.data.batch_size)

        # 2. The generator and the projection heads, the discriminator frozen (and already updated).
        if g_step:
            with self.toggled_optimizer(opt_g):
                terms = {}
                if w.lambda_gan > 0:
                    terms["adv"] = w.lambda_gan * self.adversarial.generator_loss(self.d_b(*self.augmented(fake_b)))
                if w.lambda_nce > 0:
                    nce = self.nce(real_a, fake_b, flipped)
                    if w.nce_idt:
                        terms["nce"], terms["nce_idt"] = 0.5 * nce, 0.5 * self.nce(real_b, idt_b, flipped)
                    else:
                        terms["nce"] = nce
                self.step_generators(opt_g, terms)

    def extra_state(self) -> dict[str, Any]:
        return {"rng": self.rng.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.set_state(state["rng"])

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows: A, G(A), B, G(B) (the authors' real_A, fake_B, real_B, idt_B); the moving average with train.ema."""
        g = self.output_net("g_ab")
        return [real_a, g(real_a), real_b, g(real_b)]


class FastCUT(CUT):
    name = "fastcut"

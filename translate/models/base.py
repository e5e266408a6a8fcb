"""Shared machinery of the translation LightningModules; the recipes live in the subclasses.

A module holds the recipe only: its nets, losses, optimizers and ``training_step``. The loop's jobs are
callbacks that train.py builds (callbacks.py): the learning-rate schedule (``linear_decay``, a pure
function of the epoch, so a resumed run has the right rate without scheduler objects), the RNG reseed at
each epoch start (exact resume), ``--max-steps``, the NaN watchdog, and device and memory-format setup.
Settings arrive resolved (config.concrete): no sentinel is left for a module to interpret.

- Stateful recipe parts (image pools) are saved in the checkpoint's ``translate`` block by
  :meth:`extra_state`; checkpoint.py writes and reads that block.
- Batches arrive as uint8 and are scaled to [-1, 1] on the device (:meth:`on_after_batch_transfer`).
- ``train.ema``: each generator has a moving average, ``ema.<net>`` (models/ema.py), stepped after every
  generator step; sample grids, evaluations and every command after training use it (:meth:`output_net`).
- ``train.augment``: every discriminator call sees its images through :meth:`augmented`, one DiffAugment
  transform (models/diffaugment.py) for the real and the fake batch of that call.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from translate.callbacks import batches_seen
from translate.checkpoint import EMA_PREFIX, write_block
from translate.config import Config, from_dict
from translate.data.transforms import to_model_range
from translate.models import diffaugment
from translate.models.ema import averaged, copy_buffers, matching_state, update_ema
from translate.nets import build_net, init_weights
from translate.recipes.archs import NetSettings
from translate.recipes.objectives import OBJECTIVES


def has_batch_coupling(net: nn.Module) -> bool:
    """True when a sample's output depends on the rest of the batch (batch norm in training mode)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def run_batched(net: nn.Module, *inputs: Tensor) -> tuple[Tensor, ...]:
    """`net` on each input; one call on the concatenation when that gives the same per-sample result."""
    if len(inputs) == 1:
        return (net(inputs[0]),)
    if has_batch_coupling(net) or len({x.shape[1:] for x in inputs}) > 1:
        return tuple(net(x) for x in inputs)
    out = net(torch.cat(inputs))
    return tuple(out.split([x.shape[0] for x in inputs]))


class TranslationModel(pl.LightningModule):
    """Base class. Subclasses set ``name``, build nets with :meth:`add_net` and write ``training_step``.
    ``generators`` and ``discriminators`` name the nets each of the two optimizers steps."""

    name = "base"
    generators: tuple[str, ...] = ()
    discriminators: tuple[str, ...] = ("d_a", "d_b")

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg if isinstance(cfg, Config) else from_dict(cfg)
        self.save_hyperparameters(self.cfg.to_dict())
        self.automatic_optimization = False
        self.net_specs: dict[str, dict[str, Any]] = {}
        self.ema = nn.ModuleDict()  # generator attr -> its moving average (train.ema; filled by add_net)
        self.augment_rng = torch.Generator().manual_seed(2**34 + self.cfg.train.seed)  # DiffAugment's draws
        self.nonfinite: Tensor | None = None  # set once a loss was NaN or infinite (read by callbacks.NonFinite)
        from translate.losses import build_adversarial, build_reconstruction

        w = self.cfg.losses
        self.adversarial = build_adversarial(
            w.adversarial, **{key: getattr(w, key) for key in OBJECTIVES[w.adversarial].settings})
        self.reconstruction = build_reconstruction(w.reconstruction)
        self.n_critic = w.n_critic

    # ----------------------------------------------------------------- nets and optimizers

    def add_net(self, attr: str, settings: NetSettings, **derived: Any) -> nn.Module:
        """Build the net `settings` describe (``model.generator`` or ``model.discriminator``), initialise it,
        remember how to rebuild it (checkpoint.py saves that beside the weights)."""
        kwargs = {**settings.kwargs(), **derived}
        net = build_net(settings.kind, settings.arch, kwargs)
        if self.cfg.model.init_type != "default":
            init_weights(net, self.cfg.model.init_gain, self.cfg.model.init_type)
        setattr(self, attr, net)
        self.net_specs[attr] = {"kind": settings.kind, "arch": settings.arch, "kwargs": kwargs}
        t = self.cfg.train
        if t.ema and attr in self.generators:
            self.ema[attr] = averaged(net, t.ema_decay, t.ema_rampup)
        return net

    def output_net(self, attr: str) -> nn.Module:
        """The net that makes outputs (grids, evaluations): generator `attr`'s moving average (with the net's
        current buffers), or the net."""
        if attr not in self.ema:
            return getattr(self, attr)
        copy_buffers(self.ema[attr], getattr(self, attr))
        return self.ema[attr].module

    def reset_ema(self) -> None:
        """Each moving average equal to its net again, no update counted (fine-tuning starts them afresh)."""
        self.load_state_dict(matching_state(self.state_dict(), tuple(self.ema), fresh=True))

    def make_optimizer(self, nets: tuple[str, ...], lr: float, weight_decay: float) -> torch.optim.Optimizer:
        """``optim.kind`` over the parameters of `nets`: Adam with the config's betas (fused on CUDA), or
        RMSprop with its smoothing ``optim.alpha`` (the original WGAN's)."""
        o = self.cfg.optim
        params = [p for attr in nets for p in getattr(self, attr).parameters()]
        if o.kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, alpha=o.alpha, weight_decay=weight_decay)
        fused = (self.device.type == "cuda") or None  # one kernel for all parameters; CPU keeps the default
        return torch.optim.Adam(params, lr=lr, betas=(o.beta1, o.beta2), weight_decay=weight_decay, fused=fused)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimizer for the generators, one for the discriminators (``optim.lr_d``, ``weight_decay_d``);
        callbacks.LinearDecay sets their rates at each epoch start, in this order."""
        o = self.cfg.optim
        return [self.make_optimizer(self.generators, o.lr, o.weight_decay),
                self.make_optimizer(self.discriminators, o.lr_d, o.weight_decay_d)]

    # ----------------------------------------------------------------- progress

    @property
    def batches_done(self) -> int:
        """Training batches seen, the current one included (restored on resume)."""
        return batches_seen(self._trainer)

    def watch_finite(self, loss: Tensor) -> None:
        """Remember (on the device, without a host sync) whether `loss` was ever NaN or infinite."""
        bad = ~torch.isfinite(loss.detach())
        self.nonfinite = bad if self.nonfinite is None else self.nonfinite | bad

    def log_terms(self, prefix: str, terms: dict[str, Tensor]) -> None:
        """Log each term of a loss dict as ``prefix/name`` (the dict is the list of logged terms)."""
        self.log_dict({f"{prefix}/{k}": v.detach() for k, v in terms.items()}, prog_bar=False,
                      batch_size=self.cfg.data.batch_size)

    # ----------------------------------------------------------------- data

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return {key: to_model_range(value) for key, value in batch.items()}

    # ----------------------------------------------------------------- steps (models with d_a and d_b)

    def augmented(self, *images: Tensor) -> tuple[Tensor, ...]:
        """`images` as one discriminator call sees them: with ``train.augment``, one DiffAugment transform
        drawn for this call and put on each (sample i of the real and of the fake batch changed alike)."""
        t = self.cfg.train
        if t.augment != "diffaugment":  # none, or an undecided auto (train.concrete_augment)
            return images
        if len({x.shape for x in images}) > 1:
            raise ValueError(f"one augmentation for batches of different shapes {[tuple(x.shape) for x in images]}")
        n, _, h, w = images[0].shape
        transform = diffaugment.draw(t.augment_policy, n, h, w, self.augment_rng, images[0].device)
        return tuple(diffaugment.apply(x, transform) for x in images)

    def step_generators(self, opt_g: Any, terms: dict[str, Tensor]) -> None:
        """One optimizer step on the sum of `terms` (computed inside ``toggled_optimizer(opt_g)``); logs."""
        g_loss = sum(terms.values())
        self.watch_finite(g_loss)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        for attr, average in self.ema.items():  # after the step: the same synchronised weights on every rank
            update_ema(average, getattr(self, attr))
        self.log_terms("g", terms | {"total": g_loss})
        self.log("g_loss", g_loss.detach(), prog_bar=True, batch_size=self.cfg.data.batch_size)

    def step_discriminators(self, opt_d: Any, real_a: Tensor, fake_a: Tensor, real_b: Tensor, fake_b: Tensor) -> None:
        """d_a on real vs fake A-side images and d_b on real vs fake B-side images, one optimizer step for both;
        logs the terms."""
        with self.toggled_optimizer(opt_d):  # a gradient penalty interpolates between the augmented images
            d_a_terms = self.adversarial.discriminator_loss(self.d_a, *self.augmented(real_a, fake_a),
                                                            batched=not has_batch_coupling(self.d_a))
            d_b_terms = self.adversarial.discriminator_loss(self.d_b, *self.augmented(real_b, fake_b),
                                                            batched=not has_batch_coupling(self.d_b))
            d_loss = d_a_terms["loss"] + d_b_terms["loss"]
            self.watch_finite(d_loss)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(d_loss)
            opt_d.step()
            self.adversarial.after_discriminator_step([self.d_a, self.d_b])
        d_terms = {f"{k}_a": v for k, v in d_a_terms.items()} | {f"{k}_b": v for k, v in d_b_terms.items()}
        self.log_terms("d", d_terms)
        self.log("d_loss", d_loss.detach(), prog_bar=True, batch_size=self.cfg.data.batch_size)

    # ----------------------------------------------------------------- checkpoint

    def extra_state(self) -> dict[str, Any]:
        """Recipe state beyond parameters and optimizers (tensors and primitives only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for attr, average in self.ema.items():  # the averages saved with the nets' current buffers
            copy_buffers(average, getattr(self, attr))
            saved = average.module.state_dict()  # persistent buffers only (not CUT's fixed blur filters)
            checkpoint["state_dict"].update({f"{EMA_PREFIX}.{attr}.module.{k}": v.detach() for k, v in
                                             average.module.named_buffers() if k in saved})
        state = self.extra_state()
        if self.cfg.train.augment == "diffaugment":
            state["augment_rng"] = self.augment_rng.get_state()
        checkpoint["translate"] = write_block(self.name, self.cfg.to_dict(), self.net_specs, state)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from translate.checkpoint import check_block

        block = check_block(checkpoint, expect_model=self.name)
        self.load_extra_state(block["state"])
        if self.cfg.train.augment == "diffaugment" and isinstance(block["state"].get("augment_rng"), torch.Tensor):
            self.augment_rng.set_state(block["state"]["augment_rng"])
        # before Lightning loads the weights: moving averages for exactly this run's (train.ema on or off)
        checkpoint["state_dict"] = matching_state(checkpoint["state_dict"], tuple(self.ema))

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows of images in [-1, 1] for a sample grid; each row is [n,3,H,W]."""
        raise NotImplementedError


class TwoWayModel(TranslationModel):
    """Models with generators g_ab (A->B) and g_ba (B->A) and discriminators d_a (judges A) and d_b (judges B),
    built from ``model.generator`` / ``model.discriminator``: CycleGAN and DiscoGAN."""

    generators = ("g_ab", "g_ba")

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        m = self.cfg.model
        self.add_net("g_ab", m.generator)  # A -> B
        self.add_net("g_ba", m.generator)  # B -> A
        self.add_net("d_a", m.discriminator)  # judges domain-A images
        self.add_net("d_b", m.discriminator)  # judges domain-B images

    def forward(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        return self.g_ab(x) if direction == "AtoB" else self.g_ba(x)

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows of images in [-1, 1] for a sample grid, each [n,3,H,W]: A, G_AB(A), its reconstruction,
        then the same from B (the moving averages with train.ema)."""
        g_ab, g_ba = self.output_net("g_ab"), self.output_net("g_ba")
        fake_b, fake_a = g_ab(real_a), g_ba(real_b)
        return [real_a, fake_b, g_ba(fake_b), real_b, fake_a, g_ab(fake_a)]

"""Shared machinery of the translation LightningModules; the recipes live in the subclasses.

- Manual optimization; schedules are a pure function of the epoch (:func:`linear_decay`), applied at
  each epoch start, so a resumed run has the right learning rate without restoring scheduler objects.
- Exact resume at epoch boundaries: global RNGs are reseeded from (run seed, rank, epoch) at every epoch
  start, data randomness comes from the seeded sampler, and stateful recipe parts (image pools) are saved
  in the checkpoint's ``translate`` block by :meth:`extra_state`.
- The ``translate`` block also holds the format version, the model name, the config and each net's
  constructor arguments, so later commands rebuild nets from the checkpoint alone (see checkpoint.py).
- Batches arrive as uint8 and are scaled to [-1, 1] on the device (:meth:`on_after_batch_transfer`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from translate.checkpoint import write_block
from translate.config import Config, from_dict
from translate.data.transforms import to_model_range
from translate.nets import NETS, init_weights


def linear_decay(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR factor at 0-based `epoch`: 1 for `n_epochs` epochs, then linear towards 0 over `n_epochs_decay`.

    Matches the classic ``lambda_rule`` with ``epoch_count = 1``: 1 - max(0, e + 1 - n) / (n_decay + 1).
    """
    # clamped at 0: --max-epochs beyond the schedule must not turn into a negative rate (gradient ascent)
    return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1))


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
    """Base class. Subclasses set ``name``, build nets with :meth:`add_net` and write ``training_step``."""

    name = "base"
    recipe: dict[str, Any] = {}  # the paper's settings over the config defaults (see config.resolve)

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg if isinstance(cfg, Config) else from_dict(cfg)
        self.save_hyperparameters(self.cfg.to_dict())
        self.automatic_optimization = False
        self.net_specs: dict[str, dict[str, Any]] = {}
        self._nonfinite: Tensor | None = None
        self.batches_at_start = 0  # set when training starts (restored batches on a resume)
        from translate.losses import build_adversarial, build_reconstruction

        w = self.cfg.losses
        self.adversarial = build_adversarial(w.adversarial, gp_weight=w.gp_weight, clip_value=w.clip_value)
        self.reconstruction = build_reconstruction(w.reconstruction)
        self.n_critic = w.n_critic  # config.py fills 0 ("the objective's") with the objective's default

    # ----------------------------------------------------------------- nets

    def add_net(self, attr: str, kind: str, arch: str, **kwargs: Any) -> nn.Module:
        """Build a net of `kind` ("generator", "discriminator"), initialise it, remember how to rebuild it."""
        net = NETS[kind][arch](**kwargs)
        if self.cfg.model.init_type == "normal":
            init_weights(net, self.cfg.model.init_gain)
        setattr(self, attr, net)
        self.net_specs[attr] = {"kind": kind, "arch": arch, "kwargs": dict(kwargs)}
        return net

    def on_fit_start(self) -> None:
        if self.device.type == "cuda" and self.cfg.train.channels_last:
            self.to(memory_format=torch.channels_last)
        if self.cfg.train.compile:
            for attr in self.net_specs:
                getattr(self, attr).compile()

    def make_optimizer(self, params: Any, kind: str = "adam", weight_decay: float | None = None,
                       alpha: float = 0.99, lr: float | None = None) -> torch.optim.Optimizer:
        """Adam with the config's betas, or RMSprop (the original WGAN's; smoothing `alpha`); the config's
        learning rate and weight decay unless given; fused on CUDA."""
        o = self.cfg.optim
        weight_decay = o.weight_decay if weight_decay is None else weight_decay
        lr = o.lr if lr is None else lr
        fused = (self.device.type == "cuda") or None  # one kernel for all parameters; CPU keeps the default
        if kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, alpha=alpha, weight_decay=weight_decay)
        return torch.optim.Adam(params, lr=lr, betas=(o.beta1, o.beta2), weight_decay=weight_decay, fused=fused)

    # ----------------------------------------------------------------- epochs

    def lr_factor(self, epoch: int) -> float:
        return linear_decay(epoch, self.cfg.optim.n_epochs, self.cfg.optim.n_epochs_decay)

    def on_train_epoch_start(self) -> None:
        epoch = self.current_epoch
        seed = (self.cfg.train.seed * 1_000_003 + self.global_rank * 7919 + epoch) % 2**31
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        factor = self.lr_factor(epoch)
        optimizers = self.optimizers()
        for opt, base in zip(optimizers if isinstance(optimizers, list) else [optimizers], self.base_lrs()):
            for group in opt.param_groups:
                group["initial_lr"] = base  # the config's, also when a resume changed it
                group["lr"] = group["initial_lr"] * factor
        self.log("lr_factor", factor, on_step=False, on_epoch=True, sync_dist=False)

    def base_lrs(self) -> list[float]:
        """Learning rates of the optimizers, in configure_optimizers' order: the generators', then the
        discriminators' (``optim.lr_d`` when set)."""
        o = self.cfg.optim
        return [o.lr, o.lr_d or o.lr]

    def on_train_start(self) -> None:
        self.batches_at_start = self.batches_done  # > 0 when resumed: the batches this attempt adds are the rest

    @property
    def batches_done(self) -> int:
        """Training batches seen, the current one included (restored on resume)."""
        return self.trainer.fit_loop.total_batch_idx + 1 if self._trainer is not None else 0

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # train.max_steps counts batches; Lightning's max_steps counts optimizer steps, which vary per batch.
        if 0 < self.cfg.train.max_steps <= self.batches_done:
            self.trainer.should_stop = True
        # NaN/inf check without a host sync per batch: the flag lives on the device and is read every
        # log_every_n_steps batches, and always before a checkpoint can be written (epoch end, a stop).
        epoch_end = batch_idx + 1 >= self.trainer.num_training_batches
        if self._nonfinite is not None and (epoch_end or self.trainer.should_stop
                                            or self.batches_done % self.cfg.train.log_every_n_steps == 0):
            if bool(self._nonfinite):
                from translate.errors import NonFiniteLoss

                raise NonFiniteLoss(
                    f"a loss became NaN or infinite by batch {self.batches_done} (epoch {self.current_epoch + 1}); "
                    "training stopped, and last.ckpt still holds the last finished epoch. Try a lower optim.lr, "
                    "--precision 32, or check the data")

    def watch_finite(self, loss: Tensor) -> None:
        """Remember (on the device) whether `loss` was ever NaN or infinite; see on_train_batch_end."""
        bad = ~torch.isfinite(loss.detach())
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad

    def log_terms(self, prefix: str, terms: dict[str, Tensor]) -> None:
        """Log each term of a loss dict as ``prefix/name`` (the dict is the list of logged terms)."""
        self.log_dict({f"{prefix}/{k}": v.detach() for k, v in terms.items()}, prog_bar=False,
                      batch_size=self.cfg.data.batch_size)

    # ----------------------------------------------------------------- data

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        memory = torch.channels_last if self.device.type == "cuda" and self.cfg.train.channels_last else None
        out = {}
        for key, value in batch.items():
            value = to_model_range(value)
            out[key] = value.contiguous(memory_format=memory) if memory else value
        return out

    # ----------------------------------------------------------------- steps (models with d_a and d_b)

    def step_generators(self, opt_g: Any, terms: dict[str, Tensor]) -> None:
        """One optimizer step on the sum of `terms` (computed inside ``toggled_optimizer(opt_g)``); logs."""
        g_loss = sum(terms.values())
        self.watch_finite(g_loss)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_terms("g", terms | {"total": g_loss})
        self.log("g_loss", g_loss.detach(), prog_bar=True, batch_size=self.cfg.data.batch_size)

    def step_discriminators(self, opt_d: Any, real_a: Tensor, fake_a: Tensor, real_b: Tensor, fake_b: Tensor) -> None:
        """d_a on real vs fake A-side images and d_b on real vs fake B-side images, one optimizer step for both;
        logs the terms."""
        with self.toggled_optimizer(opt_d):
            d_a_terms = self.adversarial.discriminator_loss(self.d_a, real_a, fake_a,
                                                            batched=not has_batch_coupling(self.d_a))
            d_b_terms = self.adversarial.discriminator_loss(self.d_b, real_b, fake_b,
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
        checkpoint["translate"] = write_block(self.name, self.cfg.to_dict(), self.net_specs, self.extra_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        from translate.checkpoint import check_block

        block = check_block(checkpoint, expect_model=self.name)
        self.load_extra_state(block["state"])

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows of images in [-1, 1] for a sample grid; each row is [n,3,H,W]."""
        raise NotImplementedError

    # ----------------------------------------------------------------- samples


class TwoWayModel(TranslationModel):
    """Models with generators g_ab (A->B) and g_ba (B->A) and discriminators d_a (judges A) and d_b (judges B),
    built from ``model.generator`` / ``model.discriminator``: CycleGAN and DiscoGAN."""

    def __init__(self, cfg: Config | dict[str, Any]) -> None:
        super().__init__(cfg)
        from translate.nets import DISCRIMINATORS, GENERATORS, constructor_kwargs

        m = self.cfg.model
        g_kwargs = constructor_kwargs(GENERATORS[m.generator.arch], vars(m.generator))
        # spectral_norm is turned on by config.py for objectives that need it (hinge)
        d_kwargs = constructor_kwargs(DISCRIMINATORS[m.discriminator.arch], {"in_channels": 3, **vars(m.discriminator)})
        self.add_net("g_ab", "generator", m.generator.arch, **g_kwargs)  # A -> B
        self.add_net("g_ba", "generator", m.generator.arch, **g_kwargs)  # B -> A
        self.add_net("d_a", "discriminator", m.discriminator.arch, **d_kwargs)  # judges domain-A images
        self.add_net("d_b", "discriminator", m.discriminator.arch, **d_kwargs)  # judges domain-B images

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        kind = self.adversarial.optimizer
        opt_g = self.make_optimizer(list(self.g_ab.parameters()) + list(self.g_ba.parameters()), kind)
        opt_d = self.make_optimizer(list(self.d_a.parameters()) + list(self.d_b.parameters()), kind,
                                    lr=self.base_lrs()[1])
        return [opt_g, opt_d]

    def forward(self, x: Tensor, direction: str = "AtoB") -> Tensor:
        return self.g_ab(x) if direction == "AtoB" else self.g_ba(x)

    @torch.no_grad()
    def sample_grid(self, real_a: Tensor, real_b: Tensor) -> list[Tensor]:
        """Rows of images in [-1, 1] for a sample grid, each [n,3,H,W]: A, G_AB(A), its reconstruction,
        then the same from B."""
        fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
        return [real_a, fake_b, self.g_ba(fake_b), real_b, fake_a, self.g_ab(fake_a)]

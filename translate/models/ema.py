"""Exponential moving averages of the generators (``train.ema``), the weights every output uses.

The average is torch's :class:`~torch.optim.swa_utils.AveragedModel`, updated after each generator
optimizer step: its first update copies the weights, each later one is
    W_ema <- beta_t * W_ema + (1 - beta_t) * W,   beta_t = min(decay, 0.5 ** (1 / (rampup * t)))
with t the updates before this one (a ``multi_avg_fn`` of our own: torch's ``get_ema_multi_avg_fn`` has a
fixed decay, no warm-up). ``decay`` is StarGAN v2's beta (0.999 there, from the first step);
the cap is StyleGAN2-ADA's ``ema_rampup`` (training/training_loop.py: the half-life, ``ema_kimg``, is at
most ``ema_rampup`` times the images seen), counted in generator steps instead of images, which is the same
formula: beta = 0.5 ** (batch / min(h * batch, rampup * t * batch)) with decay = 0.5 ** (1 / h). Without the
warm-up a short run's average would still weigh the random initialisation (0.999 ** 2000 = 0.14 of it
after 2,000 steps); ``ema_rampup`` 0 turns it off.

Buffers (batch norm's running statistics in DiscoGAN's and GeneGAN's nets) are copied from the raw net at
each update, as StyleGAN2-ADA does, and again whenever the average makes outputs or is saved (the raw
net's statistics also move in discriminator batches, whose fakes it makes in training mode), rather than
averaged (``use_buffers``): a running mean of running means
adds a second lag to statistics that already lag, and ``num_batches_tracked`` is an integer. Recomputing
them for the averaged weights (SWA's ``update_bn``) would need a pass over the data at each save.

The copies live in the LightningModule as ``ema.<net>`` (submodules without gradients), so they go
through Lightning's state_dict into the checkpoint (checkpoint.py reads ``ema.<net>.module.*``) and are
restored exactly on resume. Under DDP every rank updates from the same synchronised weights after the
same optimizer step, so the copies stay equal, and rank 0 writes them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

from translate.checkpoint import EMA_PREFIX


def ema_beta(decay: float, rampup: float, updates: int) -> float:
    """The weight of the old average at an update after `updates` earlier ones (>= 1)."""
    if rampup > 0:
        return min(decay, 0.5 ** (1.0 / (rampup * updates)))
    return decay


def averaged(net: nn.Module, decay: float, rampup: float) -> AveragedModel:
    """An EMA copy of `net` (parameters averaged, buffers copied; see the module docstring)."""

    @torch.no_grad()
    def update(ema: list[Tensor], current: list[Tensor], n_averaged: Tensor) -> None:
        torch._foreach_lerp_(ema, current, 1.0 - ema_beta(decay, rampup, int(n_averaged)))

    copy = AveragedModel(net, multi_avg_fn=update, use_buffers=False)
    copy.requires_grad_(False)
    return copy


@torch.no_grad()
def copy_buffers(copy: AveragedModel, net: nn.Module) -> None:
    for mine, theirs in zip(copy.module.buffers(), net.buffers(), strict=True):
        mine.copy_(theirs)


def update_ema(copy: AveragedModel, net: nn.Module) -> None:
    """One EMA step of `copy` towards `net`, then its buffers set to `net`'s."""
    copy.update_parameters(net)
    copy_buffers(copy, net)


def matching_state(state: dict[str, Tensor], nets: tuple[str, ...], fresh: bool = False) -> dict[str, Tensor]:
    """A checkpoint's `state` dict with EMA entries for exactly `nets`: others dropped, and a missing one (a
    run resumed with ``train.ema`` newly on; every one when `fresh`, for ``--init``) started from the raw
    net's weights with no update counted, so the next generator step copies the weights again."""
    out = {k: v for k, v in state.items() if not k.startswith(f"{EMA_PREFIX}.")
           or (not fresh and k.split(".")[1] in nets)}
    for attr in nets:
        if f"{EMA_PREFIX}.{attr}.n_averaged" in out:
            continue
        raw = {k[len(attr) + 1:]: v for k, v in state.items() if k.startswith(f"{attr}.")}
        out |= {f"{EMA_PREFIX}.{attr}.module.{k}": v.clone() for k, v in raw.items()}
        out[f"{EMA_PREFIX}.{attr}.n_averaged"] = torch.zeros((), dtype=torch.long)
    return out

"""Loss registries: names users type in configs -> loss classes."""

from __future__ import annotations

from torch import nn

from translate.losses.adversarial import LSGAN, AdversarialLoss, Vanilla

ADVERSARIAL: dict[str, type[AdversarialLoss]] = {"lsgan": LSGAN, "vanilla": Vanilla}

RECONSTRUCTION: dict[str, type[nn.Module]] = {"l1": nn.L1Loss, "l2": nn.MSELoss, "smooth_l1": nn.SmoothL1Loss}


def _pick(registry: dict, kind: str, name: str):
    if name not in registry:
        raise ValueError(f"unknown {kind} loss '{name}'; choose from: {', '.join(registry)}")
    return registry[name]


def build_adversarial(name: str) -> AdversarialLoss:
    return _pick(ADVERSARIAL, "adversarial", name)()


def build_reconstruction(name: str) -> nn.Module:
    return _pick(RECONSTRUCTION, "reconstruction", name)()

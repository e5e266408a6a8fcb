"""Loss registries: names users type in configs -> loss classes."""

from __future__ import annotations

from typing import Any

from torch import nn

from translate.losses.adversarial import LSGAN, AdversarialLoss, Vanilla
from translate.losses.feature_matching import feature_matching
from translate.losses.wasserstein import WGANGP, Hinge, WGANClip, gradient_penalty

ADVERSARIAL: dict[str, type[AdversarialLoss]] = {
    "lsgan": LSGAN, "vanilla": Vanilla, "wgan-gp": WGANGP, "hinge": Hinge, "wgan-clip": WGANClip,
}

RECONSTRUCTION: dict[str, type[nn.Module]] = {"l1": nn.L1Loss, "l2": nn.MSELoss, "smooth_l1": nn.SmoothL1Loss}


def _pick(registry: dict, kind: str, name: str):
    if name not in registry:
        raise ValueError(f"unknown {kind} loss '{name}'; choose from: {', '.join(registry)}")
    return registry[name]


def build_adversarial(name: str, **settings: Any) -> AdversarialLoss:
    """The objective `name` with its own settings (wgan-gp: gp_weight; wgan-clip: clip_value; see
    recipes/objectives.py, which says what each objective asks of a recipe)."""
    return _pick(ADVERSARIAL, "adversarial", name)(**settings)


def build_reconstruction(name: str) -> nn.Module:
    return _pick(RECONSTRUCTION, "reconstruction", name)()


__all__ = ["ADVERSARIAL", "RECONSTRUCTION", "AdversarialLoss", "build_adversarial", "build_reconstruction",
           "feature_matching", "gradient_penalty"]

"""What each adversarial objective asks of a recipe, without importing torch: the settings the resolve pass
fills when a config leaves them to the objective (recipes/__init__.py: ``resolve``). The loss formulas live
in translate/losses/; tests/test_losses.py checks that the names here are the registry's.

- ``lsgan``, ``vanilla``: one discriminator step per generator step, a 50-image pool (CycleGAN's), Adam.
- ``wgan-gp``: a critic: 5 critic steps per generator step, no pool (the critic estimates W between real
  images and the current fakes; history would bias it and the penalty), Adam; takes ``gp_weight``.
- ``wgan-clip``: the same critic cadence, RMSprop as in Arjovsky et al.; takes ``clip_value``.
- ``hinge``: spectral normalization on every discriminator conv (Miyato et al.), otherwise like lsgan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Objective:
    n_critic: int = 1  # discriminator steps per generator step
    pool_size: int = 50  # image-pool size
    spectral_norm: bool = False
    optimizer: str = "adam"  # adam | rmsprop
    settings: tuple[str, ...] = ()  # losses.* keys its constructor takes


OBJECTIVES: dict[str, Objective] = {
    "lsgan": Objective(),
    "vanilla": Objective(),
    "wgan-gp": Objective(n_critic=5, pool_size=0, settings=("gp_weight",)),
    "hinge": Objective(spectral_norm=True),
    "wgan-clip": Objective(n_critic=5, pool_size=0, optimizer="rmsprop", settings=("clip_value",)),
}

RECONSTRUCTIONS = ("l1", "l2", "smooth_l1")
OPTIMIZERS = ("adam", "rmsprop")

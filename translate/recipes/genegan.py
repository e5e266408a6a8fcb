"""GeneGAN's settings (the LightningModule: models/genegan.py), the authors' values (Prinsphield/GeneGAN):
one encoder/decoder with a 25 % object part, ngf/ndf 128 with batch norm, WGAN with weight clipping at
0.01, RMSprop (lr 5e-5, smoothing 0.8) with weight decay 1e-5 on the generator only, batch 64 at 64 px;
the critic takes 100 steps before the first and every 500th generator step, else 1. Weights on our
[-1, 1] scale equal theirs on [0, 255]: reconstruction 0.5, parallelogram 1.275, nulling 1."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from translate.errors import ConfigError
from translate.recipes.archs import Discriminator, GeneDiscriminator, GeneGenerator, Generator
from translate.recipes.base import LossSettings, ModelSettings, Recipe


@dataclass(frozen=True)
class GeneGANModel(ModelSettings):
    name: str = "genegan"
    generator: Generator = field(default_factory=GeneGenerator)
    discriminator: Discriminator = field(default_factory=GeneDiscriminator)


@dataclass(frozen=True)
class GeneGANLosses(LossSettings):
    adversarial: str = "wgan-clip"
    n_critic: int = 1
    lambda_recon: float = 0.5  # reconstruction of each parent
    lambda_parallelogram: float = 1.275  # |Au + B0 - Bu - A0|
    lambda_nulling: float = 1.0  # |object part of a B image|
    lambda_reproduction: float = 0.0  # parents recovered from the children (not in the authors' code)
    critic_burst: int = 100  # critic steps before the first and every critic_burst_every-th generator step; 0: off
    critic_burst_every: int = 500


class GeneGANRecipe(Recipe):
    name = "genegan"
    model = GeneGANModel
    losses = GeneGANLosses
    lightning = "translate.models.genegan:GeneGAN"
    generators = ("genegan",)  # the only one with split/join
    discriminators = ("genegan", "patch", "discogan")
    translates = False
    shared = {
        "optim": {"lr": 5e-5, "weight_decay": 1e-5, "alpha": 0.8, "n_epochs": 100, "n_epochs_decay": 0},
        "data": {"load_size": 64, "crop_size": 64, "flip": False, "batch_size": 64},
    }

    def resolve(self, cfg: Any) -> Any:
        cfg = super().resolve(cfg)
        o = cfg.optim
        if o.weight_decay_d < 0:  # the authors' RMSprop decays only G's weights; with Adam both, as the others
            cfg = dataclasses.replace(cfg, optim=dataclasses.replace(
                o, weight_decay_d=0.0 if o.kind == "rmsprop" else o.weight_decay))
        return cfg

    def validate(self, cfg: Any) -> None:
        super().validate(cfg)
        if cfg.eval.every:
            raise ConfigError("eval.every scores A->B and B->A generators; GeneGAN has none (evaluate its swaps "
                              "with translate swap and benchmarks/genegan_faces.py)")
        if cfg.train.augment == "diffaugment":  # not measured to help; its critics judge crossbred children
            raise ConfigError("train.augment: GeneGAN trains without augmentation (DiffAugment is not measured "
                              "for it); leave train.augment=none")

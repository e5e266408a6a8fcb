"""CycleGAN's settings (the LightningModule: models/cyclegan.py). Defaults are the paper's and the classic
code's: ResNet-9 generators (ngf 64, instance norm), 70x70 PatchGAN discriminators, LSGAN, cycle weight 10
per direction, identity 5 (the classic 0.5 x lambda_cycle, as an absolute weight), a 50-image pool, Adam
2e-4 (0.5, 0.999) constant for 100 epochs then linear decay over 100, 286 -> 256 crops with flips."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from translate.errors import ConfigError
from translate.recipes.base import LossSettings, ModelSettings, Recipe
from translate.recipes.objectives import OBJECTIVES


@dataclass(frozen=True)
class CycleGANModel(ModelSettings):
    name: str = "cyclegan"
    pool_size: int = -1  # fakes kept per direction for D; -1 in a preset: the objective's (50; 0 for critics)


@dataclass(frozen=True)
class CycleGANLosses(LossSettings):
    lambda_cycle: float = 10.0  # per direction
    lambda_identity: float = 5.0  # absolute weight; 0 turns the identity term off


class CycleGANRecipe(Recipe):
    name = "cyclegan"
    model = CycleGANModel
    losses = CycleGANLosses
    lightning = "translate.models.cyclegan:CycleGAN"
    generators = ("resnet", "unet", "discogan")
    discriminators = ("patch", "discogan", "genegan")

    def resolve(self, cfg: Any) -> Any:
        cfg = super().resolve(cfg)
        objective = OBJECTIVES.get(cfg.losses.adversarial)
        if objective is not None and cfg.model.pool_size == -1:
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, pool_size=objective.pool_size))
        return cfg

    def validate(self, cfg: Any) -> None:
        super().validate(cfg)
        if cfg.model.pool_size < 0:
            raise ConfigError(f"model.pool_size must be >= 0 (or -1 in a preset: the objective's), got "
                              f"{cfg.model.pool_size}")

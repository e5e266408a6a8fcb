"""DiscoGAN's settings (the LightningModule: models/discogan.py), the authors' values (SKTBrain/DiscoGAN):
64x64 encoder-decoder generators and feature-exposing discriminators with batch norm, the non-saturating
GAN, per direction (1 - rate) * [(1 - fm_weight) * adversarial + fm_weight * feature matching]
+ rate * MSE reconstruction, with rate recon_rate_start for the first recon_curriculum batches, then
recon_rate; D on one batch, G on the next two (n_critic 1, g_steps 2); Adam 2e-4 (0.5, 0.999) with weight
decay 1e-5, constant; batch 64; images resized straight to 64 (no crop, no flip); PyTorch's init."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from translate.errors import ConfigError
from translate.recipes.archs import DiscoDiscriminator, DiscoGenerator, Discriminator, Generator
from translate.recipes.base import LossSettings, ModelSettings, Recipe


@dataclass(frozen=True)
class DiscoGANModel(ModelSettings):
    name: str = "discogan"
    generator: Generator = field(default_factory=DiscoGenerator)
    discriminator: Discriminator = field(default_factory=DiscoDiscriminator)
    init_type: str = "default"


@dataclass(frozen=True)
class DiscoGANLosses(LossSettings):
    adversarial: str = "vanilla"
    reconstruction: str = "l2"
    fm_weight: float = 0.9
    recon_rate: float = 0.5
    recon_rate_start: float = 0.01
    recon_curriculum: int = 10000
    lambda_identity: float = 0.0  # CycleGAN's identity term, not the authors' (absolute weight)
    g_steps: int = 0  # generator batches after each n_critic discriminator batches; 0 in a preset: 2, or 1 for critics


class DiscoGANRecipe(Recipe):
    name = "discogan"
    model = DiscoGANModel
    losses = DiscoGANLosses
    lightning = "translate.models.discogan:DiscoGAN"
    generators = ("discogan", "resnet", "unet")
    discriminators = ("discogan", "patch")  # the ones with forward_features (feature matching)
    shared = {
        "optim": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "weight_decay": 1e-5, "n_epochs": 100,
                  "n_epochs_decay": 0},
        "data": {"load_size": 64, "crop_size": 64, "flip": False, "batch_size": 64},
    }

    def resolve(self, cfg: Any) -> Any:
        cfg = super().resolve(cfg)
        w = cfg.losses
        if not w.g_steps:  # the authors' 1:2 cycle; one generator batch after a critic's n_critic batches
            cfg = dataclasses.replace(cfg, losses=dataclasses.replace(w, g_steps=2 if w.n_critic == 1 else 1))
        return cfg

    def validate(self, cfg: Any) -> None:
        super().validate(cfg)
        for key in ("fm_weight", "recon_rate", "recon_rate_start"):
            if not 0.0 <= getattr(cfg.losses, key) <= 1.0:
                raise ConfigError(f"losses.{key} must be in [0, 1], got {getattr(cfg.losses, key)}")

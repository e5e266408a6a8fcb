"""CUT's and FastCUT's settings (the LightningModule: models/cut.py), the authors' defaults
(taesungp/contrastive-unpaired-translation: options/base_options.py, train_options.py and
models/cut_model.py's ``modify_commandline_options``): one ResNet-9 generator (ngf 64, instance norm, no
dropout) and one 70x70 PatchGAN (ndf 64), both with antialiased resampling, xavier-normal init with gain 0.02;
PatchNCE on layers 0,4,8,12,16 with 256 patches per layer, two-layer MLP heads of 256 units, tau 0.07;
lambda_GAN 1; LSGAN, no image pool, Adam 2e-4 (0.5, 0.999), batch 1, 286 -> 256 crops with flips.
CUT: lambda_NCE 1 with the NCE identity term, 200 + 200 epochs. FastCUT: lambda_NCE 10, no identity term,
flip-equivariance, 150 + 50 epochs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from translate.configtools import positive
from translate.errors import ConfigError
from translate.recipes.archs import Discriminator, Generator, Patch, Resnet
from translate.recipes.base import LossSettings, ModelSettings, Recipe


@dataclass(frozen=True)
class CUTModel(ModelSettings):
    name: str = "cut"
    generator: Generator = field(default_factory=lambda: Resnet(antialias=True, antialias_up=True))
    discriminator: Discriminator = field(default_factory=lambda: Patch(antialias=True))
    init_type: str = "xavier"
    head_units: int = 256  # units of each projection head's two layers (their --netF_nc)


@dataclass(frozen=True)
class CUTLosses(LossSettings):
    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_idt: bool = True  # the identity term: PatchNCE between B and G(B), averaged with the A term
    nce_layers: str = "0,4,8,12,16"  # the generator's layers (nets/patchnce.py: encoder_layers), increasing
    num_patches: int = 256  # per layer and image
    nce_t: float = 0.07  # temperature
    flip_equivariance: bool = False  # with probability 1/2 G sees the batch flipped (features flipped back)


@dataclass(frozen=True)
class FastCUTModel(CUTModel):
    name: str = "fastcut"


@dataclass(frozen=True)
class FastCUTLosses(CUTLosses):
    lambda_nce: float = 10.0
    nce_idt: bool = False
    flip_equivariance: bool = True


def nce_layer_ids(text: str) -> list[int]:
    """``losses.nce_layers`` ("0,4,8") as increasing layer indices; ConfigError otherwise."""
    try:
        ids = [int(part) for part in str(text).split(",")]
    except ValueError:
        ids = []
    if not ids or min(ids) < 0 or any(b <= a for a, b in zip(ids, ids[1:])):
        raise ConfigError(f"losses.nce_layers must be increasing layer indices separated by commas, such as "
                          f"0,4,8,12,16; got {text!r}")
    return ids


class CUTRecipe(Recipe):
    name = "cut"
    model = CUTModel
    losses = CUTLosses
    lightning = "translate.models.cut:CUT"
    generators = ("resnet", "unet")  # nets whose encoder layers PatchNCE can index (nets/patchnce.py)
    discriminators = ("patch", "discogan", "genegan")
    shared = {"optim": {"n_epochs": 200, "n_epochs_decay": 200}}

    def validate(self, cfg: Any) -> None:
        super().validate(cfg)
        w = cfg.losses
        nce_layer_ids(w.nce_layers)
        positive("losses.num_patches", w.num_patches)
        positive("losses.nce_t", w.nce_t)
        positive("model.head_units", cfg.model.head_units)
        if w.lambda_gan == 0 and w.lambda_nce == 0:
            raise ConfigError("losses.lambda_gan and losses.lambda_nce are both 0: the generator would have no loss")


class FastCUTRecipe(CUTRecipe):
    name = "fastcut"
    model = FastCUTModel
    losses = FastCUTLosses
    lightning = "translate.models.cut:FastCUT"
    shared = {"optim": {"n_epochs": 150, "n_epochs_decay": 50}}

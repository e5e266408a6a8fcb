"""What every model's settings share, and the rules applied to all of them (torch-free).

A model's settings are two frozen dataclasses, ``model.*`` (its nets and how they start) and ``losses.*``
(its objective, weights and cadence), whose defaults are the paper's values, plus a :class:`Recipe` that
ties them to the LightningModule and holds the paper's values for the shared sections (``optim``,
``data``). Each model's file under recipes/ subclasses these; recipes/__init__.py lists them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from translate.configtools import choice, non_negative, positive
from translate.errors import ConfigError
from translate.recipes.archs import Discriminator, Generator, Patch, Resnet
from translate.recipes.objectives import OBJECTIVES, RECONSTRUCTIONS

# normal: N(0, init_gain) as CycleGAN; xavier: xavier_normal_ with gain init_gain, as CUT; default: PyTorch's own
INIT_TYPES = ("normal", "xavier", "default")


@dataclass(frozen=True)
class ModelSettings:
    """``model.*``: the model's name, its nets and their initialisation."""

    name: str = ""
    generator: Generator = field(default_factory=Resnet)
    discriminator: Discriminator = field(default_factory=Patch)
    init_type: str = "normal"
    init_gain: float = 0.02


@dataclass(frozen=True)
class LossSettings:
    """``losses.*`` every model has: the adversarial objective (translate/losses/) and its settings."""

    adversarial: str = "lsgan"
    reconstruction: str = "l1"
    n_critic: int = 0  # discriminator steps per generator step; 0 in a preset: the objective's (1; 5 for critics)
    gp_weight: float = 10.0  # wgan-gp penalty weight (lambda)
    clip_value: float = 0.01  # wgan-clip weight clipping bound c


class Recipe:
    """One model: its settings classes, the LightningModule (imported only to train), the nets it accepts,
    and the paper's values for the shared sections. Subclasses extend :meth:`resolve` and :meth:`validate`."""

    name: ClassVar[str]
    model: ClassVar[type[ModelSettings]]
    losses: ClassVar[type[LossSettings]]
    lightning: ClassVar[str]  # "package.module:Class"
    generators: ClassVar[tuple[str, ...]]  # the architectures model.generator.arch may name
    discriminators: ClassVar[tuple[str, ...]]
    shared: ClassVar[dict[str, Any]] = {}  # the paper's optim.* / data.* over the config defaults
    translates: ClassVar[bool] = True  # has A->B and B->A generators (g_ab, g_ba) that convert can use

    def resolve(self, cfg: Any) -> Any:
        """`cfg` with every setting left to the objective made concrete: n_critic, spectral norm, the
        optimizer, and sizes that follow the data (a discriminator's image_size)."""
        objective = OBJECTIVES.get(cfg.losses.adversarial)
        if objective is None:
            return cfg  # validate names the valid objectives
        losses = dataclasses.replace(cfg.losses, n_critic=cfg.losses.n_critic or objective.n_critic)
        d = cfg.model.discriminator
        changes: dict[str, Any] = {}
        if hasattr(d, "spectral_norm"):
            changes["spectral_norm"] = d.spectral_norm or objective.spectral_norm
        if hasattr(d, "image_size"):
            changes["image_size"] = cfg.data.crop_size
        model = dataclasses.replace(cfg.model, discriminator=dataclasses.replace(d, **changes))
        optim = cfg.optim
        if optim.kind == "auto":
            optim = dataclasses.replace(optim, kind=objective.optimizer)
        return dataclasses.replace(cfg, model=model, losses=losses, optim=optim)

    def validate(self, cfg: Any) -> None:
        """Rules of this model's settings, checked before anything is built."""
        m, w, crop = cfg.model, cfg.losses, cfg.data.crop_size
        for key, net, accepted in (("model.generator", m.generator, self.generators),
                                   ("model.discriminator", m.discriminator, self.discriminators)):
            if net.arch not in accepted:
                raise ConfigError(f"{key}.arch: {self.name} cannot use the {net.arch} {net.kind}; it takes "
                                  f"{', '.join(accepted)}")
            net.check(key, crop)
        multiple = m.generator.size_multiple()
        if crop % multiple:
            raise ConfigError(f"data.crop_size ({crop}) must be a multiple of {multiple} for the "
                              f"{m.generator.arch} generator")
        choice("model.init_type", m.init_type, INIT_TYPES)
        choice("losses.adversarial", w.adversarial, OBJECTIVES)
        choice("losses.reconstruction", w.reconstruction, RECONSTRUCTIONS)
        positive("losses.clip_value", w.clip_value)
        for f in dataclasses.fields(w):
            value = getattr(w, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                non_negative(f"losses.{f.name}", value)

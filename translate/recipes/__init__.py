"""The model registry, torch-free: ``model.name`` -> the model's :class:`~translate.recipes.base.Recipe`
(its settings dataclasses, the nets it accepts, its paper's values, and where its LightningModule lives).

Adding a model: its settings in ``recipes/<name>.py``, its LightningModule in ``models/<name>.py``, and one
line here. Validating a config imports only this package; the LightningModule is imported when a run
builds it (:func:`lightning_class`).
"""

from __future__ import annotations

import importlib
from typing import Any

from translate.errors import ConfigError
from translate.recipes.base import LossSettings, ModelSettings, Recipe
from translate.recipes.cut import CUTRecipe, FastCUTRecipe
from translate.recipes.cyclegan import CycleGANRecipe
from translate.recipes.discogan import DiscoGANRecipe
from translate.recipes.genegan import GeneGANRecipe

RECIPES: dict[str, Recipe] = {r.name: r for r in (CycleGANRecipe(), DiscoGANRecipe(), GeneGANRecipe(), CUTRecipe(),
                                                  FastCUTRecipe())}


def recipe(name: str) -> Recipe:
    """The recipe of `name`; ConfigError listing the models when there is none."""
    if name not in RECIPES:
        from translate.configtools import suggest

        raise ConfigError(f"model.name: unknown value '{name}'{suggest(str(name), RECIPES)}")
    return RECIPES[name]


def lightning_class(name: str) -> Any:
    """The LightningModule class of model `name` (imports torch and Lightning)."""
    module, _, attr = recipe(name).lightning.partition(":")
    return getattr(importlib.import_module(module), attr)


__all__ = ["RECIPES", "LossSettings", "ModelSettings", "Recipe", "lightning_class", "recipe"]

"""The LightningModules, one file per model: the recipe (nets, losses, update order). Their settings and
the registry that names them are torch-free, in translate/recipes/; this package is imported only to
train or to rebuild a model (``translate.recipes.lightning_class``)."""

from __future__ import annotations

from typing import Any


def build_model(cfg: Any) -> Any:
    """The LightningModule of the model a resolved config names (``cfg.model.name``), built from `cfg`."""
    from translate.recipes import lightning_class

    return lightning_class(cfg.model.name)(cfg)

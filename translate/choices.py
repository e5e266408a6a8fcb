"""The names users type, as literal tuples, for help texts that must not import torch.

``translate --help`` and ``translate <command> --help`` list these without importing the registries that
own them. The model, objective, precision and feature names come from the torch-free registries
(translate.recipes, translate.config); the others are copies of registries in modules that import torch,
and tests/test_cli_handoff.py checks every copy against its owner, so they cannot drift.
Validation stays with the owners: these tuples only describe.
"""

from __future__ import annotations

from translate.config import EVAL_FEATURES, PRECISIONS
from translate.recipes import RECIPES
from translate.recipes.objectives import OBJECTIVES

# Owned by torch-free registries: read from them.
MODELS = tuple(RECIPES)
ADVERSARIAL = tuple(OBJECTIVES)  # translate.losses.ADVERSARIAL (tests/test_losses.py)
TRAIN_PRECISIONS = PRECISIONS
FEATURES = EVAL_FEATURES  # translate.metrics.FEATURES (or package.module:factory)
# Owned by modules that import torch: copies.
CONVERT_PRECISIONS = ("auto", "32", "bf16", "16")  # translate.precision.PRECISIONS
BACKENDS = ("torch", "onnxruntime")  # translate.precision.BACKENDS
IMAGE_FORMATS = ("png", "jpg", "webp")  # translate.infer.FORMATS
EXPORT_FORMATS = ("pt2", "onnx")  # translate.export.FORMATS
BLENDS = ("footprint", "none")  # translate.swap.BLENDS
DIRECTIONS = ("AtoB", "BtoA")  # translate.evaluate.DIRECTIONS, translate.export.DIRECTIONS
WEIGHTS = ("ema", "raw")  # translate.checkpoint.WEIGHTS


def listed(names: tuple[str, ...], last: str = "or") -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"

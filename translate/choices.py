"""The names users type, as literal tuples, for help texts that must not import torch.

``translate --help`` and ``translate <command> --help`` list these without importing the registries that
own them (translate.losses, translate.models, ... all import torch, which costs seconds). Each tuple is a
copy of its registry; tests/test_cli_handoff.py checks every copy against its owner, so they cannot drift.
Validation stays with the owners: these tuples only describe.
"""

from __future__ import annotations

MODELS = ("cyclegan", "discogan", "genegan")  # translate.models.MODELS
ADVERSARIAL = ("lsgan", "vanilla", "wgan-gp", "hinge", "wgan-clip")  # translate.losses.ADVERSARIAL
TRAIN_PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "bf16-true", "16-true")  # config.PRECISIONS
CONVERT_PRECISIONS = ("auto", "32", "bf16", "16")  # translate.precision.PRECISIONS
BACKENDS = ("torch", "onnxruntime")  # translate.precision.BACKENDS
IMAGE_FORMATS = ("png", "jpg", "webp")  # translate.infer.FORMATS
EXPORT_FORMATS = ("pt2", "onnx")  # translate.export.FORMATS
FEATURES = ("inception", "classifier", "pixels")  # translate.metrics.FEATURES (or package.module:factory)
BLENDS = ("footprint", "none")  # translate.swap.BLENDS
DIRECTIONS = ("AtoB", "BtoA")  # translate.evaluate.DIRECTIONS, translate.export.DIRECTIONS


def listed(names: tuple[str, ...], last: str = "or") -> str:
    """``("a", "b", "c")`` -> ``"a, b or c"``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"

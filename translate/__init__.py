"""translate: unpaired image-to-image translation (CycleGAN, DiscoGAN, GeneGAN) on PyTorch Lightning."""

import os

# albumentations checks PyPI for a newer release on import; a training tool must work offline and quietly.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"

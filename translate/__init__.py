"""translate: unpaired image-to-image translation (CycleGAN, DiscoGAN, GeneGAN) on PyTorch Lightning."""

__version__ = "0.1.0"

"""Model registry: names users type (``model.name``) -> LightningModule classes."""

from __future__ import annotations

from translate.models.base import TranslationModel
from translate.models.cyclegan import CycleGAN
from translate.models.discogan import DiscoGAN
from translate.models.genegan import GeneGAN

MODELS: dict[str, type[TranslationModel]] = {"cyclegan": CycleGAN, "discogan": DiscoGAN, "genegan": GeneGAN}

"""What each network architecture takes, without importing torch: one frozen dataclass per entry of
``translate.nets.GENERATORS`` / ``DISCRIMINATORS``, whose fields are the constructor's keyword arguments
(names, types and defaults; ``in_channels``/``out_channels`` stay at 3, RGB) plus ``arch``.

A config section ``model.generator: {arch: unet, num_downs: 7}`` is built into :class:`Unet`; a key the
architecture does not take is an error naming the valid ones, never silently dropped. The models build a net
with ``NETS[kind][arch](**settings.kwargs())`` (models/base.py), so what the config shows is what is built.
tests/test_nets.py checks every table against the constructor's signature, so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, ClassVar

from translate.configtools import build, choice, positive
from translate.errors import ConfigError

NORMS = ("instance", "batch", "none")
PADDINGS = ("reflect", "replicate", "zero")


@dataclass(frozen=True)
class NetSettings:
    """Base: ``arch`` names the entry; the other fields are the constructor's keyword arguments."""

    arch: str = ""
    kind: ClassVar[str] = ""

    def kwargs(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "arch"}

    def size_multiple(self) -> int:
        """What a generator's input H and W must be multiples of for its output to keep the input's size."""
        return 1

    def check(self, key: str, crop_size: int) -> None:
        """Rules a constructor would otherwise raise on (ConfigError naming `key`, e.g. model.generator)."""
        for name, value in self.kwargs().items():
            if name in ("ngf", "ndf"):
                positive(f"{key}.{name}", value)
            elif name == "norm":
                choice(f"{key}.norm", value, NORMS)

    @classmethod
    def from_config(cls, data: Any, prefix: str, default: NetSettings) -> NetSettings:
        """The settings class that ``data["arch"]`` names, built from `data`. Keys not given keep `default`'s
        values when the architecture is the default's, else the architecture's own defaults."""
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix.rstrip('.')}: expected a mapping such as {{arch: ..., ...}}, got {data!r}")
        table = TABLES[default.kind]
        arch = data.get("arch", default.arch)
        if not isinstance(arch, str) or arch not in table:
            from translate.configtools import suggest

            raise ConfigError(f"{prefix}arch: unknown {default.kind} '{arch}'{suggest(str(arch), table)}")
        start = default if arch == default.arch else table[arch]()
        takes = list(start.kwargs())
        for key in data:
            if key != "arch" and key not in takes:
                close = difflib.get_close_matches(str(key), takes, n=3, cutoff=0.5)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ConfigError(f"unknown config key '{prefix}{key}'{hint} (the {arch} {default.kind} takes: "
                                  f"{', '.join(takes)})")
        return build(table[arch], data, prefix, start)


# --------------------------------------------------------------------------- generators


@dataclass(frozen=True)
class Generator(NetSettings):
    kind: ClassVar[str] = "generator"


@dataclass(frozen=True)
class Resnet(Generator):
    """nets/resnet.py: ResnetGenerator (CycleGAN's resnet_9blocks at the defaults)."""

    arch: str = "resnet"
    ngf: int = 64
    n_blocks: int = 9
    norm: str = "instance"
    dropout: bool = False
    padding: str = "reflect"
    antialias: bool = False  # blur-downsampling (CUT's default)
    antialias_up: bool = False  # blur-upsampling + conv instead of transposed convs (CUT's default)

    def size_multiple(self) -> int:
        return 4  # two stride-2 downsamplings

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        if self.n_blocks < 0:
            raise ConfigError(f"{key}.n_blocks must be >= 0, got {self.n_blocks}")
        choice(f"{key}.padding", self.padding, PADDINGS)


UNET_MIN_DOWNS = 5  # the U-Net's five outer levels are fixed; num_downs - 5 more sit in between


@dataclass(frozen=True)
class Unet(Generator):
    """nets/unet.py: UnetGenerator (unet_256 at the defaults)."""

    arch: str = "unet"
    num_downs: int = 8
    ngf: int = 64
    norm: str = "instance"
    dropout: bool = False

    def size_multiple(self) -> int:
        return 2**self.num_downs

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        if self.num_downs < UNET_MIN_DOWNS:
            raise ConfigError(f"{key}.num_downs must be at least {UNET_MIN_DOWNS} (the U-Net's fixed outer "
                              f"levels), got {self.num_downs}")
        if self.num_downs >= crop_size.bit_length():  # 2**num_downs > crop_size, found without a huge int
            multiple = 2**self.num_downs if self.num_downs <= 20 else f"2**{self.num_downs}"
            raise ConfigError(f"data.crop_size ({crop_size}) must be a multiple of {multiple} for the unet "
                              f"generator ({key}.num_downs={self.num_downs})")


@dataclass(frozen=True)
class DiscoGenerator(Generator):
    """nets/discogan.py: DiscoGenerator (64x64 encoder-decoder)."""

    arch: str = "discogan"
    ngf: int = 64
    norm: str = "batch"

    def size_multiple(self) -> int:
        return 16


@dataclass(frozen=True)
class GeneGenerator(Generator):
    """nets/genegan.py: GeneGenerator (encoder/decoder with split and join)."""

    arch: str = "genegan"
    ngf: int = 128
    object_share: float = 0.25
    norm: str = "batch"

    def size_multiple(self) -> int:
        return 8

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        channels = 4 * self.ngf
        if not 0.0 < self.object_share < 1.0 or not 0 < max(1, round(channels * self.object_share)) < channels:
            raise ConfigError(f"{key}.object_share must be in (0, 1) and leave both parts of the code's "
                              f"{channels} channels non-empty, got {self.object_share}")


# --------------------------------------------------------------------------- discriminators


@dataclass(frozen=True)
class Discriminator(NetSettings):
    kind: ClassVar[str] = "discriminator"


def patch_output_side(crop_size: int, n_layers: int, antialias: bool = False) -> int:
    """Side of the PatchGAN's logit map for a square input: n_layers 4x4 stride-2 convs (pad 1) halve the side
    (rounding down), then two 4x4 stride-1 convs (pad 1) take one pixel each; < 1 means no output at all.
    Antialiased, each halving is a stride-1 conv (one pixel less) and a blur-downsample (rounding up): the same
    sides, but the blur's reflection pad needs 2 pixels."""
    side = crop_size
    for _ in range(n_layers):
        if side < (3 if antialias else 2):  # a 4x4 kernel (or the blur's reflect pad) no longer fits
            return 0
        side //= 2
    return side - 2


@dataclass(frozen=True)
class Patch(Discriminator):
    """nets/patchgan.py: PatchDiscriminator (the 70x70 PatchGAN at n_layers 3)."""

    arch: str = "patch"
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"
    spectral_norm: bool = False
    antialias: bool = False  # blur-downsampling (CUT's default)

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        if self.n_layers < 1:
            raise ConfigError(f"{key}.n_layers must be >= 1, got {self.n_layers}")
        if patch_output_side(crop_size, self.n_layers, self.antialias) < 1:
            deepest = max((n for n in range(1, crop_size.bit_length() + 1)
                           if patch_output_side(crop_size, n, self.antialias) >= 1), default=0)
            fix = f"use at most {deepest}" if deepest else "use a larger data.crop_size"
            raise ConfigError(f"{key}.n_layers ({self.n_layers}) is too deep for data.crop_size ({crop_size}): "
                              f"the patch discriminator's output would be smaller than 1x1; {fix}")


@dataclass(frozen=True)
class DiscoDiscriminator(Discriminator):
    """nets/discogan.py: DiscoDiscriminator (exposes three feature maps for feature matching)."""

    arch: str = "discogan"
    ndf: int = 64
    norm: str = "batch"
    spectral_norm: bool = False

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        if crop_size < 64:
            raise ConfigError(f"the discogan discriminator needs images of at least 64 px; data.crop_size is "
                              f"{crop_size} (DiscoGAN works at 64: --image-size 64)")


@dataclass(frozen=True)
class GeneDiscriminator(Discriminator):
    """nets/genegan.py: GeneDiscriminator; ``image_size`` sizes its last linear layer and is always set
    from data.crop_size by the resolve pass."""

    arch: str = "genegan"
    ndf: int = 128
    image_size: int = 64
    norm: str = "batch"
    spectral_norm: bool = False

    def check(self, key: str, crop_size: int) -> None:
        super().check(key, crop_size)
        if crop_size % 16 or crop_size < 16:
            raise ConfigError(f"the genegan discriminator needs data.crop_size to be a multiple of 16, got "
                              f"{crop_size}")


GENERATORS: dict[str, type[Generator]] = {"resnet": Resnet, "unet": Unet, "discogan": DiscoGenerator,
                                          "genegan": GeneGenerator}
DISCRIMINATORS: dict[str, type[Discriminator]] = {"patch": Patch, "discogan": DiscoDiscriminator,
                                                  "genegan": GeneDiscriminator}
TABLES: dict[str, dict[str, type[NetSettings]]] = {"generator": GENERATORS, "discriminator": DISCRIMINATORS}

"""Generator and discriminator networks, rebuilt from a name and a dict of primitives.

Paper: Zhu et al., "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks", ICCV 2017 (CycleGAN); Isola et al., CVPR 2017 (pix2pix) for the
U-Net and PatchGAN.

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py (`define_G`, `define_D`).
Deviation: the registries are literal dicts keyed by architecture family ("resnet" with
n_blocks, "unet" with num_downs, "patch" with n_layers) rather than the reference's fixed
names ("resnet_9blocks", "unet_256", "basic"), so a net is fully described by
(name, kwargs) and can be rebuilt from what is saved beside its weights.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from translate.nets.common import init_weights, norm_layer, uses_bias
from translate.nets.discogan import DiscoDiscriminator, DiscoGenerator
from translate.nets.genegan import GeneDiscriminator, GeneGenerator
from translate.nets.patchgan import PatchDiscriminator
from translate.nets.resnet import ResnetGenerator
from translate.nets.unet import UnetGenerator

GENERATORS: dict[str, type[nn.Module]] = {"resnet": ResnetGenerator, "unet": UnetGenerator, "discogan": DiscoGenerator,
                                          "genegan": GeneGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"patch": PatchDiscriminator, "discogan": DiscoDiscriminator,
                                              "genegan": GeneDiscriminator}
NETS: dict[str, dict[str, type[nn.Module]]] = {"generator": GENERATORS, "discriminator": DISCRIMINATORS}


def constructor_kwargs(cls: type[nn.Module], settings: dict[str, Any]) -> dict[str, Any]:
    """The entries of `settings` that `cls` takes (a config section covers several architectures)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in settings.items() if k in accepted}


def generator_kwargs(arch: str, settings: dict[str, Any]) -> dict[str, Any]:
    return constructor_kwargs(GENERATORS[arch], settings)


def size_multiple(arch: str, settings: dict[str, Any]) -> int:
    """What H and W of a generator's input must be multiples of for the output to keep the input size."""
    return int(build_net(GENERATORS, arch, **generator_kwargs(arch, {**settings, "ngf": 1})).size_multiple)


def build_net(registry: dict[str, type[nn.Module]], name: str, **kwargs: Any) -> nn.Module:
    """Instantiate `registry[name](**kwargs)`; ValueError naming the choices if unknown."""
    if name not in registry:
        kind = "generator" if registry is GENERATORS else "discriminator" if registry is DISCRIMINATORS else "net"
        raise ValueError(f"unknown {kind} '{name}'; choose from: {', '.join(sorted(registry))}")
    return registry[name](**kwargs)


__all__ = [
    "DISCRIMINATORS",
    "DiscoDiscriminator",
    "DiscoGenerator",
    "GENERATORS",
    "GeneDiscriminator",
    "GeneGenerator",
    "NETS",
    "constructor_kwargs",
    "generator_kwargs",
    "size_multiple",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "build_net",
    "init_weights",
    "norm_layer",
    "uses_bias",
]

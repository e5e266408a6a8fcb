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


def signature_defaults(kind: str, arch: str) -> dict[str, Any]:
    """The keyword arguments of ``NETS[kind][arch]`` with their defaults."""
    params = inspect.signature(NETS[kind][arch].__init__).parameters
    return {name: p.default for name, p in params.items() if name != "self" and p.default is not p.empty}


def full_kwargs(kind: str, arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Every constructor argument of a net, defaults included: two specs build the same net iff these match."""
    return {**signature_defaults(kind, arch), **kwargs}


def build_net(kind: str, arch: str, kwargs: dict[str, Any]) -> nn.Module:
    """``NETS[kind][arch](**kwargs)``; ValueError naming the choices for an unknown architecture or an
    argument the constructor does not take (never silently dropped)."""
    registry = NETS.get(kind)
    if registry is None:
        raise ValueError(f"unknown net kind '{kind}'; choose from: {', '.join(NETS)}")
    if arch not in registry:
        raise ValueError(f"unknown {kind} '{arch}'; choose from: {', '.join(sorted(registry))}")
    takes = signature_defaults(kind, arch)
    unknown = [str(k) for k in kwargs if k not in takes]
    if unknown:
        raise ValueError(f"the {arch} {kind} does not take {', '.join(unknown)} (it takes: {', '.join(takes)})")
    return registry[arch](**kwargs)


__all__ = [
    "DISCRIMINATORS",
    "DiscoDiscriminator",
    "DiscoGenerator",
    "GENERATORS",
    "GeneDiscriminator",
    "GeneGenerator",
    "NETS",
    "full_kwargs",
    "signature_defaults",
    "PatchDiscriminator",
    "ResnetGenerator",
    "UnetGenerator",
    "build_net",
    "init_weights",
    "norm_layer",
    "uses_bias",
]

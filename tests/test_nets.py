"""translate.nets: architectures match the reference CycleGAN/pix2pix code, shapes, init,
spectral norm and the registries.

Full-size nets are built on the meta device: parameter counts and output shapes without
allocating or computing anything. Real forward passes use tiny nets on 32-64 px inputs.
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from translate.nets import (
    DISCRIMINATORS,
    GENERATORS,
    PatchDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    build_net,
    init_weights,
)
from translate.nets.common import norm_layer, uses_bias

# Smallest sensible config per registry entry; a new entry without one fails test_tiny_kwargs_cover_registry.
TINY_G: dict[str, dict] = {
    "resnet": {"ngf": 4, "n_blocks": 1},
    "unet": {"ngf": 4, "num_downs": 5},
    "discogan": {"ngf": 4},
    "genegan": {"ngf": 4},
}
TINY_D: dict[str, dict] = {
    "patch": {"ndf": 4, "n_layers": 2},
    "discogan": {"ndf": 4},
    "genegan": {"ndf": 4, "image_size": 32},
}
D_SIDE = {"discogan": 64}  # DiscoGAN's discriminator reduces a 64x64 image to one logit; others take 32


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def meta(cls: type[nn.Module], **kwargs) -> nn.Module:
    with torch.device("meta"):
        return cls(**kwargs)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(
    ("cls", "kwargs", "expected"),
    [
        (ResnetGenerator, {"n_blocks": 9}, 11_378_179),
        (ResnetGenerator, {"n_blocks": 6}, 7_837_699),
        (PatchDiscriminator, {}, 2_764_737),
        # Recomputed by hand from the reference's UnetSkipConnectionBlock; the reference logs "54.414 M".
        (UnetGenerator, {"num_downs": 8, "norm": "batch"}, 54_413_955),
        (UnetGenerator, {"num_downs": 8, "norm": "instance"}, 54_409_603),
    ],
    ids=["resnet_9blocks", "resnet_6blocks", "patch_70", "unet_256_batch", "unet_256_instance"],
)
def test_parameter_counts_match_reference(cls: type[nn.Module], kwargs: dict, expected: int) -> None:
    assert n_params(meta(cls, **kwargs)) == expected


def test_full_size_output_shapes() -> None:
    x = torch.empty(1, 3, 256, 256, device="meta")
    assert meta(ResnetGenerator)(x).shape == (1, 3, 256, 256)
    assert meta(UnetGenerator)(x).shape == (1, 3, 256, 256)
    assert meta(PatchDiscriminator)(x).shape == (1, 1, 30, 30)


# ---------------------------------------------------------------- shapes on tiny nets


def test_resnet_tiny_shapes_and_range() -> None:
    g = ResnetGenerator(ngf=8, n_blocks=2)
    x = torch.randn(2, 3, 32, 32) * 3
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    assert g(torch.randn(1, 3, 36, 44)).shape == (1, 3, 36, 44)
    assert ResnetGenerator.size_multiple == 4 and g.size_multiple == 4


def test_resnet_channels_and_padding() -> None:
    for padding in ("reflect", "replicate", "zero"):
        g = ResnetGenerator(in_channels=1, out_channels=2, ngf=4, n_blocks=1, padding=padding)
        assert g(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ValueError, match="reflect, replicate, zero"):
        ResnetGenerator(padding="circular")


def test_unet_size_multiple_and_shapes() -> None:
    g = UnetGenerator(ngf=4, num_downs=5, out_channels=1)
    assert g.size_multiple == 32
    assert g(torch.randn(2, 3, 64, 32)).shape == (2, 1, 64, 32)
    assert UnetGenerator(num_downs=8, ngf=2).size_multiple == 256
    with pytest.raises(ValueError):
        UnetGenerator(num_downs=4)


def test_patch_tiny_shape_and_features() -> None:
    d = PatchDiscriminator(ndf=8)
    x = torch.randn(2, 3, 64, 64)
    logits = d(x)
    assert logits.shape == (2, 1, 6, 6)
    out, feats = d.forward_features(x)
    assert torch.equal(out, logits)
    assert len(feats) == 3 + 1
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64]
    assert all((f.min() < 0) for f in feats)  # raw LeakyReLU outputs, not clipped
    # Raw logits: the last module is the 1-channel conv, no sigmoid.
    assert isinstance(d.model[-1], nn.Conv2d) and d.model[-1].out_channels == 1


def test_dropout_placement() -> None:
    assert sum(isinstance(m, nn.Dropout) for m in ResnetGenerator(ngf=4, n_blocks=3, dropout=True).modules()) == 3
    assert sum(isinstance(m, nn.Dropout) for m in UnetGenerator(ngf=4, num_downs=7, dropout=True).modules()) == 2
    assert not any(isinstance(m, nn.Dropout) for m in UnetGenerator(ngf=4, num_downs=7).modules())


# ---------------------------------------------------------------- registries


def test_tiny_kwargs_cover_registry() -> None:
    assert set(TINY_G) == set(GENERATORS)
    assert set(TINY_D) == set(DISCRIMINATORS)


def _primitive_signature(cls: type[nn.Module]) -> None:
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.default is not inspect.Parameter.empty, f"{cls.__name__}.{p.name} needs a default"
        assert type(p.default) in (int, float, str, bool), f"{cls.__name__}.{p.name} is not a primitive"


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_generator_registry(name: str, norm: str) -> None:
    cls = GENERATORS[name]
    _primitive_signature(cls)
    kwargs = {**TINY_G[name], "norm": norm}
    g = build_net("generator", name, kwargs)
    init_weights(g)
    side = max(32, g.size_multiple)
    x = torch.randn(2, 3, side, side)
    y = g(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())

    # Rebuilt from (name, kwargs) + state dict, it computes the same function.
    g2 = build_net("generator", name, kwargs)
    g2.load_state_dict(g.state_dict())
    g.eval(), g2.eval()
    with torch.no_grad():
        assert torch.equal(g(x), g2(x))


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_discriminator_registry(name: str, norm: str) -> None:
    cls = DISCRIMINATORS[name]
    _primitive_signature(cls)
    kwargs = {**TINY_D[name], "norm": norm}
    d = build_net("discriminator", name, kwargs)
    init_weights(d)
    side = D_SIDE.get(name, 32)
    x = torch.randn(2, 3, side, side)
    y = d(x)
    assert y.ndim == 4 and y.shape[:2] == (2, 1)
    y.mean().backward()
    assert all(p.grad is not None for p in d.parameters())


def test_build_net_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown generator 'cyclegan'; choose from: discogan, genegan, resnet, unet"):
        build_net("generator", "cyclegan", {})
    with pytest.raises(ValueError, match=r"choose from: discogan, genegan, patch"):
        build_net("discriminator", "pixel", {})


# ---------------------------------------------------------------- norms and biases


def test_norm_layer_and_bias_rules() -> None:
    inorm = norm_layer("instance", 8)
    assert isinstance(inorm, nn.InstanceNorm2d) and not inorm.affine and not inorm.track_running_stats
    bnorm = norm_layer("batch", 8)
    assert isinstance(bnorm, nn.BatchNorm2d) and bnorm.affine and bnorm.track_running_stats
    assert isinstance(norm_layer("none", 8), nn.Identity)
    assert (uses_bias("instance"), uses_bias("batch"), uses_bias("none")) == (True, False, True)
    with pytest.raises(ValueError, match="instance, batch, none"):
        norm_layer("layer", 8)
    with pytest.raises(ValueError, match="instance, batch, none"):
        ResnetGenerator(norm="group")


def test_instance_norm_is_stateless_and_bias_follows_norm() -> None:
    g = ResnetGenerator(ngf=4, n_blocks=2, norm="instance")
    inorms = [m for m in g.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert inorms
    for m in inorms:
        assert list(m.parameters()) == [] and list(m.buffers()) == []
    assert all(m.bias is not None for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))

    gb = ResnetGenerator(ngf=4, n_blocks=2, norm="batch")
    convs = [m for m in gb.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    # Every conv but the output conv is followed by BatchNorm and so has no bias.
    assert all(m.bias is None for m in convs[:-1])
    assert convs[-1].bias is not None

    d = PatchDiscriminator(ndf=4, norm="batch")
    dconvs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert dconvs[0].bias is not None and dconvs[-1].bias is not None
    assert all(m.bias is None for m in dconvs[1:-1])


# ---------------------------------------------------------------- init


def test_init_weights_normal() -> None:
    g = ResnetGenerator(ngf=16, n_blocks=1, norm="instance")
    for p in g.parameters():
        nn.init.constant_(p, 0.5)
    init_weights(g)
    big = g.model[10].conv_block[1]  # a 64->64 3x3 conv in the residual block: 36,864 weights
    assert isinstance(big, nn.Conv2d) and big.weight.numel() == 36_864
    assert abs(big.weight.std().item() - 0.02) < 0.002
    assert abs(big.weight.mean().item()) < 0.002
    for m in g.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            assert torch.count_nonzero(m.bias) == 0

    gb = UnetGenerator(ngf=16, num_downs=5, norm="batch")
    init_weights(gb, gain=0.05)
    bns = [m for m in gb.modules() if isinstance(m, nn.BatchNorm2d)]
    w = torch.cat([m.weight for m in bns])
    assert abs(w.mean().item() - 1.0) < 0.02 and abs(w.std().item() - 0.05) < 0.01
    assert all(torch.count_nonzero(m.bias) == 0 for m in bns)


# ---------------------------------------------------------------- spectral norm


def test_spectral_norm() -> None:
    d = PatchDiscriminator(ndf=8, n_layers=2, norm="none", spectral_norm=True)
    init_weights(d)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4
    assert all(parametrize.is_parametrized(m, "weight") for m in convs)
    # init_weights reached the stored weight, not the recomputed one.
    orig = convs[1].parametrizations.weight.original
    assert abs(orig.std().item() - 0.02) < 0.003

    x = torch.randn(2, 3, 32, 32)
    d.train()
    with torch.no_grad():
        for _ in range(20):  # one power iteration per conv per forward in train mode
            d(x)
    d.eval()
    with torch.no_grad():
        for m in convs:
            sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
            assert sigma == pytest.approx(1.0, rel=0.05)

    d2 = copy.deepcopy(d)
    with torch.no_grad():
        assert torch.equal(d(x), d2(x))
    assert all(parametrize.is_parametrized(m, "weight") for m in d2.modules() if isinstance(m, nn.Conv2d))

    # Trains: gradients reach the stored weights.
    d.train()
    d(x).mean().backward()
    assert orig.grad is not None and orig.grad.abs().sum() > 0


def test_spectral_norm_keeps_configured_norm() -> None:
    d = PatchDiscriminator(ndf=4, norm="batch", spectral_norm=True)
    assert any(isinstance(m, nn.BatchNorm2d) for m in d.modules())


# ---------------------------------------------------------------- tracing


_JIT_WARNINGS = ("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")


@pytest.mark.filterwarnings(*_JIT_WARNINGS)
def test_resnet_jit_trace_matches_eager() -> None:
    g = ResnetGenerator(ngf=4, n_blocks=2).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        traced = torch.jit.trace(g, x)
        torch.testing.assert_close(traced(x), g(x))
        x2 = torch.randn(2, 3, 40, 36)
        torch.testing.assert_close(traced(x2), g(x2))


@pytest.mark.filterwarnings(*_JIT_WARNINGS)
@pytest.mark.parametrize(
    ("registry", "tiny", "name"),
    [(GENERATORS, TINY_G, n) for n in sorted(TINY_G)] + [(DISCRIMINATORS, TINY_D, n) for n in sorted(TINY_D)]
)
def test_registry_nets_script(registry: dict, tiny: dict, name: str) -> None:
    # Spectral-norm parametrizations are not scriptable (a torch limitation); plain nets are.
    net = build_net("generator" if registry is GENERATORS else "discriminator", name, tiny[name]).eval()
    side = D_SIDE.get(name, 32) if registry is DISCRIMINATORS else 32
    x = torch.randn(1, 3, side, side)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


@pytest.mark.parametrize(("kind", "arch"), [("generator", a) for a in sorted(GENERATORS)]
                         + [("discriminator", a) for a in sorted(DISCRIMINATORS)])
def test_the_torch_free_settings_tables_mirror_every_constructor(kind: str, arch: str) -> None:
    """recipes/archs.py describes each net's arguments without torch, for config validation; it must list
    exactly the constructor's keyword arguments (RGB channels aside) with the same defaults, and its size
    rule must be the net's own."""
    import dataclasses

    from translate.nets import signature_defaults
    from translate.recipes.archs import TABLES

    settings = TABLES[kind][arch]()
    expected = {k: v for k, v in signature_defaults(kind, arch).items() if k not in ("in_channels", "out_channels")}
    assert settings.arch == arch and settings.kwargs() == expected
    assert set(TABLES[kind]) == set(GENERATORS if kind == "generator" else DISCRIMINATORS)
    if kind == "generator":
        for changes in ({}, {"num_downs": 6} if arch == "unet" else {}):
            variant = dataclasses.replace(settings, **changes)
            net = build_net(kind, arch, {**variant.kwargs(), "ngf": 1})
            assert net.size_multiple == variant.size_multiple()


def test_build_net_refuses_an_argument_the_constructor_does_not_take() -> None:
    with pytest.raises(ValueError, match=r"the resnet generator does not take num_downs \(it takes: .*n_blocks"):
        build_net("generator", "resnet", {"ngf": 4, "num_downs": 5})

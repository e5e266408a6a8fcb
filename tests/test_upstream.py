"""Classic CycleGAN generator files: parity with the classic code's own outputs, and architecture inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.checkpoint import load_generator
from translate.cli import app
from translate.errors import CheckpointError
from translate.nets import ResnetGenerator, UnetGenerator
from translate.upstream import infer_layout, load_state, to_upstream

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "upstream_cyclegan"
PHOTOS = ("photo1", "photo2", "photo3", "photo4")
needs_fixture = pytest.mark.skipif(not FIXTURE.is_dir(), reason="../shared/fixtures/upstream_cyclegan is absent")


@needs_fixture
def test_classic_weights_reproduce_the_classic_float_output():
    generator = load_generator(FIXTURE / "latest_net_G.pth")  # the path convert, export and evaluate take
    assert generator.origin == "classic" and generator.arch == "resnet"
    assert (generator.kwargs["n_blocks"], generator.kwargs["ngf"], generator.kwargs["dropout"]) == (6, 16, False)
    image = np.asarray(Image.open(FIXTURE / "inputs" / "photo1.png").convert("RGB"))
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1  # ToTensor + Normalize(0.5, 0.5)
    with torch.no_grad():
        y = generator.net(x)[0].numpy()
    expected = np.load(FIXTURE / "expected" / "photo1_fake_float.npy")
    assert y.shape == expected.shape == (3, 132, 200)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=0)


@needs_fixture
def test_convert_with_classic_weights_matches_the_classic_test_outputs(tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["convert", str(FIXTURE / "latest_net_G.pth"), str(FIXTURE / "inputs"), str(out),
                                      "--precision", "32", "--quiet"])
    assert result.exit_code == 0, result.output
    for name in PHOTOS:
        ours = np.asarray(Image.open(out / f"{name}.png")).astype(int)
        theirs = np.asarray(Image.open(FIXTURE / "expected" / f"{name}.png").convert("RGB")).astype(int)
        assert ours.shape == theirs.shape == np.asarray(Image.open(FIXTURE / "inputs" / f"{name}.png")).shape
        # the classic code truncates to 8 bits where we round: at most one level apart
        assert np.abs(ours - theirs).max() <= 1, name


def _roundtrip(net: torch.nn.Module, tmp_path: Path, transform=None) -> tuple[torch.nn.Module, object]:
    state = to_upstream(net)
    if transform:
        state = transform(state)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(state, path)
    return load_state(path)


@pytest.mark.parametrize("kwargs", [
    {"n_blocks": 6, "ngf": 8},
    {"n_blocks": 9, "ngf": 4},
    {"n_blocks": 9, "ngf": 12, "dropout": True},
    {"n_blocks": 2, "ngf": 6, "padding": "zero"},
    {"n_blocks": 3, "ngf": 4, "padding": "zero", "dropout": True},
    {"n_blocks": 2, "ngf": 4, "norm": "batch"},
    {"n_blocks": 2, "ngf": 4, "in_channels": 1, "out_channels": 3},
])
def test_resnet_layouts_are_read_from_the_tensors(kwargs, tmp_path: Path):
    torch.manual_seed(0)
    net = ResnetGenerator(**kwargs).eval()
    loaded, layout = _roundtrip(net, tmp_path)
    expected = {"in_channels": 3, "out_channels": 3, "norm": "instance", "dropout": False, "padding": "reflect",
                **kwargs}
    assert layout.arch == "resnet" and {k: layout.kwargs[k] for k in expected} == expected
    x = torch.rand(2, kwargs.get("in_channels", 3), 20, 24) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


@pytest.mark.parametrize("kwargs", [{"num_downs": 5, "ngf": 4}, {"num_downs": 7, "ngf": 2},
                                    {"num_downs": 6, "ngf": 3, "norm": "batch"}])
def test_unet_layouts_are_read_from_the_tensors(kwargs, tmp_path: Path):
    torch.manual_seed(0)
    net = UnetGenerator(**kwargs).eval()
    loaded, layout = _roundtrip(net, tmp_path)
    assert layout.arch == "unet"
    assert {k: layout.kwargs[k] for k in kwargs} == kwargs
    x = torch.rand(1, 3, 2 ** kwargs["num_downs"], 2 ** kwargs["num_downs"] * 2) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_prefixes_running_stats_half_precision_and_the_legacy_format_are_handled(tmp_path: Path):
    torch.manual_seed(1)
    net = ResnetGenerator(ngf=4, n_blocks=2).eval()

    def as_saved_in_2018_from_data_parallel(state):
        out = {}
        for key, value in state.items():
            out[f"module._orig_mod.{key}"] = value
        for index in (2, 5, 8):  # instance norms of the stem and the downsamplings carried running stats then
            out[f"module.model.{index}.running_mean"] = torch.zeros(1)
            out[f"module.model.{index}.running_var"] = torch.ones(1)
            out[f"module.model.{index}.num_batches_tracked"] = torch.tensor(0)
        return out

    loaded, layout = _roundtrip(net, tmp_path, as_saved_in_2018_from_data_parallel)
    assert len(layout.dropped) == 9
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))

    half = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in net.state_dict().items()}, half)
    loaded_half, _ = load_state(half)
    assert next(loaded_half.parameters()).dtype == torch.float32
    legacy = tmp_path / "legacy.pth"  # the pre-1.6 pickle format, as the oldest zoo files are
    torch.save(net.state_dict(), legacy, _use_new_zipfile_serialization=False)
    with torch.no_grad():
        torch.testing.assert_close(load_state(legacy)[0](x), net(x))


def test_a_file_matching_no_layout_says_what_was_found(tmp_path: Path):
    from translate.nets import PatchDiscriminator

    disc = tmp_path / "latest_net_D_A.pth"
    torch.save(PatchDiscriminator(ndf=4, n_layers=2).state_dict(), disc)
    with pytest.raises(CheckpointError, match="no known generator layout.*model.0.weight.*discriminator"):
        load_state(disc)
    odd = tmp_path / "odd.pth"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, odd)
    with pytest.raises(CheckpointError, match=r"found encoder.weight \[3, 3\]"):
        load_state(odd)
    cut = to_upstream(ResnetGenerator(ngf=4, n_blocks=3))
    del cut["model.11.conv_block.5.bias"]  # one tensor short: no guess may load it anyway
    with pytest.raises(CheckpointError, match="does not fit.*missing model.11.conv_block.5.bias"):
        infer_layout(cut)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "weights": {"a": torch.zeros(1)}}, wrapped)
    with pytest.raises(CheckpointError, match="neither a translate checkpoint nor a generator's state dict"):
        load_generator(wrapped)


def test_a_classic_file_translates_one_way_only(tmp_path: Path):
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(to_upstream(ResnetGenerator(ngf=4, n_blocks=1)), path)
    with pytest.raises(CheckpointError, match="one way only"):
        load_generator(path, "BtoA")

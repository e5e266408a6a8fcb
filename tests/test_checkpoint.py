from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from translate.checkpoint import FORMAT_VERSION, load_net, load_checkpoint
from translate.errors import CheckpointError


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def block(model: str = "cyclegan", version: int = FORMAT_VERSION) -> dict:
    return {"format_version": version, "model": model, "config": {}, "state": {},
            "nets": {"g_ab": {"kind": "generator", "arch": "resnet", "kwargs": {"ngf": 4, "n_blocks": 1}}}}


def test_load_checks_kind_version_and_safety(tmp_path: Path):
    good = _save(tmp_path / "ok.ckpt", {"translate": block(), "state_dict": {}})
    assert load_checkpoint(good, expect_model="cyclegan")["translate"]["model"] == "cyclegan"
    with pytest.raises(CheckpointError, match="checkpoint of a cyclegan model, expected discogan"):
        load_checkpoint(good, expect_model="discogan")
    with pytest.raises(CheckpointError, match="newer than this translate supports"):
        load_checkpoint(_save(tmp_path / "new.ckpt", {"translate": block(version=FORMAT_VERSION + 1)}))
    with pytest.raises(CheckpointError, match="not a translate checkpoint"):
        load_checkpoint(_save(tmp_path / "other.ckpt", {"state_dict": {}}))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


class Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/translate-pwned"),))


def test_pickled_code_is_refused_not_run(tmp_path: Path):
    marker = Path("/tmp/translate-pwned")
    marker.unlink(missing_ok=True)
    path = _save(tmp_path / "evil.ckpt", {"translate": block(), "payload": Evil()})
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_build_net_rebuilds_weights_and_reports_mismatch(tmp_path: Path):
    from translate.nets import ResnetGenerator

    net = ResnetGenerator(ngf=4, n_blocks=1)
    ckpt = {"translate": block(), "state_dict": {f"g_ab.{k}": v for k, v in net.state_dict().items()}}
    rebuilt = load_net(ckpt, "g_ab")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(rebuilt(x), net.eval()(x))
    with pytest.raises(CheckpointError, match="no net 'g_ba'"):
        load_net(ckpt, "g_ba")
    ckpt["translate"]["nets"]["g_ab"]["kwargs"]["ngf"] = 8
    with pytest.raises(CheckpointError, match="do not match"):
        load_net(ckpt, "g_ab")


def _good(**block_changes) -> dict:
    from translate.nets import ResnetGenerator

    net = ResnetGenerator(ngf=4, n_blocks=1)
    return {"translate": {**block(), **block_changes},
            "state_dict": {f"g_ab.{k}": v for k, v in net.state_dict().items()}}


def _spec(**changes) -> dict:
    return {"g_ab": {**block()["nets"]["g_ab"], **changes}}


@pytest.mark.parametrize("change, match", [
    (lambda c: c.pop("state_dict"), "no 'state_dict'"),
    (lambda c: c["translate"].pop("nets"), "no 'nets'"),
    (lambda c: c["translate"].pop("config"), "no 'config'"),
    (lambda c: c["translate"].pop("state"), "no 'state'"),
    (lambda c: c.update(state_dict=[1, 2]), "'state_dict' is list, not a mapping"),
    (lambda c: c["state_dict"].update({"g_ab.extra": 3}), "state_dict entry 'g_ab.extra' is int, not a tensor"),
    (lambda c: c["translate"].update(nets=["g_ab"]), "'nets' is list, not a mapping"),
    (lambda c: c["translate"].update(config="x"), "'config' is str, not a mapping"),
    (lambda c: c["translate"].update(model=3), "model 3 is not a name"),
    (lambda c: c["translate"].update(nets={"g_ab": "resnet"}), "net 'g_ab' is str, not a mapping"),
    (lambda c: c["translate"]["nets"]["g_ab"].pop("kind"), "net 'g_ab' has no 'kind'"),
    (lambda c: c["translate"]["nets"]["g_ab"].pop("arch"), "net 'g_ab' has no 'arch'"),
    (lambda c: c["translate"]["nets"]["g_ab"].pop("kwargs"), "net 'g_ab' has no 'kwargs'"),
    (lambda c: c["translate"].update(nets=_spec(kind="critic")), "unknown kind 'critic'"),
    (lambda c: c["translate"].update(nets=_spec(arch="vit")), "unknown generator architecture 'vit'"),
    (lambda c: c["translate"].update(nets=_spec(kwargs=[4, 1])), "kwargs of net 'g_ab' are list"),
    (lambda c: c["translate"].update(nets=_spec(kwargs={"ngf": 4, "depth": 2})), "does not take depth"),
    (lambda c: c["translate"].update(nets=_spec(kwargs={"ngf": [4]})), "not plain values: ngf"),
])
def test_malformed_checkpoint_is_named_not_a_traceback(tmp_path: Path, change, match):
    ckpt = _good()
    change(ckpt)
    path = _save(tmp_path / "bad.ckpt", ckpt)
    with pytest.raises(CheckpointError, match=match):
        load_net(load_checkpoint(path), "g_ab")


def test_constructor_refusing_saved_kwargs_is_a_checkpoint_error(tmp_path: Path):
    ckpt = _good(nets=_spec(kwargs={"ngf": 4, "n_blocks": -1}))  # ResnetGenerator raises ValueError
    with pytest.raises(CheckpointError, match="net 'g_ab' cannot be built from its kwargs.*n_blocks"):
        load_net(ckpt, "g_ab")
    ckpt = _good(nets=_spec(kwargs={"ngf": "four"}))  # TypeError inside the constructor
    with pytest.raises(CheckpointError, match="net 'g_ab' cannot be built"):
        load_net(ckpt, "g_ab")


@pytest.mark.parametrize("version, match", [
    ("1", r"malformed format_version '1'"),
    (1.0, r"malformed format_version 1\.0"),
    (True, r"malformed format_version True"),
    (0, r"malformed format_version 0"),
    (None, r"no format_version"),
    (FORMAT_VERSION + 1, "newer than this translate supports"),
])
def test_format_version_malformed_or_newer(tmp_path: Path, version, match):
    ckpt = _good(format_version=version)
    if version is None:
        del ckpt["translate"]["format_version"]
    path = _save(tmp_path / "v.ckpt", ckpt)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        assert "newer" not in str(err.value)


def _png(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="PNG")
    return path


def _pt2(path: Path) -> Path:
    program = torch.export.export(torch.nn.Conv2d(3, 3, 1), (torch.rand(1, 3, 8, 8),))
    torch.export.save(program, path)
    return path


@pytest.mark.parametrize("make, match", [
    (lambda p: _png(p), "a PNG image, not a checkpoint"),
    (lambda p: p.write_text("model:\n  name: cyclegan\n"), r"a text file \(YAML\?\), not a checkpoint"),
    (lambda p: p.write_text("caf\u00e9 " * 200, encoding="utf-8"), r"a text file \(YAML\?\)"),
    (lambda p: _pt2(p), r"a torch.export program \(.pt2\) for serving without translate; give the .ckpt"),
    (lambda p: p.write_bytes(b""), "an empty file"),
    (lambda p: p.write_bytes(_zip_without_pickle()), "zip archive that is not a PyTorch checkpoint"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 40), "damaged or incomplete zip archive"),
])
def test_other_files_are_named_for_what_they_are(tmp_path: Path, make, match):
    path = tmp_path / "given.ckpt"
    make(path)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint(path)
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


def _zip_without_pickle() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "hello")
    return buffer.getvalue()


class RunsShell:
    marker: Path

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickled_global_is_refused_by_name_without_unsafe_advice(tmp_path: Path, zip_format: bool):
    payload = RunsShell()
    payload.marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"translate": block(), "state_dict": {}, "payload": payload}, path,
               _use_new_zipfile_serialization=zip_format)
    assert path.read_bytes()[:4] == b"PK\x03\x04" if zip_format else path.read_bytes()[0] == 0x80
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "refused because loading it would run code" in message
    assert re.search(r"GLOBAL (os|posix|nt)\.system", message)
    assert "weights_only" not in message and "\n" not in message
    assert not payload.marker.exists()


def test_refused_pickle_through_the_cli_is_one_line(tmp_path: Path):
    from typer.testing import CliRunner

    from translate.cli import app

    payload = RunsShell()
    payload.marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"translate": block(), "state_dict": {}, "payload": payload}, path)
    (tmp_path / "in").mkdir()
    _png(tmp_path / "in" / "x.png")
    for args in (["convert", str(path), str(tmp_path / "in"), str(tmp_path / "out")],
                 ["export", str(path), str(tmp_path / "gen")],
                 ["convert", str(_pt2(tmp_path / "gen.pt2")), str(tmp_path / "in"), str(tmp_path / "out")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0, result.output
        assert isinstance(result.exception, SystemExit), result.exception  # handled, not raised
        assert "Traceback" not in result.output and "weights_only" not in result.output
        assert "refused because" in result.output or "torch.export program" in result.output
    assert not payload.marker.exists()


def _export_file(path: Path, **meta_changes) -> Path:
    import json

    from safetensors.torch import save_file

    from translate.export import EXPORT_VERSION
    from translate.nets import ResnetGenerator

    net = ResnetGenerator(ngf=4, n_blocks=1)
    meta = {"format_version": EXPORT_VERSION, "model": "cyclegan", "direction": "AtoB", "net": "g_ab",
            "kind": "generator", "arch": "resnet", "kwargs": {"ngf": 4, "n_blocks": 1}, "size_multiple": 4,
            "input_range": [-1, 1], **meta_changes}
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path), metadata={"translate": json.dumps(meta)})
    return path


@pytest.mark.parametrize("changes, match", [
    ({"format_version": "1"}, r"malformed format_version '1'"),
    ({"format_version": None}, r"malformed format_version None|no format_version"),
    ({"format_version": 99}, "export format 99 is newer than this translate supports"),
    ({"kwargs": {"ngf": 4, "n_blocks": 1, "depth": 3}}, r"resnet generator\) does not take depth"),
    ({"kwargs": {"ngf": 4, "n_blocks": -1}}, "cannot be built from its kwargs"),
    ({"kwargs": "ngf=4"}, "kwargs of net 'generator' are str, not a mapping"),
    ({"kwargs": {"ngf": {"x": 1}}}, "not plain values: ngf"),
    ({"arch": "vit"}, "unknown generator architecture 'vit'"),
    ({"kind": "discriminator"}, "not a generator"),
    ({"direction": 7}, "unknown direction 7"),
])
def test_malformed_generator_file_is_a_checkpoint_error(tmp_path: Path, changes, match):
    from translate.export import load_exported

    assert load_exported(_export_file(tmp_path / "ok.safetensors"), "AtoB") is not None
    path = _export_file(tmp_path / "bad.safetensors", **changes)
    with pytest.raises(CheckpointError, match=match):
        load_exported(path)


OLD = Path(__file__).parent / "fixtures" / "resume_v1"


def test_a_checkpoint_from_before_the_new_layout_resumes_bit_exact(unpaired: Path, tmp_path: Path):
    """epoch1.ckpt was written by the code before the one-way architecture (its config holds sentinels such
    as pool_size -1 and n_critic 0, and keys of all three models); today's code resumes it for one more
    epoch and must land on the weights, pools and optimizer state the old code reached (bit-exact on its machine)
    (tests/fixtures/make_resume_v1.py)."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from conftest import TINY
    from translate.cli import app

    cfg = {**TINY, "data": {**TINY["data"], "dataset": str(unpaired)},
           "train": {**TINY["train"], "out_dir": str(tmp_path / "runs")}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "runs" / "old").mkdir(parents=True)
    shutil.copy(OLD / "epoch1.ckpt", tmp_path / "runs" / "old" / "last.ckpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # as when the fixture was written: CPU kernels split their sums by thread count
    try:
        result = CliRunner().invoke(app, ["fit", str(tmp_path / "tiny.yaml"), "--name", "old", "--max-epochs", "2",
                                          "--resume"], catch_exceptions=False)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    now = torch.load(tmp_path / "runs" / "old" / "last.ckpt", map_location="cpu", weights_only=True)
    then = torch.load(OLD / "epoch2.pt", map_location="cpu", weights_only=True)
    assert now["global_step"] == then["global_step"] == 16
    assert now["state_dict"].keys() == then["state_dict"].keys()
    # Bit-exact on the machine that wrote the fixture; another CPU (AVX2 or AVX-512, Intel or AMD) rounds its
    # sums differently, so every weight must match to float noise (1e-6 against updates of about 1e-3 per
    # epoch), except the biases of convolutions that feed an instance norm: the norm subtracts them again,
    # their exact gradient is zero, and Adam turns the rounding noise left in it into full-size steps, so
    # their values are noise on any machine (the classic code has the same).
    from translate.checkpoint import build_from_spec

    cancelled = set()
    for attr, spec in now["translate"]["nets"].items():
        modules = list(build_from_spec(attr, spec).named_modules())
        for (name, module), (_, after) in zip(modules, modules[1:]):
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and module.bias is not None \
                    and isinstance(after, torch.nn.InstanceNorm2d):
                cancelled.add(f"{attr}.{name}.bias")
    assert "g_ab.model.1.bias" in cancelled and "g_ab.model.1.weight" not in cancelled
    start = torch.load(OLD / "epoch1.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    compared = 0
    for key, value in then["state_dict"].items():
        if key not in cancelled and value.is_floating_point():
            assert (now["state_dict"][key] - value).abs().max() <= 1e-6, key
            compared += int(not torch.equal(value, start[key]))  # weights this epoch moved
    assert compared > 20
    for pool in ("pool_a", "pool_b"):
        assert torch.allclose(now["translate"]["state"][pool]["images"], then["pools"][pool]["images"],
                              rtol=0, atol=1e-5)
    for ours, theirs in zip(now["optimizer_states"], then["optimizer_states"]):
        for index, state in theirs["state"].items():
            assert ours["state"][index]["exp_avg"].shape == state["exp_avg"].shape
            assert int(ours["state"][index]["step"]) == int(state["step"])
            for moment in ("exp_avg", "exp_avg_sq"):
                assert torch.allclose(ours["state"][index][moment], state[moment], rtol=1e-4, atol=1e-5), moment


# ----------------------------------------------------------------- the block and load_generator on real files

def _fit(config: Path, name: str) -> Path:
    from typer.testing import CliRunner

    from translate.cli import app

    result = CliRunner().invoke(app, ["fit", str(config), "--name", name, "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    return config.parent / "runs" / name / "last.ckpt"


@pytest.fixture
def fitted(tiny_config: Path) -> Path:
    """last.ckpt of a tiny CycleGAN after one batch."""
    return _fit(tiny_config, "c")


def _assert_net_is(net: torch.nn.Module, ckpt: dict, attr: str) -> None:
    """`net` holds exactly the weights the checkpoint's state_dict has under ``attr.``."""
    saved = {k[len(attr) + 1:]: v for k, v in ckpt["state_dict"].items() if k.startswith(attr + ".")}
    ours = net.state_dict()
    assert saved and ours.keys() == saved.keys(), attr
    assert all(torch.equal(ours[k], v) for k, v in saved.items()), attr
    assert not net.training


def test_the_block_a_fitted_model_writes_round_trips_through_check_block(fitted: Path):
    from translate.checkpoint import check_block, write_block
    from translate.config import from_dict
    from translate.models import build_model

    ckpt = torch.load(fitted, map_location="cpu", weights_only=True)
    block = check_block(ckpt, expect_model="cyclegan", path=fitted)
    assert block is ckpt["translate"] and block["format_version"] == FORMAT_VERSION
    assert set(block["nets"]) == {"g_ab", "g_ba", "d_a", "d_b"} and set(block["state"]) == {"pool_a", "pool_b"}
    # a model rebuilt from the block alone writes the same block, and takes the saved state back
    model = build_model(from_dict(block["config"]))
    model.on_load_checkpoint(ckpt)
    again = write_block(model.name, model.cfg.to_dict(), model.net_specs, model.extra_state())
    assert {k: v for k, v in again.items() if k != "state"} == {k: v for k, v in block.items() if k != "state"}
    for pool in ("pool_a", "pool_b"):
        assert torch.equal(again["state"][pool]["images"], block["state"][pool]["images"])
    rebuilt = {"translate": again, "state_dict": model.state_dict()}
    assert check_block(rebuilt, expect_model="cyclegan") is again
    with pytest.raises(CheckpointError, match="checkpoint of a cyclegan model, expected genegan"):
        check_block(rebuilt, expect_model="genegan")


def test_load_generator_gives_the_right_net_from_each_kind_of_source(fitted: Path, tmp_path: Path):
    from translate.checkpoint import load_generator
    from translate.export import export

    ckpt = torch.load(fitted, map_location="cpu", weights_only=True)
    for direction, attr in (("AtoB", "g_ab"), ("BtoA", "g_ba")):
        found = load_generator(fitted, direction)
        _assert_net_is(found.net, ckpt, attr)
        assert (found.origin, found.model, found.direction, found.path) == ("checkpoint", "cyclegan", direction, fitted)
        assert found.config == ckpt["translate"]["config"]
        assert (found.arch, found.kwargs) == (ckpt["translate"]["nets"][attr]["arch"],
                                              ckpt["translate"]["nets"][attr]["kwargs"])
    weights = export(fitted, tmp_path / "gen", direction="BtoA", program=False).weights
    for asked in ("BtoA", None):  # None: whichever the export holds
        found = load_generator(weights, asked)
        _assert_net_is(found.net, ckpt, "g_ba")
        assert (found.origin, found.direction, found.config) == ("export", "BtoA", None)
    with pytest.raises(CheckpointError, match="holds the BtoA generator"):
        load_generator(weights, "AtoB")
    classic = tmp_path / "latest_net_G_A.pth"
    torch.save({k[len("g_ab."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("g_ab.")}, classic)
    found = load_generator(classic)
    _assert_net_is(found.net, ckpt, "g_ab")
    assert (found.origin, found.model, found.arch) == ("classic", "cyclegan", "resnet")
    with pytest.raises(CheckpointError, match="one way only"):
        load_generator(classic, "BtoA")
    with pytest.raises(CheckpointError, match="give a direction"):
        load_generator(fitted, None)


def test_load_generator_gives_swap_the_genegan_net_and_refuses_other_models(fitted: Path, tmp_path: Path,
                                                                           unpaired: Path):
    import yaml

    from conftest import TINY
    from translate.checkpoint import SWAP_NET, load_generator

    cfg = {**TINY, "model": {"name": "genegan", "generator": {"ngf": 8}, "discriminator": {"ndf": 8}},
           "data": {**TINY["data"], "dataset": str(unpaired), "load_size": 32, "batch_size": 2},
           "train": {**TINY["train"], "out_dir": str(tmp_path / "runs")}}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(cfg))
    genegan = _fit(tmp_path / "g.yaml", "g")
    ckpt = torch.load(genegan, map_location="cpu", weights_only=True)
    found = load_generator(genegan, net=SWAP_NET)
    _assert_net_is(found.net, ckpt, "g")
    assert (found.model, found.arch, found.direction, found.config["data"]["crop_size"]) == ("genegan", "genegan",
                                                                                             None, 32)
    with pytest.raises(CheckpointError, match="a cyclegan checkpoint; swap and interpolate need a genegan checkpoint"):
        load_generator(fitted, net=SWAP_NET)
    with pytest.raises(CheckpointError, match="no AtoB generator.*translate swap"):
        load_generator(genegan, "AtoB")
    with pytest.raises(CheckpointError, match="checkpoint not found: horse2zebra$"):  # no zoo lookup for a net
        load_generator("horse2zebra", net=SWAP_NET)

"""ONNX export and the onnxruntime generator: dynamic shapes, metadata, the parity gate, the CLI, CPU only."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import TINY, make_domain  # noqa: E402
from translate import onnx_runtime  # noqa: E402
from translate.cli import app  # noqa: E402
from translate.errors import CheckpointError, ConfigError, TranslateError  # noqa: E402
from translate.export import export  # noqa: E402
from translate.nets.resnet import ResnetGenerator  # noqa: E402
from translate.nets.unet import UnetGenerator  # noqa: E402
from translate.onnx_runtime import OnnxGenerator, OnnxUnavailable, export_onnx, onnx_generator_for, require_onnx  # noqa: E402

runner = CliRunner()
HEADER = {"format_version": 1, "model": "cyclegan", "direction": "BtoA", "kind": "generator", "arch": "resnet",
          "kwargs": {"ngf": 4, "n_blocks": 2}}


def _tiny(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return (ResnetGenerator(ngf=4, n_blocks=2) if kind == "resnet" else UnetGenerator(num_downs=5, ngf=4)).eval()


@pytest.fixture(scope="module")
def nets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[torch.nn.Module, Path]]:
    """Each tiny generator exported once: (net, its .onnx file)."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for kind in ("resnet", "unet"):
        net = _tiny(kind)
        path = folder / f"{kind}.onnx"
        assert export_onnx(net, path, header={**HEADER, "arch": kind}) <= 1e-4
        out[kind] = (net, path)
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN checkpoint (one training step), as tests/test_infer.py makes it."""
    root = tmp_path_factory.mktemp("ckpt")
    for i, (split, n) in enumerate({"trainA": 4, "trainB": 3, "testA": 2, "testB": 2}.items()):
        make_domain(root / "data" / split, n, seed=i)
    cfg = {**TINY, "data": {**TINY["data"], "dataset": str(root / "data")},
           "train": {**TINY["train"], "out_dir": str(root / "runs")}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["fit", str(root / "tiny.yaml"), "--name", "c", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    return root / "runs" / "c" / "last.ckpt"


SHAPES = {"resnet": [(1, 3, 8, 12), (3, 3, 20, 16), (2, 3, 64, 44)],
          "unet": [(1, 3, 32, 64), (2, 3, 64, 96), (3, 3, 128, 64)]}


@pytest.mark.parametrize("kind", ["resnet", "unet"])
def test_export_runs_at_other_shapes_and_batches(nets, kind: str):
    net, path = nets[kind]
    runtime = OnnxGenerator(path)
    g = torch.Generator().manual_seed(1)
    for shape in SHAPES[kind]:
        x = torch.rand(*shape, generator=g) * 2 - 1
        with torch.no_grad():
            expected = net(x)
        y = runtime(x)
        assert y.dtype == torch.float32 and y.shape == expected.shape
        assert (y - expected).abs().max().item() <= 1e-4, shape
    names = [d.dim_param for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    assert names[0] and names[2] and names[3] and not names[1]  # batch, H, W symbolic; channels fixed


def test_metadata_round_trips_from_path_and_bytes(nets):
    for kind, (net, path) in nets.items():
        for source in (path, path.read_bytes()):
            runtime = OnnxGenerator(source, threads=1)
            assert runtime.size_multiple == net.size_multiple  # 4 and 32
            assert runtime.header == {**HEADER, "arch": kind}
    props = {p.key: p.value for p in onnx.load(str(nets["unet"][1])).metadata_props}
    assert props["size_multiple"] == "32" and '"direction": "BtoA"' in props["translate"]


def test_runtime_generator_follows_the_torch_interface(nets):
    net, path = nets["resnet"]
    runtime = OnnxGenerator(path)
    assert runtime.eval() is runtime and runtime.to("cpu") is runtime
    assert runtime.to(memory_format=torch.channels_last) is runtime
    x = (torch.rand(2, 3, 12, 16) * 2 - 1).to(memory_format=torch.channels_last).half()  # non-contiguous, fp16
    with torch.inference_mode():
        y = runtime(x)
        assert y.dtype == torch.float32 and (y - net(x.float())).abs().max().item() <= 1e-4
    with pytest.raises(TranslateError, match="runs on the CPU"):
        runtime.to("cuda")
    with pytest.raises(TranslateError, match="runs on the CPU"):
        runtime.cuda()
    with pytest.raises(TranslateError, match="float32"):
        runtime.to(torch.float16)
    with pytest.raises(TranslateError, match="multiples of 4"):
        runtime(torch.zeros(1, 3, 10, 12))


def test_onnx_generator_for_a_net_matches_it_and_is_quiet(capfd):
    net = _tiny("unet")
    runtime = onnx_generator_for(net, threads=1)
    assert isinstance(runtime, OnnxGenerator) and runtime.size_multiple == 32 and runtime.header == {}
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        assert (runtime(x) - net(x)).abs().max().item() <= 1e-4
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no exporter chatter


def test_broken_parity_keeps_nothing(nets, tmp_path: Path, monkeypatch):
    net, _ = nets["resnet"]
    run = OnnxGenerator.forward
    monkeypatch.setattr(OnnxGenerator, "forward", lambda self, x: run(self, x) + 1e-3)
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"old")  # an existing file is not replaced by a bad export
    with pytest.raises(CheckpointError, match="does not reproduce"):
        export_onnx(net, path)
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]  # and no temporary is left


def test_broken_parity_in_export_removes_every_file(checkpoint: Path, tmp_path: Path, monkeypatch):
    run = OnnxGenerator.forward
    monkeypatch.setattr(OnnxGenerator, "forward", lambda self, x: run(self, x) * 0)
    with pytest.raises(CheckpointError, match="does not reproduce"):
        export(checkpoint, tmp_path / "gen", fmt="onnx")
    assert list(tmp_path.iterdir()) == []


def test_cli_export_format_onnx(checkpoint: Path, tmp_path: Path):
    from translate.checkpoint import load_generator

    out = tmp_path / "gen"
    result = runner.invoke(app, ["export", str(checkpoint), str(out), "--format", "onnx", "--direction", "BtoA"])
    assert result.exit_code == 0, result.output
    assert f"onnx: {out}.onnx" in result.output and "parity" in result.output and "onnx " in result.output
    assert "[torch.onnx]" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gen.onnx", "gen.safetensors"]  # no .pt2
    runtime = OnnxGenerator(tmp_path / "gen.onnx")
    assert runtime.header["direction"] == "BtoA" and runtime.header["arch"] == "resnet"
    assert runtime.header["kwargs"]["ngf"] == 4 and runtime.size_multiple == 4
    x = torch.rand(2, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        assert (runtime(x) - load_generator(checkpoint, "BtoA").net(x)).abs().max().item() <= 1e-4
    before = (tmp_path / "gen.onnx").read_bytes()
    again = runner.invoke(app, ["export", str(checkpoint), str(out), "--format", "onnx"])
    assert again.exit_code != 0 and "already exist" in again.output
    assert (tmp_path / "gen.onnx").read_bytes() == before
    forced = runner.invoke(app, ["export", str(checkpoint), str(out) + ".onnx", "--format", "onnx", "--force"])
    assert forced.exit_code == 0, forced.output


def test_cli_export_refuses_bad_format_choices(checkpoint: Path, tmp_path: Path):
    bogus = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "g"), "--format", "tflite"])
    assert bogus.exit_code == ConfigError.exit_code and "pt2, onnx" in bogus.output
    both = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "g"), "--format", "onnx", "--no-program"])
    assert both.exit_code == ConfigError.exit_code and "--no-program" in both.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("missing", ["onnxruntime", "onnxscript"])
def test_require_onnx_names_the_extra(missing: str, checkpoint: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setitem(sys.modules, missing, None)  # import raises ImportError
    with pytest.raises(OnnxUnavailable, match=r"pip install 'translate\[onnx\]'") as info:
        require_onnx()
    assert isinstance(info.value, TranslateError) and "\n" not in str(info.value)
    assert str(info.value).startswith(onnx_runtime.INSTALL_HINT)
    result = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "g"), "--format", "onnx"])
    assert result.exit_code == 1 and "translate[onnx]" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # refused before anything is written
    if missing == "onnxscript":
        require_onnx(exporter=False)  # the runtime alone needs only onnxruntime


def test_convert_with_the_onnxruntime_backend_matches_torch_and_reuses_its_export(checkpoint: Path, tmp_path: Path,
                                                                                 monkeypatch):
    import numpy as np
    from PIL import Image

    monkeypatch.setenv("TRANSLATE_MODELS_DIR", str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    make_domain(photos, 3, seed=7, size=28)
    exports = []
    real = onnx_runtime._export_checked
    monkeypatch.setattr(onnx_runtime, "_export_checked", lambda *a, **k: exports.append(1) or real(*a, **k))
    outs = {}
    for name, args in (("torch", ["--precision", "32"]), ("ort", ["--backend", "onnxruntime"]),
                       ("ort2", ["--backend", "onnxruntime"])):
        result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(tmp_path / name), "-q", *args])
        assert result.exit_code == 0, result.output
        outs[name] = [np.asarray(Image.open(tmp_path / name / p.name), dtype=int) for p in sorted(photos.iterdir())]
    assert "fp32 (onnxruntime)" in result.output
    assert len(exports) == 1  # the second onnxruntime run found its checked export in the cache
    for ours, ort in zip(outs["torch"], outs["ort"]):
        assert np.abs(ours - ort).max() <= 1
    cached = list((tmp_path / "cache" / "onnx").glob("*.onnx"))
    assert len(cached) == 1
    cached[0].write_bytes(b"garbage")  # a damaged cache entry is exported again, not trusted
    again = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(tmp_path / "ort3"), "-q", "--backend",
                                "onnxruntime"])
    assert again.exit_code == 0, again.output
    assert len(exports) == 2 and onnx.load(str(cached[0])).graph.node
    refused = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(tmp_path / "x"), "--backend",
                                  "onnxruntime", "--precision", "bf16"])
    assert refused.exit_code != 0 and "runs in fp32" in refused.output

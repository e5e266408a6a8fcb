"""The CLI is thin: each command parses its options and hands off to one function. These tests patch that
function and check what it received, so nothing trains or translates; an option left out must reach it as
absent (or None), never as a default the CLI made up. Also: help and --version import neither torch nor
Lightning, the choices help texts list are the registries' own, and an architecture a model cannot use is a
one-line error."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

import translate
from translate import choices
from translate.cli import app
from translate.config import DataConfig, EvalConfig

runner = CliRunner()
HEAVY = ("torch", "pytorch_lightning", "lightning", "torchvision", "torchmetrics")


def run(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


class Recorder:
    """Stands in for the function a command hands off to: records its arguments, returns `returns`."""

    def __init__(self, returns=None) -> None:
        self.returns = returns
        self.calls: list[tuple[tuple, dict]] = []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.returns

    @property
    def args(self) -> tuple:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @property
    def kwargs(self) -> dict:
        assert len(self.calls) == 1, self.calls
        return self.calls[0][1]


def handoff(monkeypatch: pytest.MonkeyPatch, target: str, returns=None) -> Recorder:
    recorder = Recorder(returns)
    monkeypatch.setattr(target, recorder)
    return recorder


# ----------------------------------------------------------------------------- no torch for help


def _heavy_modules_after(argvs: list[list[str]]) -> list[dict]:
    """Run `translate ARGV` for each argv in one fresh interpreter (the first as ``python -m translate.cli``,
    the others as the console script does, ``from translate.cli import app; app()``) and report the heavy
    modules imported after each."""
    script = """
import json, runpy, sys
argvs = json.loads(sys.argv[1])
heavy = %r
out = []
for i, argv in enumerate(argvs):
    sys.argv = ["translate", *argv]
    code = 0
    try:
        if i == 0:
            runpy.run_module("translate.cli", run_name="__main__")
        else:
            from translate.cli import app  # what the console script runs
            app(prog_name="translate")
    except SystemExit as exc:
        code = exc.code or 0
    out.append({"argv": argv, "exit": code, "heavy": sorted(m for m in heavy if m in sys.modules)})
sys.stdout = sys.__stdout__
print("RESULT" + json.dumps(out))
""" % (HEAVY,)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(translate.__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(argvs)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def test_help_and_version_import_neither_torch_nor_lightning():
    for result in _heavy_modules_after([["--help"], ["--version"]]):
        assert result["exit"] == 0 and result["heavy"] == [], result


def test_every_commands_help_imports_neither_torch_nor_lightning():
    command = typer.main.get_command(app)
    argvs = [["--help"]]
    for name, sub in command.commands.items():
        if hasattr(sub, "commands"):  # a group: datasets, models
            argvs += [[name, "--help"], *([name, child, "--help"] for child in sub.commands)]
        else:
            argvs.append([name, "--help"])
    assert len(argvs) > 10
    for result in _heavy_modules_after(argvs):
        assert result["exit"] == 0 and result["heavy"] == [], result


def test_listed_choices_are_the_registries():
    """choices.py reads the torch-free registries and copies the others so help needs no torch; a new loss,
    format or feature extractor must be added there too, or this fails."""
    from translate import checkpoint, evaluate, export, infer, metrics, precision, swap
    from translate.losses import ADVERSARIAL

    assert choices.ADVERSARIAL == tuple(ADVERSARIAL)  # recipes/objectives.py, in the registry's order
    assert choices.CONVERT_PRECISIONS == tuple(precision.PRECISIONS)
    assert choices.BACKENDS == tuple(precision.BACKENDS)
    assert choices.IMAGE_FORMATS == tuple(infer.FORMATS)
    assert choices.EXPORT_FORMATS == tuple(export.FORMATS)
    assert choices.FEATURES == tuple(metrics.FEATURES)
    assert choices.BLENDS == tuple(swap.BLENDS)
    assert choices.WEIGHTS == tuple(checkpoint.WEIGHTS)
    assert choices.DIRECTIONS == tuple(evaluate.DIRECTIONS) == tuple(export.DIRECTIONS)


def _help(*path: str) -> dict[str, str]:
    """{option name: help text} of the command at `path` (e.g. "datasets", "list")."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {param.name: param.help or "" for param in command.params}


def test_help_lists_every_model_objective_and_precision():
    fit = _help("fit")
    assert all(name in fit["model"] for name in ("cyclegan", "discogan", "genegan"))
    assert all(name in fit["adversarial"] for name in choices.ADVERSARIAL)
    assert all(name in fit["precision"] for name in ("32-true", "bf16-mixed", "16-mixed"))
    convert = _help("convert")
    assert all(name in convert["precision"] for name in choices.CONVERT_PRECISIONS)
    assert all(name in convert["backend"] for name in choices.BACKENDS)


@pytest.mark.parametrize("command, option, owner, parameter", [
    ("convert", "direction", "translate.infer:convert", "direction"),
    ("convert", "quality", "translate.infer:convert", "quality"),
    ("convert", "precision", "translate.infer:convert", "precision"),
    ("convert", "backend", "translate.infer:convert", "backend"),
    ("export", "direction", "translate.export:export", "direction"),
    ("export", "program", "translate.export:export", "program"),
    ("export", "fmt", "translate.export:export", "fmt"),
    ("swap", "blend", "translate.swap:swap_files", "blend"),
    ("swap", "blend", "translate.swap:swap_folder", "blend"),
    ("interpolate", "steps", "translate.swap:interpolate_files", "steps"),
    ("interpolate", "grid", "translate.swap:interpolate_files", "grid"),
    ("interpolate", "blend", "translate.swap:interpolate_files", "blend"),
])
def test_defaults_named_in_help_are_the_owners(command: str, option: str, owner: str, parameter: str):
    """An option's help may name its default for the reader; the value lives in the function's signature."""
    import importlib

    module, _, name = owner.partition(":")
    default = inspect.signature(getattr(importlib.import_module(module), name)).parameters[parameter].default
    assert f"(default: {default})" in _help(command)[option]


def test_evaluate_help_names_the_config_defaults():
    from translate.evaluate import evaluate

    options = _help("evaluate")
    assert f"default: {EvalConfig().features})" in options["features"]
    assert f"default: {EvalConfig().max_images})" in options["max_images"]
    assert f"default: {DataConfig().root}/)" in options["data_root"]
    assert inspect.signature(evaluate).parameters["directions"].default == choices.DIRECTIONS
    assert "(default: both)" in options["direction"]


# ----------------------------------------------------------------------------- fit


def test_fit_hands_target_config_overrides_and_flags_to_run_fit(monkeypatch, tmp_path: Path):
    cfg = SimpleNamespace(to_yaml=lambda: "model:\n  name: genegan\n")
    run_fit = handoff(monkeypatch, "translate.train.run_fit", (cfg, tmp_path / "runs" / "x", None))
    result = run("fit", "shapes", "--config", "my.yaml", "--set", "losses.lambda_cycle=5", "-s", "data.flip=false",
                 "--model", "genegan", "--max-steps", "3", "--image-size", "64", "--devices", "0,1", "--dry-run")
    (target, config, overrides, flags), kwargs = run_fit.args, run_fit.kwargs
    assert (target, config, overrides) == ("shapes", "my.yaml", ["losses.lambda_cycle=5", "data.flip=false"])
    assert kwargs == {"resume": False, "dry_run": True}
    assert flags["model.name"] == "genegan" and flags["train.max_steps"] == 3
    assert flags["data.image_size"] == 64 and flags["train.devices"] == "0,1"
    assert "name: genegan" in result.output and "# run folder:" in result.output


def test_fit_flags_not_given_reach_run_fit_as_none(monkeypatch, tmp_path: Path):
    """No CLI-side defaults: what is not given is None, so config.resolve keeps the preset's value."""
    cfg = SimpleNamespace(to_yaml=lambda: "")
    run_fit = handoff(monkeypatch, "translate.train.run_fit", (cfg, tmp_path, None))
    run("fit", "shapes")
    target, config, overrides, flags = run_fit.args
    assert (target, config, overrides) == ("shapes", None, None)
    assert flags and all(value is None for value in flags.values()), flags
    assert run_fit.kwargs == {"resume": False, "dry_run": False}


def test_fit_reports_a_finished_run(monkeypatch, tmp_path: Path):
    from translate.train import FitResult

    done = FitResult(run_dir=tmp_path, checkpoint=tmp_path / "last.ckpt", samples=tmp_path / "latest.png",
                     batches=10, seconds=2.0, batches_now=10)
    handoff(monkeypatch, "translate.train.run_fit", (None, tmp_path, done))
    result = run("fit", "shapes", "--max-steps", "10")
    assert "trained 10 batches" in result.output and str(tmp_path / "last.ckpt") in result.output


# ----------------------------------------------------------------------------- convert, export, evaluate


def test_convert_hands_only_the_given_options_to_infer_convert(monkeypatch, tmp_path: Path):
    from translate.infer import ConvertReport

    convert = handoff(monkeypatch, "translate.infer.convert", ConvertReport(generator="g", precision="fp32"))
    result = run("convert", "horse2zebra", "in", str(tmp_path / "out"), "--quality", "80", "--size", "128",
                 "--skip-existing", "--quiet")
    assert convert.args == ("horse2zebra", "in", tmp_path / "out")
    kwargs = convert.kwargs
    assert kwargs["quality"] == 80 and kwargs["size"] == 128 and kwargs["skip_existing"] is True
    for left_out in ("direction", "fmt", "precision", "backend", "batch_size", "device", "tile", "workers"):
        assert left_out not in kwargs  # infer.convert's own defaults apply
    assert callable(kwargs["progress"]) and callable(kwargs["log"])
    assert "generator: g; fp32" in result.output and "converted 0" in result.output


def test_convert_passes_direction_precision_and_backend(monkeypatch, tmp_path: Path):
    from translate.infer import ConvertReport

    convert = handoff(monkeypatch, "translate.infer.convert", ConvertReport())
    run("convert", "ck.ckpt", "in", str(tmp_path), "--direction", "BtoA", "--precision", "32", "--backend",
        "onnxruntime", "--format", "jpg", "--quiet")
    assert {k: convert.kwargs[k] for k in ("direction", "precision", "backend", "fmt")} == {
        "direction": "BtoA", "precision": "32", "backend": "onnxruntime", "fmt": "jpg"}


def test_export_hands_off_and_leaves_out_what_is_not_given(monkeypatch, tmp_path: Path):
    from translate.export import ExportResult

    done = ExportResult(weights=tmp_path / "g.safetensors", program=None, max_error={"safetensors": 0.0})
    export = handoff(monkeypatch, "translate.export.export", done)
    run("export", "ck.ckpt", str(tmp_path / "g"), "--no-program")
    assert export.args == ("ck.ckpt", tmp_path / "g")
    assert export.kwargs == {"force": False, "program": False}
    export.calls.clear()
    run("export", "ck.ckpt", str(tmp_path / "g"), "--direction", "BtoA", "--format", "onnx", "--force")
    assert export.kwargs == {"force": True, "direction": "BtoA", "fmt": "onnx"}  # program: export's default


REPORT = {"model": "cyclegan", "dataset": "shapes", "path": "eval/report.json",
          "protocol": {"image_size": 32, "features": "pixels"},
          "directions": {"AtoB": {"n_inputs": 2, "n_targets": 2, "fid": 1.0, "kid_mean": 0.0, "kid_std": 0.0,
                                  "do_nothing": {"fid": 2.0}, "skipped": {}}}}


def test_evaluate_hands_off_and_leaves_features_and_max_images_to_the_config(monkeypatch):
    evaluate = handoff(monkeypatch, "translate.evaluate.evaluate", REPORT)
    result = run("evaluate", "ck.ckpt", "shapes")
    assert evaluate.args == ("ck.ckpt", "shapes")
    assert evaluate.kwargs == {"out_dir": None, "root": None, "device": None}
    assert "pixels features" in result.output  # the title says what the report used
    evaluate.calls.clear()
    run("evaluate", "ck.ckpt", "--features", "classifier", "--max-images", "7", "--direction", "BtoA")
    assert evaluate.args == ("ck.ckpt", None)
    kwargs = evaluate.kwargs
    assert (kwargs["features"], kwargs["max_images"], kwargs["directions"]) == ("classifier", 7, ("BtoA",))
    evaluate.calls.clear()
    run("evaluate", "ck.ckpt", "--direction", "both")
    assert evaluate.kwargs["directions"] == ("AtoB", "BtoA")


def test_evaluate_fills_features_and_max_images_from_eval_config(monkeypatch):
    """The owner of the defaults is EvalConfig: evaluate() reads them there when the CLI leaves them out."""
    import translate.evaluate as ev

    class Stop(Exception):
        pass

    seen = {}
    monkeypatch.setattr(ev, "_to_score", lambda checkpoint, directions, weights: (
        "cyclegan", {}, DataConfig(), 0, directions, [], None))
    monkeypatch.setattr(ev, "load_eval_data", lambda cfg, seed, size, max_images: (
        seen.setdefault("max_images", max_images), SimpleNamespace(test_files=[]))[1])
    monkeypatch.setattr(ev, "guard_outputs", lambda *args: None)

    def build_scorer(data, features, device):
        seen["features"] = features
        raise Stop

    monkeypatch.setattr(ev, "build_scorer", build_scorer)
    with pytest.raises(Stop):
        ev.evaluate("ck.ckpt", "shapes", device="cpu")
    assert seen == {"max_images": EvalConfig().max_images, "features": EvalConfig().features}


# ----------------------------------------------------------------------------- GeneGAN, report


def test_swap_one_pair_hands_off_to_swap_files(monkeypatch, tmp_path: Path):
    swap_files = handoff(monkeypatch, "translate.swap.swap_files", (tmp_path / "o.png", tmp_path / "o-removed.png"))
    result = run("swap", "g.ckpt", "--onto", "face.png", "--from", "donor.png", "--out", str(tmp_path / "o.png"))
    assert swap_files.args == (Path("g.ckpt"), Path("donor.png"), Path("face.png"), tmp_path / "o.png", None)
    assert swap_files.kwargs == {}  # blend: swap_files' default
    assert "o-removed.png" in result.output


def test_swap_remove_on_a_folder_hands_off_to_swap_folder(monkeypatch, tmp_path: Path):
    from translate.infer import ConvertReport

    swap_folder = handoff(monkeypatch, "translate.swap.swap_folder", ConvertReport())
    run("swap", "g.ckpt", "--onto", str(tmp_path), "--remove", "--out", str(tmp_path / "out"), "--blend", "none")
    assert swap_folder.args == (Path("g.ckpt"), None, tmp_path, tmp_path / "out")
    assert swap_folder.kwargs == {"skip_existing": False, "blend": "none"}


def test_interpolate_hands_off_to_interpolate_files(monkeypatch, tmp_path: Path):
    interpolate = handoff(monkeypatch, "translate.swap.interpolate_files", tmp_path / "strip.png")
    result = run("interpolate", "g.ckpt", "--onto", "face.png", "--from", "donor.png", "--out", "strip.png",
                 "--steps", "3")
    assert interpolate.args == (Path("g.ckpt"), Path("face.png"), Path("strip.png"))
    assert interpolate.kwargs == {"donor": Path("donor.png"), "corners": None, "steps": 3}  # grid, blend: defaults
    assert "strip.png" in result.output


def test_report_hands_off_to_plot_run(monkeypatch, tmp_path: Path):
    plot = handoff(monkeypatch, "translate.report.plot_run", tmp_path / "report.png")
    run("report", str(tmp_path))
    assert plot.args == (tmp_path, None)


# ----------------------------------------------------------------------------- datasets, models


def test_datasets_list_looks_under_the_config_root_unless_given(monkeypatch, tmp_path: Path):
    on_disk = handoff(monkeypatch, "translate.data.catalog.on_disk", "no")
    run("datasets", "list")
    assert on_disk.calls and all(args[0].parent == Path(DataConfig().root) for args, _ in on_disk.calls)
    on_disk.calls.clear()
    run("datasets", "list", "--root", str(tmp_path))
    assert on_disk.calls and all(args[0].parent == tmp_path for args, _ in on_disk.calls)


def test_datasets_download_hands_off_to_prepare(monkeypatch, tmp_path: Path):
    prepare = handoff(monkeypatch, "translate.data.catalog.prepare", tmp_path / "horse2zebra")
    run("datasets", "download", "horse2zebra")
    assert prepare.args == ("horse2zebra", Path(DataConfig().root))
    assert prepare.kwargs["mirror"] is None
    prepare.calls.clear()
    run("datasets", "download", "horse2zebra", "--root", str(tmp_path), "--url", "http://mirror")
    assert prepare.args == ("horse2zebra", tmp_path) and prepare.kwargs["mirror"] == "http://mirror"


def test_datasets_inspect_hands_off_to_inspect(monkeypatch, tmp_path: Path):
    inspect_ = handoff(monkeypatch, "translate.data.catalog.inspect", [])
    run("datasets", "inspect", str(tmp_path))
    assert inspect_.args == (tmp_path,)


def test_models_list_uses_the_zoo_cache_unless_given(monkeypatch, tmp_path: Path):
    cache_dir = handoff(monkeypatch, "translate.zoo.cache_dir", tmp_path / "zoo-cache")
    result = run("models", "list")
    assert len(cache_dir.calls) == 1 and "zoo-cache" in result.output
    cache_dir.calls.clear()
    result = run("models", "list", "--cache", str(tmp_path / "mine"))
    assert not cache_dir.calls and "mine" in result.output


def test_models_download_and_forget_hand_off(monkeypatch, tmp_path: Path):
    fetch = handoff(monkeypatch, "translate.zoo.fetch", tmp_path / "horse2zebra.pth")
    run("models", "download", "horse2zebra")
    assert fetch.args == ("horse2zebra",)
    assert {k: fetch.kwargs[k] for k in ("mirror", "cache", "force")} == {"mirror": None, "cache": None,
                                                                         "force": False}
    forget = handoff(monkeypatch, "translate.zoo.forget", True)
    result = run("models", "forget", "horse2zebra", "--cache", str(tmp_path))
    assert forget.args == ("horse2zebra", tmp_path) and "sha256 record removed" in result.output


# ----------------------------------------------------------------------------- architectures a model cannot use


def _one_line_error(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)  # a ValueError would escape: a failure here
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_discogan_with_a_discriminator_without_features_is_a_one_line_error(tiny_config: Path, tmp_path: Path):
    msg = _one_line_error("fit", str(tiny_config), "--model", "discogan", "--set", "model.discriminator.arch=genegan",
                          "--max-steps", "1")
    assert "model.discriminator.arch: discogan cannot use the genegan discriminator; it takes discogan, patch" in msg
    assert not (tmp_path / "runs" / "tiny").exists()  # nothing trained, no run folder left behind
    dry = _one_line_error("fit", str(tiny_config), "--model", "discogan", "--set", "model.discriminator.arch=genegan",
                          "--dry-run")  # validation knows which nets a model takes, before anything is built
    assert dry == msg


def test_genegan_with_a_generator_without_split_is_a_one_line_error(tiny_config: Path, tmp_path: Path):
    msg = _one_line_error("fit", str(tiny_config), "--model", "genegan", "--set", "model.generator.arch=resnet",
                          "--max-steps", "1")
    assert "model.generator.arch: genegan cannot use the resnet generator; it takes genegan" in msg


def test_discogan_with_the_patch_discriminator_builds():
    """The patch discriminator has forward_features, so DiscoGAN's feature matching can use it."""
    from translate.config import resolve
    from translate.models import build_model

    cfg = resolve({}, ["model.discriminator.arch=patch", "model.generator.ngf=4", "model.discriminator.ndf=4"],
                  {"model.name": "discogan"})
    assert hasattr(build_model(cfg).d_a, "forward_features")


def test_demo_hands_off_to_serve_with_only_the_options_given(monkeypatch):
    from translate import demo

    seen = {}
    monkeypatch.setattr(demo, "serve", lambda models, **kw: seen.update(models=models, **kw))
    result = runner.invoke(app, ["demo", "a.ckpt", "horse2zebra", "--port", "7999"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == {"models": ["a.ckpt", "horse2zebra"], "port": 7999, "share": False}  # host: serve's 127.0.0.1


def test_demo_without_the_extra_says_how_to_install_it_in_one_line(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio raises ImportError
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 1
    assert result.output.strip() == 'error: translate demo needs the demo extra: pip install "translate[demo]"'

"""translate evaluate / report: FID and KID, feature extractors, built-in checks, eval during training, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.config import resolve
from translate.errors import ConfigError, TranslateError
from translate.evaluate import REPORT_NAME, evaluate
from translate.metrics import (INCEPTION_URL, INCEPTION_URL_ENV, InceptionFeatures, PixelFeatures, build_extractor,
                               extract, fid_kid, paired_checks, share_classified_as, train_classifier)

runner = CliRunner()


def textures(n: int, seed: int, shift: int = 0) -> torch.Tensor:
    """uint8 [n,3,32,32] smooth random images (a colour gradient per image), optionally brightened."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 3, 4, 4, generator=g) * 180
    images = torch.nn.functional.interpolate(base, size=32, mode="bilinear", align_corners=False)
    return (images + shift).clamp(0, 255).round().to(torch.uint8)


def test_fid_and_kid_are_zero_for_a_set_against_itself_and_grow_with_a_shift():
    extractor = PixelFeatures()
    real = extract(extractor, textures(60, seed=0))
    same = fid_kid(real, real)
    other_draw = fid_kid(real, extract(extractor, textures(60, seed=1)))
    shifted = fid_kid(real, extract(extractor, textures(60, seed=0, shift=60)))
    assert abs(same["fid"]) < 1e-3
    # KID's unbiased estimate is slightly negative for identical sets (the x == y pairs count only once)
    assert abs(same["kid_mean"]) < 0.03 * shifted["kid_mean"]
    assert shifted["fid"] > 5 * other_draw["fid"] > 0  # a new draw of the same distribution is close
    assert shifted["kid_mean"] > 20 * abs(other_draw["kid_mean"])
    assert fid_kid(real, real[:7])["kid_subset_size"] == 7  # not torchmetrics' 1000, which fails here


def test_fid_needs_two_images_per_side():
    real = extract(PixelFeatures(), textures(4, seed=0))
    with pytest.raises(TranslateError, match="at least 2"):
        fid_kid(real, real[:1])


def test_a_users_extractor_is_imported_by_name_and_fed_unit_range_images(tmp_path: Path, monkeypatch):
    (tmp_path / "my_features.py").write_text(
        "import torch\n"
        "class Mean(torch.nn.Module):\n"
        "    def forward(self, x):\n"
        "        assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1\n"
        "        return x.mean(dim=(2, 3))\n"
        "def factory():\n"
        "    return Mean()\n"
        "def not_a_module():\n"
        "    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    features = extract(build_extractor("my_features:factory"), textures(5, seed=0))
    assert features.shape == (5, 3)
    with pytest.raises(TranslateError, match="not an nn.Module"):
        build_extractor("my_features:not_a_module")
    with pytest.raises(TranslateError, match="cannot import"):
        build_extractor("no_such_module_here:factory")
    with pytest.raises(TranslateError, match="unknown extractor"):
        build_extractor("inceptoin")


def test_inception_features_use_the_weights_we_loaded():
    """The torchmetrics/torch-fidelity network is built from our (safely loaded) state dict, never its own
    download; here random weights stand in for the real file."""
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception

    with mock.patch.object(tf_inception.FeatureExtractorInceptionV3, "load_state_dict"), \
            mock.patch.object(tf_inception, "load_state_dict_from_url", return_value={}):
        state = InceptionFeatures({}).net.state_dict()
    state["Conv2d_1a_3x3.conv.weight"] = torch.randn_like(state["Conv2d_1a_3x3.conv.weight"]) * 0.05
    extractor = InceptionFeatures(state)
    assert torch.equal(extractor.net.state_dict()["Conv2d_1a_3x3.conv.weight"], state["Conv2d_1a_3x3.conv.weight"])
    features = extract(extractor, textures(2, seed=0))
    assert features.shape == (2, 2048) and torch.isfinite(features).all()


def test_missing_inception_weights_offline_say_how_to_seed_the_cache(tmp_path: Path, monkeypatch, server):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(INCEPTION_URL_ENV, "http://127.0.0.1:9/nothing.pth")  # the discard port: refused
    with pytest.raises(TranslateError) as err:
        build_extractor("inception")
    message = str(err.value)
    name = INCEPTION_URL.rsplit("/", 1)[1]
    assert "Offline?" in message and INCEPTION_URL in message and "--features classifier" in message
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / name) in message
    # a file that is not the weights (a wrong mirror, a captive portal's page) is refused, not unpickled
    root, url = server
    (root / name).write_bytes(b"<html>login</html>")
    monkeypatch.setenv(INCEPTION_URL_ENV, f"{url}/{name}")
    with pytest.raises(TranslateError, match="not the Inception weights"):
        build_extractor("inception")


def square(n: int, size: int = 32, at: int = 8, colour=(200, 40, 40), background=(60, 60, 60)) -> torch.Tensor:
    img = torch.tensor(background, dtype=torch.uint8).view(1, 3, 1, 1).repeat(n, 1, size, size)
    img[:, :, at:at + 10, at:at + 10] = torch.tensor(colour, dtype=torch.uint8).view(1, 3, 1, 1)
    return img


def test_paired_checks_measure_colour_background_and_position():
    target = square(2)
    perfect = paired_checks(square(2), target, target)
    assert perfect == {"colour_error": 0.0, "background_error": 0.0, "position_error_px": 0.0}
    moved = paired_checks(square(2), square(2, at=12), target)
    assert moved["position_error_px"] == pytest.approx(4 * 2 ** 0.5, abs=0.01)
    recoloured = paired_checks(square(2), square(2, colour=(40, 200, 40)), target)
    assert recoloured["colour_error"] > 0.2 and recoloured["background_error"] == 0.0
    dark = paired_checks(square(2), square(2, background=(20, 20, 20)), target)
    assert dark["background_error"] == pytest.approx(40 / 255, abs=1e-4)


def test_domain_classifier_learns_the_builtin_domains(tmp_path: Path):
    from translate.data.builtin import ensure_builtin
    from translate.data.datamodule import load_samples
    from translate.data.io import list_images

    root = ensure_builtin("stripes", tmp_path)
    classifier = train_classifier(list_images(root / "trainA"), list_images(root / "trainB"), size=32, steps=80)
    test_a, test_b = (load_samples(root / split, 16, 32) for split in ("testA", "testB"))
    assert share_classified_as(classifier, test_a, "A") >= 0.9
    assert share_classified_as(classifier, test_b, "B") >= 0.9
    again = train_classifier(list_images(root / "trainA")[:50], list_images(root / "trainB")[:50], size=32, steps=3)
    same = train_classifier(list_images(root / "trainA")[:50], list_images(root / "trainB")[:50], size=32, steps=3)
    assert all(torch.equal(p, q) for p, q in zip(again.parameters(), same.parameters()))  # seeded


@pytest.fixture
def checkpoint(tiny_config: Path, tmp_path: Path) -> Path:
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "e", "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "e" / "last.ckpt"


REPORT_KEYS = {"fid", "kid_mean", "kid_std", "kid_subset_size", "do_nothing", "inputs", "targets", "n_inputs",
               "n_targets", "grid", "skipped"}


def test_evaluate_writes_the_documented_report_and_grids(checkpoint: Path, tmp_path: Path, unpaired: Path):
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", str(checkpoint), str(unpaired), "--features", "pixels", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "FID" in result.output and "AtoB" in result.output and "BtoA" in result.output
    report = json.loads((out / REPORT_NAME).read_text())
    assert {"checkpoint", "model", "dataset", "protocol", "directions", "seconds"} <= set(report)
    assert report["protocol"]["image_size"] == 32 and report["protocol"]["features"] == "pixels"
    for direction, (source, target) in (("AtoB", ("testA", "testB")), ("BtoA", ("testB", "testA"))):
        scores = report["directions"][direction]
        assert REPORT_KEYS <= set(scores)
        assert scores["inputs"] == str(unpaired / source) and scores["targets"] == str(unpaired / target)
        assert scores["n_inputs"] == 2 and scores["fid"] >= 0
        with Image.open(scores["grid"]) as grid:  # inputs above, translations below: 2 rows, 2 columns
            assert grid.size == (2 + 2 * 34, 2 + 2 * 34)
    # an unreadable test image is skipped, named in the report with its reason, and left as it was
    (unpaired / "testA" / "broken.png").write_bytes(b"\x89PNG broken")
    result = runner.invoke(app, ["evaluate", str(checkpoint), str(unpaired), "--features", "pixels", "--out", str(out)])
    assert result.exit_code == 0 and "broken.png" in result.output
    report = json.loads((out / REPORT_NAME).read_text())
    assert list(report["directions"]["AtoB"]["skipped"]) == [str(unpaired / "testA" / "broken.png")]
    assert report["directions"]["AtoB"]["n_inputs"] == 2 and report["directions"]["BtoA"]["n_targets"] == 2
    assert (unpaired / "testA" / "broken.png").read_bytes() == b"\x89PNG broken"
    # one direction only, and a checkpoint that is not one
    only = evaluate(checkpoint, str(unpaired), directions=("BtoA",), features="pixels", out_dir=tmp_path / "only")
    assert list(only["directions"]) == ["BtoA"]
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"nope")
    result = runner.invoke(app, ["evaluate", str(bad), "--features", "pixels"])
    assert result.exit_code != 0 and "a text file (YAML?), not a checkpoint" in result.output


def test_evaluate_uses_the_held_out_images_when_there_is_no_test_folder(checkpoint: Path, tmp_path: Path):
    from conftest import make_domain

    plain = tmp_path / "plain"
    make_domain(plain / "trainA", 40, seed=5)  # 5% held out: 2 images per domain
    make_domain(plain / "trainB", 30, seed=6)
    report = evaluate(checkpoint, str(plain), features="pixels", out_dir=tmp_path / "held")
    scores = report["directions"]["AtoB"]
    assert scores["inputs"] == "2 held-out training images" and scores["n_inputs"] == 2
    assert scores["targets"] == "2 held-out training images"
    with pytest.raises(TranslateError, match="at least 2"):
        evaluate(checkpoint, str(plain), features="pixels", out_dir=tmp_path / "one", max_images=1)


def test_builtin_dataset_gets_classifier_and_paired_checks(tmp_path: Path):
    cfg_args = ["fit", "stripes", "--name", "s", "--max-steps", "1", "--image-size", "32", "--data-root",
                str(tmp_path / "datasets"), "--set", f"train.out_dir={tmp_path / 'runs'}",
                "--set", "model.generator.ngf=4",
                "--set", "model.discriminator.ndf=4", "--set", "data.num_workers=0"]
    assert runner.invoke(app, cfg_args).exit_code == 0
    quick = lambda a, b, size: train_classifier(a, b, size, steps=20)  # noqa: E731
    with mock.patch("translate.evaluate.train_classifier", quick):
        report = evaluate(tmp_path / "runs" / "s" / "last.ckpt", features="classifier", out_dir=tmp_path / "ev",
                          root=str(tmp_path / "datasets"), max_images=6)
    scores = report["directions"]["AtoB"]
    assert scores["n_inputs"] == 6
    assert set(scores["domain_classifier"]) == {"translated", "do_nothing", "real_targets"}
    assert set(scores["paired"]) == {"translated", "do_nothing"}
    assert scores["paired"]["do_nothing"]["background_error"] == 0.0  # the input's background is the target's
    assert scores["paired"]["do_nothing"]["colour_error"] > 0.1  # solid vs striped shape


def test_eval_settings_are_checked():
    with pytest.raises(ConfigError, match="eval.features"):
        resolve({}, ["eval.features=inceptoin"])
    with pytest.raises(ConfigError, match="eval.monitor"):
        resolve({}, ["eval.monitor=lpips"])
    assert resolve({}, ["eval.features=pkg.mod:make"]).eval.features == "pkg.mod:make"


def test_eval_during_training_logs_metrics_keeps_best_and_plots(tiny_config: Path, tmp_path: Path):
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "t", "--max-steps", "4",
                                 "--set", "eval.every=2", "--set", "eval.features=pixels"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "t"
    rows = list(csv.DictReader((run / "logs" / "csv" / "version_0" / "metrics.csv").open()))
    evals = [r for r in rows if r.get("eval/fid")]
    assert [int(r["step"]) for r in evals] == [1, 3]  # batches 2 and 4, on the step axis of the losses
    fids = [float(r["eval/fid"]) for r in evals]
    assert all(float(r["eval/fid"]) == pytest.approx((float(r["eval/fid_AtoB"]) + float(r["eval/fid_BtoA"])) / 2)
               for r in evals)
    best = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in best["callbacks"].items() if k.startswith("Evaluate"))
    assert state["best"] == pytest.approx(min(fids)) and state["best_batch"] == 2 + 2 * fids.index(min(fids))
    # a resumed run keeps the best value found before the stop
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "t", "--max-steps", "6", "--resume",
                                 "--set", "eval.every=2", "--set", "eval.features=pixels"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((run / "logs" / "csv" / "version_1" / "metrics.csv").open()))
    fids += [float(r["eval/fid"]) for r in rows if r.get("eval/fid")]
    last = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    state = next(v for k, v in last["callbacks"].items() if k.startswith("Evaluate"))
    assert len(fids) == 3 and state["best"] == pytest.approx(min(fids))
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    with Image.open(run / "report.png") as plot:
        assert plot.size[0] > 500 and plot.size[1] > 1000  # five panels: g, d, FID, KID, schedules
    result = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert result.exit_code != 0 and "run folder not found" in result.output


def test_report_never_writes_over_the_logs_it_reads(tmp_path: Path):
    run = tmp_path / "run"
    log = run / "logs" / "csv" / "version_0" / "metrics.csv"
    log.parent.mkdir(parents=True)
    log.write_text("step,epoch,g/total,d/total\n" + "".join(f"{i},0,{1 / (i + 1)},{0.5}\n" for i in range(12)))
    before = log.read_bytes()
    result = runner.invoke(app, ["report", str(run), "--out", str(log)])
    assert result.exit_code != 0 and "refusing to write" in result.output and "Traceback" not in result.output
    assert log.read_bytes() == before
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0 and (run / "report.png").is_file()


EVIL = ("import pathlib, torch\n"
        "def factory():\n"
        "    pathlib.Path({marker!r}).write_text('ran')\n"
        "    class Mean(torch.nn.Module):\n"
        "        def forward(self, x):\n"
        "            return x.mean(dim=(2, 3))\n"
        "    return Mean()\n")


def test_a_checkpoint_cannot_choose_code_to_run_or_paths_to_write(tiny_config: Path, tmp_path: Path, monkeypatch,
                                                                  unpaired: Path):
    marker = tmp_path / "marker"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "evil_features.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "h", "--max-epochs", "1"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "runs" / "h" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    saved = ckpt["translate"]["config"]
    saved["eval"].update(features="evil_features:factory", every=1)  # a hostile or doctored checkpoint
    saved["data"]["root"] = str(tmp_path / "planted-root")
    saved["train"]["out_dir"] = str(tmp_path / "planted-out")
    torch.save(ckpt, path)
    # resume: the code the checkpoint names is not imported; it and the paths come from this command's config
    config = yaml.safe_load(tiny_config.read_text())
    config["eval"] = {"features": "pixels"}
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(config))
    result = runner.invoke(app, ["fit", str(mine), "--name", "h", "--resume", "--max-epochs", "2"])
    assert result.exit_code == 0, result.output
    assert not marker.exists() and not (tmp_path / "planted-out").exists()
    resumed = torch.load(path, map_location="cpu", weights_only=True)["translate"]["config"]
    assert resumed["eval"]["features"] == "pixels" and resumed["eval"]["every"] == 1  # the rest is the run's own
    assert resumed["data"]["dataset"] == str(unpaired) and resumed["data"]["root"] == "datasets"
    # evaluate neither follows the saved data.root (a folder would be created there) nor a saved folder
    saved_root = tmp_path / "planted-root"
    result = runner.invoke(app, ["evaluate", str(path), "--features", "pixels", "--out", str(tmp_path / "ev")])
    assert result.exit_code != 0 and "does not follow paths saved in a checkpoint" in result.output
    result = runner.invoke(app, ["evaluate", str(path), str(unpaired), "--features", "pixels",
                                 "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert not marker.exists() and not saved_root.exists()
    # the same function given by the user on the command line is honoured: the test's marker works
    result = runner.invoke(app, ["evaluate", str(path), str(unpaired), "--features", "evil_features:factory",
                                 "--out", str(tmp_path / "ev2")])
    assert result.exit_code == 0, result.output
    assert marker.read_text() == "ran"


def test_evaluate_never_writes_over_a_test_image(checkpoint: Path, tmp_path: Path, unpaired: Path):
    grid_named = unpaired / "testA" / "grid_AtoB.png"  # a test image that happens to bear a grid's name
    grid_named.write_bytes((unpaired / "testA" / "000.png").read_bytes())
    before = grid_named.read_bytes()
    result = runner.invoke(app, ["evaluate", str(checkpoint), str(unpaired), "--features", "pixels",
                                 "--out", str(unpaired / "testA")])
    assert result.exit_code != 0 and "refusing to write" in result.output and grid_named.read_bytes() == before

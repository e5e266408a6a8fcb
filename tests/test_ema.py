"""Moving averages of the generators (train.ema): the update, the models, the checkpoint and every reader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from conftest import batch_of, fit_batches, tiny, write_tiny_config
from translate.checkpoint import checkpoint_generator, load_generator
from translate.cli import app
from translate.config import from_dict
from translate.errors import CheckpointError
from translate.models.ema import averaged, ema_beta, update_ema
from translate.train import build_checked

OLD = Path(__file__).parent / "fixtures" / "resume_v1" / "epoch1.ckpt"  # written before train.ema existed


def run(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_the_update_formula_on_a_toy_net():
    """First update copies; then W_ema <- beta W_ema + (1 - beta) W; buffers are copied, not averaged."""
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = averaged(net, decay=0.9, rampup=0.0)
    assert not any(p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[1].running_mean.fill_(3.0)
    update_ema(ema, net)
    assert torch.equal(ema.module[0].weight, net[0].weight) and int(ema.n_averaged) == 1
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        net[0].weight.fill_(2.0)
        net[1].running_mean.fill_(5.0)
    update_ema(ema, net)
    assert torch.allclose(ema.module[0].weight, 0.9 * before + 0.1 * net[0].weight)
    assert torch.equal(ema.module[1].running_mean, net[1].running_mean)  # copied (StyleGAN2-ADA)
    # the warm-up: beta = min(decay, 0.5 ** (1 / (rampup * t))), StyleGAN2-ADA's ema_rampup in steps
    assert ema_beta(0.999, 0.05, 20) == pytest.approx(0.5)
    assert ema_beta(0.999, 0.05, 1_000_000) == 0.999
    assert ema_beta(0.999, 0.0, 1) == 0.999


def _model(name: str, **train):
    d = tiny(name)
    d["train"] = {**d["train"], "ema": True, **train}
    if name == "genegan":
        d["losses"] = {"critic_burst": 0}
        d["data"] = {**d["data"], "load_size": 32, "batch_size": 2}
    if name == "discogan":
        d["data"] = {**d["data"], "load_size": 64, "crop_size": 64}
    cfg = from_dict(d)
    model = build_checked(cfg)
    return model, [batch_of(cfg.data.batch_size, cfg.data.crop_size, seed=i) for i in range(4)]


@pytest.mark.parametrize("name", ["cyclegan", "discogan", "genegan", "cut"])
def test_ema_differs_from_the_raw_weights_after_steps_and_equals_them_at_decay_0(name: str, tmp_path: Path):
    model, batches = _model(name, ema_decay=0.9, ema_rampup=0.0)
    same, _ = _model(name, ema_decay=0.0)
    fit_batches(model, batches)
    fit_batches(same, batches)
    assert set(model.ema) == set(model.generators) & set(model.net_specs)  # CUT: its heads F make no outputs
    for attr in model.ema:
        raw, ema = getattr(model, attr).state_dict(), model.ema[attr].module.state_dict()
        assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
        raw, ema = getattr(same, attr).state_dict(), same.output_net(attr).state_dict()
        assert all(torch.equal(raw[k], ema[k]) for k in raw)  # parameters and (current) buffers alike
    # what a command reads from the checkpoint: the average by default, the raw weights when asked
    checkpoint = {"state_dict": model.state_dict()}
    model.on_save_checkpoint(checkpoint)
    attr = next(iter(model.ema))
    kw = {"net": "g"} if name == "genegan" else {"direction": "AtoB"}
    found = checkpoint_generator(checkpoint, **kw)
    assert found.weights == "ema"
    for key, value in found.net.state_dict().items():
        assert torch.equal(value, model.ema[attr].module.state_dict()[key]), key
    raw = checkpoint_generator(checkpoint, **kw, weights="raw")
    assert raw.weights == "raw"
    for key, value in raw.net.state_dict().items():
        assert torch.equal(value, getattr(model, attr).state_dict()[key]), key
    if name == "genegan":  # swap and interpolate load it through load_genegan
        from translate.swap import load_genegan

        torch.save(checkpoint, tmp_path / "g.ckpt")
        g, _ = load_genegan(tmp_path / "g.ckpt")
        assert torch.equal(next(iter(g.state_dict().values())), next(iter(found.net.state_dict().values())))


def test_sample_grids_use_the_moving_average():
    model, batches = _model("cyclegan", ema_decay=0.9, ema_rampup=0.0)
    fit_batches(model, batches)
    real = batch_of(2)["A"].float() / 127.5 - 1
    model.eval()
    rows = model.sample_grid(real, real)
    assert torch.equal(rows[1], model.ema["g_ab"].module(real))
    assert not torch.equal(rows[1], model.g_ab(real))


@pytest.fixture
def ema_config(tmp_path: Path, unpaired: Path) -> Path:
    path = write_tiny_config(tmp_path, unpaired)
    cfg = yaml.safe_load(path.read_text())
    cfg["train"].update(ema=True, ema_decay=0.9, ema_rampup=0.0, augment="diffaugment")
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resume_with_ema_and_diffaugment_is_bit_exact(ema_config: Path, tmp_path: Path):
    """2 epochs straight == 1 epoch, stop, resume for the second: raw weights, averages and update counts."""
    run("fit", str(ema_config), "--name", "straight", "--max-epochs", "2")
    run("fit", str(ema_config), "--name", "split", "--max-epochs", "1")
    run("fit", str(ema_config), "--name", "split", "--max-epochs", "2", "--resume")
    a = torch.load(tmp_path / "runs" / "straight" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "runs" / "split" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and int(a["ema.g_ab.n_averaged"]) == 8  # 2 epochs x 4 generator steps
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["ema.g_ab.module.model.1.weight"], a["g_ab.model.1.weight"])


def test_convert_uses_ema_by_default_and_raw_when_asked(ema_config: Path, tmp_path: Path, unpaired: Path):
    run("fit", str(ema_config), "--name", "r", "--max-steps", "3")
    ckpt = tmp_path / "runs" / "r" / "last.ckpt"
    image = unpaired / "testA" / "000.png"
    out = {}
    for weights in ("default", "ema", "raw"):
        extra = [] if weights == "default" else ["--weights", weights]
        result = run("convert", str(ckpt), str(image), str(tmp_path / weights), "--quiet", *extra)
        assert ("EMA weights" in result.output) == (weights != "raw"), result.output
        out[weights] = (tmp_path / weights / "000.png").read_bytes()
    assert out["default"] == out["ema"] != out["raw"]
    # evaluate names the weights it scored and keeps the raw report beside the default one
    from translate.evaluate import evaluate

    report = evaluate(ckpt, str(unpaired), features="pixels", device="cpu", weights="raw")
    assert report["weights"] == "raw" and Path(report["path"]).parent.name == "last-raw"
    # export writes the weights asked for
    from translate.export import export, load_exported

    export(ckpt, tmp_path / "e", program=False)
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(load_exported(tmp_path / "e.safetensors")(x), load_generator(ckpt).net(x))
    with pytest.raises(CheckpointError, match="holds one set of weights"):
        load_generator(tmp_path / "e.safetensors", weights="raw")


def test_an_old_checkpoint_without_ema_loads_converts_and_resumes_with_ema(tmp_path: Path, unpaired: Path):
    found = load_generator(OLD)
    assert found.weights == "raw" and "EMA" not in found.describe()
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_generator(OLD, weights="ema")
    run("convert", str(OLD), str(unpaired / "testA" / "000.png"), str(tmp_path / "out"), "--quiet")
    assert (tmp_path / "out" / "000.png").is_file()
    # resumed with train.ema newly on: the average starts from the weights reached
    config = write_tiny_config(tmp_path, unpaired)
    (tmp_path / "runs" / "old").mkdir(parents=True)
    shutil.copy(OLD, tmp_path / "runs" / "old" / "last.ckpt")
    run("fit", str(config), "--name", "old", "--max-epochs", "2", "--resume", "--set", "train.ema=true")
    state = torch.load(tmp_path / "runs" / "old" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert int(state["ema.g_ab.n_averaged"]) == 4  # the second epoch's generator steps
    assert load_generator(tmp_path / "runs" / "old" / "last.ckpt").weights == "ema"


def test_fine_tuning_starts_the_average_afresh(ema_config: Path, tmp_path: Path):
    run("fit", str(ema_config), "--name", "base", "--max-steps", "3")
    base = tmp_path / "runs" / "base" / "last.ckpt"
    from translate.train import load_init

    model, _ = _model("cyclegan")
    load_init(model, base)
    state = torch.load(base, map_location="cpu", weights_only=True)["state_dict"]
    assert int(model.ema["g_ab"].n_averaged) == 0
    for key, value in model.ema["g_ab"].module.state_dict().items():
        assert torch.equal(value, state[f"g_ab.{key}"]), key  # the raw weights, trained with the discriminators
    plain, _ = _model("cyclegan", ema=False)
    load_init(plain, base)  # a checkpoint with averages initialises a run without them
    assert not len(plain.ema)

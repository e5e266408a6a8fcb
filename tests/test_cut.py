"""CUT and FastCUT: PatchNCE against its formula, the authors' parameter counts, a training step of each,
exact resume with the projection heads, and the generator in every command that takes one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY, batch_of, fit_batches, make_domain, make_unpaired, tiny
from typer.testing import CliRunner

from translate.cli import app
from translate.config import read_preset, resolve
from translate.errors import ConfigError
from translate.losses.patchnce import patch_nce, patch_nce_layers
from translate.models import build_model
from translate.nets import PatchDiscriminator, ResnetGenerator
from translate.nets.common import BlurDownsample, BlurUpsample
from translate.nets.patchnce import PatchProjector, encoder_layers, feature_channels

runner = CliRunner()


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


# --------------------------------------------------------------------------- PatchNCE


def direct_patch_nce(q: torch.Tensor, k: torch.Tensor, batch: int, tau: float) -> torch.Tensor:
    """The loss written out patch by patch: the positive is the same position of the same image, the negatives
    the other positions of that image, plus the authors' masked self-term exp(-10 / tau)."""
    q, k = q.view(batch, -1, q.shape[-1]), k.view(batch, -1, k.shape[-1])
    losses = []
    for b in range(batch):
        for i in range(q.shape[1]):
            pos = torch.exp(q[b, i] @ k[b, i] / tau)
            neg = sum(torch.exp(q[b, i] @ k[b, j] / tau) for j in range(q.shape[1]) if j != i)
            losses.append(-torch.log(pos / (pos + neg + math.exp(-10 / tau))))
    return torch.stack(losses).mean()


def unit(*shape: int, seed: int) -> torch.Tensor:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def test_patch_nce_matches_the_direct_computation():
    q, k = unit(2 * 5, 8, seed=0), unit(2 * 5, 8, seed=1)
    for tau in (0.07, 1.0):
        torch.testing.assert_close(patch_nce(q, k, 2, tau).double(), direct_patch_nce(q, k, 2, tau), rtol=1e-5,
                                   atol=1e-6)
    # positives on the diagonal: keys that equal the queries give a low loss, the same keys shuffled a high one
    assert patch_nce(q, q, 2, 0.07) < 0.01 < 1 < patch_nce(q, q.roll(1, 0), 2, 0.07)
    # negatives come from the same image only: keys of the other image do not enter
    other = k.clone()
    other[5:] = unit(5, 8, seed=2)
    torch.testing.assert_close(patch_nce(q[:5], k[:5], 1, 0.07), patch_nce(q[:5], other[:5], 1, 0.07))
    # keys are detached: only the queries get gradients
    q_, k_ = q.clone().requires_grad_(), k.clone().requires_grad_()
    patch_nce(q_, k_, 2, 0.07).backward()
    assert q_.grad is not None and k_.grad is None


def test_layers_are_averaged_each_with_its_own_mean():
    layers_q = [unit(2 * 3, 4, seed=0), unit(2 * 7, 4, seed=1)]
    layers_k = [unit(2 * 3, 4, seed=2), unit(2 * 7, 4, seed=3)]
    expected = (direct_patch_nce(layers_q[0], layers_k[0], 2, 0.07)
                + direct_patch_nce(layers_q[1], layers_k[1], 2, 0.07)) / 2
    torch.testing.assert_close(patch_nce_layers(layers_q, layers_k, 2, 0.07).double(), expected, rtol=1e-5, atol=1e-6)


def test_patch_nce_is_fp32_under_bf16_autocast():
    q, k = unit(64, 16, seed=0).float(), unit(64, 16, seed=1).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = patch_nce(q.bfloat16(), k.bfloat16(), 1, 0.07)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, patch_nce(q.bfloat16().float(), k.bfloat16().float(), 1, 0.07))


def test_the_projection_samples_the_same_positions_for_queries_and_keys():
    torch.manual_seed(0)
    f = PatchProjector([3, 5], units=8)
    feats = [torch.randn(2, 3, 4, 4), torch.randn(2, 5, 2, 3)]
    out, ids = f(feats, num_patches=10)
    assert [o.shape for o in out] == [(2 * 10, 8), (2 * 6, 8)]  # at most H*W positions per layer
    torch.testing.assert_close(out[0].norm(dim=1), torch.ones(20), atol=1e-5, rtol=0)
    again, same = f(feats, num_patches=10, patch_ids=ids)
    assert all(torch.equal(a, b) for a, b in zip(ids, same)) and all(torch.equal(a, b) for a, b in zip(out, again))


# --------------------------------------------------------------------------- nets: the authors' counts


# The authors' ResnetGenerator / NLayerDiscriminator (models/networks.py) swap a stride-2 conv for a stride-1
# conv of the same shape plus a fixed blur, and a 3x3 transposed conv for a blur plus a 3x3 conv of the same
# shape: the counts are those of CycleGAN's nets with and without antialiasing. Their PatchSampleF heads are
# Linear(C, 256)-ReLU-Linear(256, 256) for the channels C of layers 0, 4, 8, 12, 16: 3, 128, 256, 256, 256.
AUTHORS_G, AUTHORS_D = 11_378_179, 2_764_737
AUTHORS_F = sum(c * 256 + 256 + 256 * 256 + 256 for c in (3, 128, 256, 256, 256))  # 560,384


@pytest.mark.parametrize("antialias", [True, False])
def test_parameter_counts_match_the_authors(antialias: bool):
    g = ResnetGenerator(antialias=antialias, antialias_up=antialias)
    assert count(g) == AUTHORS_G and count(PatchDiscriminator(antialias=antialias)) == AUTHORS_D
    ids = [0, 4, 8, 12, 16]
    # the layers the authors' indices pick in their Sequential, with and without --no_antialias
    picked = [type(encoder_layers(g)[i]).__name__ for i in ids]
    assert picked == (["ReflectionPad2d", "Conv2d", "Conv2d", "ResnetBlock", "ResnetBlock"] if antialias else
                      ["ReflectionPad2d", "Conv2d", "InstanceNorm2d", "ResnetBlock", "ResnetBlock"])
    assert feature_channels(g, ids) == [3, 128, 256, 256, 256]
    assert AUTHORS_F == 560_384 and count(PatchProjector(feature_channels(g, ids))) == AUTHORS_F


def test_the_cut_model_at_the_authors_defaults():
    cfg = resolve({"model": {"name": "cut"}})
    model = build_model(cfg)
    assert (count(model.g_ab), count(model.f), count(model.d_b)) == (AUTHORS_G, AUTHORS_F, AUTHORS_D)
    assert set(model.net_specs) == {"g_ab", "d_b"}  # no B->A generator, no second discriminator
    w, o = cfg.losses, cfg.optim
    assert (w.lambda_gan, w.lambda_nce, w.nce_idt, w.nce_layers, w.num_patches, w.nce_t, w.flip_equivariance) == \
        (1.0, 1.0, True, "0,4,8,12,16", 256, 0.07, False)
    assert (w.adversarial, cfg.model.init_type, cfg.model.init_gain, cfg.model.head_units) == \
        ("lsgan", "xavier", 0.02, 256)
    assert (o.kind, o.lr, o.beta1, o.beta2, o.n_epochs, o.n_epochs_decay, cfg.data.batch_size) == \
        ("adam", 2e-4, 0.5, 0.999, 200, 200, 1)
    fast = resolve({"model": {"name": "fastcut"}})
    assert (fast.losses.lambda_nce, fast.losses.nce_idt, fast.losses.flip_equivariance) == (10.0, False, True)
    assert (fast.optim.n_epochs, fast.optim.n_epochs_decay) == (150, 50)
    assert cfg.model.generator.antialias and cfg.model.generator.antialias_up and cfg.model.discriminator.antialias
    # the optimizer of G steps the projection heads too
    g_params = {id(p) for group in model.configure_optimizers()[0].param_groups for p in group["params"]}
    assert {id(p) for p in model.f.parameters()} <= g_params


def test_blur_resampling_keeps_a_constant_and_the_sizes():
    x = torch.full((1, 2, 8, 6), 0.7)
    torch.testing.assert_close(BlurDownsample(2)(x), torch.full((1, 2, 4, 3), 0.7))
    torch.testing.assert_close(BlurUpsample(2)(x), torch.full((1, 2, 16, 12), 0.7))
    g = ResnetGenerator(ngf=4, n_blocks=1, antialias=True, antialias_up=True)
    assert g(torch.rand(1, 3, 36, 28)).shape == (1, 3, 36, 28)


def test_the_unet_layer_list_is_its_contracting_path():
    from translate.nets import UnetGenerator

    g = UnetGenerator(num_downs=5, ngf=8)
    names = [type(m).__name__ for m in encoder_layers(g)]
    assert names[:5] == ["Identity", "Conv2d", "LeakyReLU", "Conv2d", "InstanceNorm2d"] and len(names) == 13
    assert feature_channels(g, [0, 1, 3, 6]) == [3, 8, 16, 32]


def test_bad_layer_lists_are_config_errors():
    for bad in ("4,0", "a,b", "", "-1,2"):
        with pytest.raises(ConfigError, match="nce_layers"):
            resolve({"model": {"name": "cut"}, "losses": {"nce_layers": bad}})
    with pytest.raises(ConfigError, match="layer 40 does not exist"):
        build_model(resolve(tiny("cut"), ["losses.nce_layers=0,40"]))
    with pytest.raises(ConfigError, match="no loss"):
        resolve({"model": {"name": "cut"}, "losses": {"lambda_gan": 0, "lambda_nce": 0}})
    with pytest.raises(ConfigError, match="cut cannot use the discogan generator"):
        resolve({"model": {"name": "cut"}}, ["model.generator.arch=discogan"])


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_one_training_step(name: str):
    torch.manual_seed(0)
    model = build_model(resolve(tiny(name)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    log = fit_batches(model, [batch_of(1, 32)])
    assert log.steps == [[1, 1]]  # G with F, then D: one step each
    after = model.state_dict()
    for prefix in ("g_ab.", "f.", "d_b."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    terms = {"g/adv", "g/nce", "g/total", "d/loss"} | ({"g/nce_idt"} if name == "cut" else set())
    assert terms <= log.keys and ("g/nce_idt" in log.keys) == (name == "cut")
    assert all(math.isfinite(v) for v in log.metrics[0].values())
    if name == "fastcut":  # lambda_NCE 10 over a near-random projection: about 10 x log(patches + 1)
        assert log.metrics[0]["g/nce"] > 10


def test_fastcut_trains_under_bf16_autocast(tmp_path: Path):
    result = runner.invoke(app, ["fit", str(cut_config(tmp_path, "fastcut")), "--name", "bf16", "--max-steps", "2",
                                 "--precision", "bf16-mixed"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tmp_path / "runs" / "bf16" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["translate"]["model"] == "fastcut" and ckpt["global_step"] == 2 * 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values())


def test_flip_equivariance_flips_the_features_back():
    """With G's input flipped, the output's features are flipped back onto the source's positions: on layer 0
    (the reflection-padded image, exactly flip-equivariant) that is the same loss as for the unflipped output."""
    torch.manual_seed(0)
    model = build_model(resolve(tiny("fastcut"), ["losses.nce_layers=0"]))
    x, y = torch.rand(2, 1, 3, 32, 32) * 2 - 1
    state = model.rng.get_state()  # the same patch positions for each call

    def nce(output: torch.Tensor, flipped: bool) -> torch.Tensor:
        model.rng.set_state(state)
        with torch.no_grad():
            return model.nce(x, output, flipped)

    torch.testing.assert_close(nce(y.flip(3), flipped=True), nce(y, flipped=False))
    assert not torch.allclose(nce(y.flip(3), flipped=False), nce(y, flipped=False))


def cut_config(root: Path, name: str = "cut") -> Path:
    data = make_unpaired(root)
    cfg = {**tiny(name), "data": {**TINY["data"], "dataset": str(data)}, "train": {**TINY["train"],
           "out_dir": str(root / "runs")}}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_resume_is_exact_with_the_projection_heads_and_the_generator_works_everywhere(tmp_path: Path):
    config = cut_config(tmp_path)
    run = lambda *args: runner.invoke(app, [str(a) for a in args], catch_exceptions=False)  # noqa: E731
    # scored during training too: the one direction it has
    assert run("fit", config, "--name", "straight", "--max-epochs", "2", "--set", "eval.every=4", "--set",
               "eval.features=pixels").exit_code == 0
    assert run("fit", config, "--name", "split", "--max-epochs", "1").exit_code == 0
    resumed = run("fit", config, "--name", "split", "--max-epochs", "2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    runs = tmp_path / "runs"
    header = next((runs / "straight" / "logs" / "csv").glob("version_0/metrics.csv")).read_text().splitlines()[0]
    assert "eval/fid_AtoB" in header and "eval/fid" in header and "BtoA" not in header
    assert (runs / "straight" / "best.ckpt").is_file()
    a = torch.load(runs / "straight" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(runs / "split" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["translate"]["model"] == "cut" and any(k.startswith("f.mlps.") for k in a["state_dict"])
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    n_g = sum(1 for k in a["state_dict"] if k.startswith(("g_ab.", "f.")))
    assert len(a["optimizer_states"][0]["state"]) == n_g  # Adam of G holds the heads' moments too
    for i, state in a["optimizer_states"][0]["state"].items():
        assert torch.equal(state["exp_avg"], b["optimizer_states"][0]["state"][i]["exp_avg"])

    ckpt, test_a = runs / "straight" / "last.ckpt", tmp_path / "data" / "testA"
    converted = run("convert", ckpt, test_a, tmp_path / "out", "-q")
    assert converted.exit_code == 0, converted.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    back = runner.invoke(app, ["convert", str(ckpt), str(test_a), str(tmp_path / "back"), "--direction", "BtoA"])
    assert back.exit_code != 0 and "cut is one-directional: it translates AtoB only" in back.output
    assert "Traceback" not in back.output
    exported = run("export", ckpt, tmp_path / "g")  # checked for parity with the checkpoint's generator
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "g.safetensors").is_file() and (tmp_path / "g.pt2").is_file()
    import importlib.util

    if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnxscript"):  # the blur layers too
        onnx = run("export", ckpt, tmp_path / "o", "--format", "onnx")
        assert onnx.exit_code == 0, onnx.output
    again = run("convert", tmp_path / "g.safetensors", test_a, tmp_path / "out2", "-q")
    assert again.exit_code == 0, again.output
    scored = run("evaluate", ckpt, tmp_path / "data", "--features", "pixels", "--out", tmp_path / "eval")
    assert scored.exit_code == 0, scored.output
    report = yaml.safe_load((tmp_path / "eval" / "report.json").read_text())
    assert list(report["directions"]) == ["AtoB"] and report["model"] == "cut"

    from translate.demo import Engine, find_models, model_of

    assert model_of(str(ckpt)) == "cut" and str(ckpt) in find_models(roots=(runs,))
    image = make_domain(tmp_path / "photo", 1, seed=9)[0]
    shown, out = Engine().translate(str(ckpt), "AtoB", str(image))
    assert out.shape == shown.shape
    assert Engine().card(str(ckpt)).startswith("**cut** checkpoint")


def test_presets_resolve_with_the_unet_layers():
    for preset, name in (("cut-stripes", "cut"), ("fastcut-stripes", "fastcut")):
        cfg = resolve(read_preset(preset))
        assert cfg.model.name == name and cfg.model.generator.arch == "unet" and cfg.data.crop_size == 32
        model = build_model(cfg)
        assert [f.in_features for f in (mlp[0] for mlp in model.f.mlps)] == [3, 32, 64, 128]


def test_ddp_on_two_cpu_processes_steps_the_heads_with_the_generator(tmp_path: Path):
    """2-process CPU DDP (gloo): the heads exist before DDP wraps the module, so their gradients are reduced
    and the run trains; one checkpoint whose G optimizer holds the heads."""
    import os
    import subprocess
    import sys

    config = cut_config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run([sys.executable, "-m", "translate.cli", "fit", str(config), "--name", "ddp", "--devices", "2",
                           "--max-epochs", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ckpt = torch.load(tmp_path / "runs" / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    # 4 A images over 2 ranks, batch 1: 2 batches per rank
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == 2
    n_g = sum(1 for k in ckpt["state_dict"] if k.startswith(("g_ab.", "f.")))
    assert len(ckpt["optimizer_states"][0]["state"]) == n_g

"""DiscoGAN: the authors' nets, loss mixing, reconstruction-rate schedule, alternation, recipe, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from conftest import batch_of, fit_batches
from conftest import tiny as tiny_dict
from translate.cli import app
from translate.config import merge, resolve
from translate.errors import ConfigError
from translate.losses import ADVERSARIAL
from translate.models import build_model
from translate.nets import DiscoDiscriminator, DiscoGenerator

runner = CliRunner()


def authors_generator() -> nn.Sequential:
    """SKTBrain/DiscoGAN model.py `Generator` (extra_layers=False), written out from the paper's code."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for cin, cout in ((64, 128), (128, 256), (256, 512)):
        layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    for cin, cout in ((512, 256), (256, 128), (128, 64)):
        layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*layers, nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False))


def authors_discriminator() -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
    for cin, cout in ((64, 128), (128, 256), (256, 512)):
        layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]
    return nn.Sequential(*layers, nn.Conv2d(512, 1, 4, 1, 0, bias=False))


def shapes(net: nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in net.parameters()]


def test_nets_match_the_authors_layers_and_parameter_counts():
    g, d = DiscoGenerator(), DiscoDiscriminator()
    assert sum(p.numel() for p in g.parameters()) == 5_513_856  # "5.514 M"
    assert sum(p.numel() for p in d.parameters()) == 2_765_568  # "2.766 M"
    assert shapes(g) == shapes(authors_generator()) and shapes(d) == shapes(authors_discriminator())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert g.model[:11](x).shape == (2, 512, 4, 4)  # the encoder's 4x4 bottleneck
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1  # tanh
    logits, feats = d.forward_features(x)
    assert logits.shape == (2, 1, 1, 1)
    assert [tuple(f.shape[1:]) for f in feats] == [(128, 16, 16), (256, 8, 8), (512, 4, 4)]
    with pytest.raises(ValueError, match="at least 64x64"):
        d(torch.rand(1, 3, 32, 32))


def test_recipe_resolves_from_any_preset_and_back():
    cfg = resolve({"data": {"dataset": "stripes", "crop_size": 32, "load_size": 36},
                   "model": {"generator": {"arch": "unet"}}}, flags={"model.name": "discogan"})
    assert (cfg.model.generator.arch, cfg.model.discriminator.arch) == ("discogan", "discogan")
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.flip, cfg.data.batch_size) == (64, 64, False, 64)
    assert (cfg.losses.adversarial, cfg.losses.reconstruction, cfg.optim.weight_decay) == ("vanilla", "l2", 1e-5)
    assert cfg.data.dataset == "stripes" and cfg.model.init_type == "default"
    back = resolve(cfg.to_dict(), flags={"model.name": "cyclegan"})  # a discogan base switched to cyclegan
    assert (back.model.generator.arch, back.data.crop_size, back.losses.reconstruction) == ("resnet", 256, "l1")
    assert back.data.dataset == "stripes"
    sized = resolve({}, flags={"model.name": "discogan", "data.image_size": 128})
    assert (sized.data.load_size, sized.data.crop_size) == (128, 128)  # DiscoGAN resizes straight
    assert resolve({}, flags={"data.image_size": 128}).data.load_size == 143  # CycleGAN: 286/256
    with pytest.raises(ConfigError, match="at least 64 px"):
        resolve({"model": {"name": "discogan"}, "data": {"crop_size": 32, "load_size": 32}})


def tiny(objective: str = "vanilla", **losses) -> nn.Module:
    torch.manual_seed(0)
    cfg = resolve(merge(tiny_dict("discogan"), {"data": {"load_size": 64, "crop_size": 64, "batch_size": 2},
                               "losses": {"adversarial": objective, **losses}}))
    return build_model(cfg)


@pytest.mark.parametrize("iteration, rate", [(0, 0.01), (9_999, 0.01), (10_000, 0.5), (123_456, 0.5)])
def test_reconstruction_rate_schedule(iteration, rate):
    assert tiny().recon_rate(iteration) == rate


def test_alternation_is_one_discriminator_then_two_generator_batches():
    assert [tiny().is_discriminator_batch(i) for i in range(6)] == [True, False, False] * 2
    critic = tiny("wgan-gp")  # n_critic 5: five critic batches, then one generator batch
    assert [critic.is_discriminator_batch(i) for i in range(12)] == ([True] * 5 + [False]) * 2


def test_generator_loss_is_the_authors_mix():
    model = tiny().train()
    batch = model.on_after_batch_transfer(batch_of(2, 64), 0)
    a, b = batch["A"], batch["B"]
    rate = 0.01
    torch.manual_seed(1)
    terms = model.generator_terms(a, b, rate)
    total = sum(terms.values())
    # The authors' expression for G_AB, with their sigmoid + BCELoss and their MSE, recomputed here.
    torch.manual_seed(1)
    with torch.no_grad():
        ab, ba = model.g_ab(a), model.g_ba(b)
        aba, bab = model.g_ba(ab), model.g_ab(ba)

        def gan_and_fm(disc, real, fake):
            _, real_f = disc.forward_features(real)
            fake_logit, fake_f = disc.forward_features(fake)
            gen = nn.BCELoss()(torch.sigmoid(fake_logit).view(-1, 1), torch.ones(fake.shape[0], 1))
            fm = sum(((r.mean(0) - f.mean(0)) ** 2).mean() for r, f in zip(real_f, fake_f))
            return gen, fm

        gen_b, fm_b = gan_and_fm(model.d_b, b, ab)
        gen_a, fm_a = gan_and_fm(model.d_a, a, ba)
        expected = ((gen_b * 0.1 + fm_b * 0.9) * (1 - rate) + nn.MSELoss()(aba, a) * rate
                    + (gen_a * 0.1 + fm_a * 0.9) * (1 - rate) + nn.MSELoss()(bab, b) * rate)
    torch.testing.assert_close(total.detach(), expected, rtol=1e-4, atol=1e-6)
    assert set(terms) == {"adv_ab", "fm_ab", "recon_a", "adv_ba", "fm_ba", "recon_b"}


def test_optional_identity_term_keeps_each_domain_as_it_is():
    model = tiny(lambda_identity=0.5).train()
    batch = model.on_after_batch_transfer(batch_of(2, 64), 0)
    a, b = batch["A"], batch["B"]
    terms = model.generator_terms(a, b, 0.5)
    assert {"idt_ab", "idt_ba"} <= set(terms)
    with torch.no_grad():  # batch-norm statistics of the batch, as in the step (train mode)
        torch.testing.assert_close(terms["idt_ab"].detach(), 0.5 * nn.MSELoss()(model.g_ab(b), b), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(terms["idt_ba"].detach(), 0.5 * nn.MSELoss()(model.g_ba(a), a), rtol=1e-4, atol=1e-6)


def test_optimizers_are_the_authors_adam():
    opt_g, opt_d = tiny().configure_optimizers()
    for opt in (opt_g, opt_d):
        group = opt.param_groups[0]
        assert isinstance(opt, torch.optim.Adam)
        assert (group["lr"], group["betas"], group["weight_decay"]) == (2e-4, (0.5, 0.999), 1e-5)


@pytest.mark.parametrize("objective", sorted(ADVERSARIAL))
def test_every_objective_runs_discogan_steps_with_finite_losses(objective):
    """One whole alternation cycle in a real (tiny) fit: D batches step only the discriminators, G batches
    only the generators (D G G; five critic batches then one G batch for WGAN critics); losses stay finite."""
    model = tiny(objective)
    pattern = "DDDDDG" if objective.startswith("wgan") else "DGG"
    log = fit_batches(model, [batch_of(2, 64, seed=i) for i in range(len(pattern))])
    assert log.steps == [[pattern[:i + 1].count("G"), pattern[:i + 1].count("D")] for i in range(len(pattern))]
    assert any(k.startswith("g/") for k in log.keys) and any(k.startswith("d/") for k in log.keys)
    assert all(math.isfinite(v) for metrics in log.metrics for v in metrics.values()), log.metrics


def test_fit_resume_and_convert_from_the_cli(tiny_config: Path, tmp_path: Path):
    """`--model discogan` trains; resuming is exact; convert works on its checkpoint."""
    common = ["--model", "discogan", "--batch-size", "2", "--set", "model.generator.ngf=4",
              "--set", "model.discriminator.ndf=4", "--set", "train.sample_every_n_steps=2"]
    straight = runner.invoke(app, ["fit", str(tiny_config), "--name", "s", "--max-epochs", "2", *common])
    assert straight.exit_code == 0, straight.output
    assert runner.invoke(app, ["fit", str(tiny_config), "--name", "p", "--max-epochs", "1", *common]).exit_code == 0
    resumed = runner.invoke(app, ["fit", str(tiny_config), "--name", "p", "--max-epochs", "2", "--resume", *common])
    assert resumed.exit_code == 0, resumed.output
    runs = tmp_path / "runs"
    a = torch.load(runs / "s" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(runs / "p" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["translate"]["model"] == "discogan"
    assert yaml.safe_load((runs / "s" / "config.yaml").read_text())["model"]["generator"]["arch"] == "discogan"
    # 4 A images, batch 2: 2 batches per epoch; 4 batches = D, G, G, D.
    assert a["optimizer_states"][1]["state"][0]["step"] == 2 and a["optimizer_states"][0]["state"][0]["step"] == 2
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    converted = runner.invoke(app, ["convert", str(runs / "s" / "last.ckpt"), str(tmp_path / "data" / "testA"),
                                    str(tmp_path / "out"), "-q"])
    assert converted.exit_code == 0, converted.output
    assert len(list((tmp_path / "out").glob("*.png"))) == 2


def test_ddp_on_two_cpu_processes_trains_one_run(tiny_config: Path, tmp_path: Path):
    """The batch-norm nets under 2-process CPU DDP (gloo; SyncBatchNorm is for GPUs): one run folder, the
    sharded step count, rank 0 reporting once."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run([sys.executable, "-m", "translate.cli", "fit", str(tiny_config), "--name", "ddp",
                           "--model", "discogan", "--batch-size", "2", "--devices", "2", "--max-epochs", "3",
                           "--set", "model.generator.ngf=4", "--set", "model.discriminator.ndf=4"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]
    ckpt = torch.load(tmp_path / "runs" / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    # 4 A images over 2 ranks, batch 2: 1 batch per rank per epoch; 3 batches = D, G, G
    assert ckpt["epoch"] == 3 and ckpt["optimizer_states"][1]["state"][0]["step"] == 1
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == 2
    assert proc.stdout.count("trained ") == 1

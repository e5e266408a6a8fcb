"""The one-way architecture: models own their settings (translate/recipes/), one resolve pass, a torch-free
registry and config, and a fourth model added through the registry alone."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from translate.cli import app
from translate.config import preset_names, read_preset, resolve
from translate.errors import ConfigError
from translate.models.base import TwoWayModel
from translate.recipes import RECIPES, LossSettings, ModelSettings, Recipe

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_validating_a_config_imports_neither_torch_nor_the_models():
    code = ("import sys; from translate.config import resolve, preset_names; "
            "[resolve({}, [], {'model.name': n}) for n in ('cyclegan', 'discogan', 'genegan')]; "
            "[resolve(__import__('translate.config').config.read_preset(p)) for p in preset_names()]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pytorch_lightning', 'lightning') "
            "or m.startswith(('translate.models', 'translate.nets', 'translate.losses'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout


def test_config_and_registry_do_not_import_torch_lightning_models_or_nets():
    files = [ROOT / "translate" / "config.py", ROOT / "translate" / "configtools.py",
             *sorted((ROOT / "translate" / "recipes").glob("*.py"))]
    pattern = re.compile(r"^\s*(from|import)\s+(torch|pytorch_lightning|lightning|translate\.models|translate\.nets"
                         r"|translate\.losses)\b", re.M)
    for path in files:
        assert not pattern.search(path.read_text()), path


SENTINELS = {("model", "pool_size"): -1, ("losses", "n_critic"): 0, ("losses", "g_steps"): 0,
             ("optim", "kind"): "auto", ("optim", "lr_d"): 0.0, ("optim", "weight_decay_d"): -1.0,
             ("train", "max_epochs"): -1, ("data", "num_workers"): -1}


@pytest.mark.parametrize("preset", preset_names())
def test_dry_run_of_every_preset_shows_only_concrete_values_and_its_models_keys(preset: str):
    result = runner.invoke(app, ["fit", preset, "--dry-run"])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.output.split("\n", 1)[1])
    for (section, key), sentinel in SENTINELS.items():
        if key in cfg[section]:
            assert cfg[section][key] != sentinel, (section, key)
    assert cfg["optim"]["kind"] in ("adam", "rmsprop")
    name = cfg["model"]["name"]
    r = RECIPES[name]
    assert set(cfg["losses"]) == {f for f in r.losses.__dataclass_fields__}  # nobody else's loss keys
    assert set(cfg["model"]) == {f for f in r.model.__dataclass_fields__}
    spectral = cfg["model"]["discriminator"].get("spectral_norm")
    assert spectral == (cfg["losses"]["adversarial"] == "hinge" or spectral is True)
    if "image_size" in cfg["model"]["discriminator"]:
        assert cfg["model"]["discriminator"]["image_size"] == cfg["data"]["crop_size"]
    assert resolve(read_preset(preset)).to_dict() == cfg


def test_what_each_model_leaves_to_the_objective_is_resolved_once():
    gene = resolve({"model": {"name": "genegan"}})
    # the authors' RMSprop: smoothing 0.8, weight decay on G only; before, hard-coded in the model
    assert (gene.optim.kind, gene.optim.alpha, gene.optim.weight_decay, gene.optim.weight_decay_d) == \
        ("rmsprop", 0.8, 1e-5, 0.0)
    assert resolve({"model": {"name": "genegan"}, "losses": {"adversarial": "hinge"}}).optim.weight_decay_d == 1e-5
    disco = resolve({"model": {"name": "discogan"}})
    assert (disco.losses.n_critic, disco.losses.g_steps) == (1, 2)
    critic = resolve({"model": {"name": "discogan"}, "losses": {"adversarial": "wgan-gp"}})
    assert (critic.losses.n_critic, critic.losses.g_steps) == (5, 1)
    cycle = resolve({}, ["losses.adversarial=wgan-clip"])
    assert (cycle.model.pool_size, cycle.losses.n_critic, cycle.optim.kind, cycle.optim.alpha) == (0, 5, "rmsprop", 0.99)


def test_a_net_argument_the_architecture_does_not_take_is_an_error():
    with pytest.raises(ConfigError, match=r"model.generator.num_downs.*the resnet generator takes: ngf, n_blocks"):
        resolve({}, ["model.generator.num_downs=5"])
    with pytest.raises(ConfigError, match=r"model.generator.arch: genegan cannot use the resnet generator"):
        resolve({"model": {"name": "genegan"}}, ["model.generator.arch=resnet"])
    with pytest.raises(ConfigError, match=r"discogan cannot use the genegan discriminator"):
        resolve({"model": {"name": "discogan"}}, ["model.discriminator.arch=genegan"])
    # switching the architecture starts its settings afresh: the preset's unet keys do not carry over
    assert resolve(read_preset("stripes"), ["model.generator.arch=resnet"]).model.generator.n_blocks == 9


def test_cyclegan_with_the_genegan_discriminator_sizes_it_from_the_crop(tiny_config: Path):
    result = runner.invoke(app, ["fit", str(tiny_config), "--set", "model.discriminator.arch=genegan", "--set",
                                 "model.discriminator.ndf=4", "--max-steps", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output  # crop 32: the linear layer must be built for 32, not 64
    ckpt = torch.load(next((tiny_config.parent / "runs").glob("*/last.ckpt")), map_location="cpu", weights_only=True)
    assert ckpt["translate"]["nets"]["d_a"]["kwargs"]["image_size"] == 32


# --------------------------------------------------------------------------- a fourth model, in the tests only


@dataclass(frozen=True)
class IdentityGANModel(ModelSettings):
    name: str = "identitygan"


@dataclass(frozen=True)
class IdentityGANLosses(LossSettings):
    lambda_identity: float = 1.0


class IdentityGANRecipe(Recipe):
    name = "identitygan"
    model = IdentityGANModel
    losses = IdentityGANLosses
    lightning = "test_registry:IdentityGAN"
    generators = ("resnet", "unet")
    discriminators = ("patch",)


class IdentityGAN(TwoWayModel):
    """Each generator fools its discriminator and keeps images of its target domain unchanged."""

    name = "identitygan"

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        real_a, real_b = batch["A"], batch["B"]
        opt_g, opt_d = self.optimizers()
        w = self.cfg.losses
        with self.toggled_optimizer(opt_g):
            fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
            self.step_generators(opt_g, {
                "adv_ab": self.adversarial.generator_loss(self.d_b(fake_b)),
                "adv_ba": self.adversarial.generator_loss(self.d_a(fake_a)),
                "idt": w.lambda_identity * (self.reconstruction(self.g_ab(real_b), real_b)
                                            + self.reconstruction(self.g_ba(real_a), real_a))})
        self.step_discriminators(opt_d, real_a, fake_a.detach(), real_b, fake_b.detach())


def test_a_fourth_model_needs_only_its_files_and_a_registry_entry(tiny_config: Path, monkeypatch):
    monkeypatch.setitem(RECIPES, "identitygan", IdentityGANRecipe())
    sets = [arg for item in ("model.name=identitygan", "model.generator.ngf=4", "model.generator.n_blocks=1",
                             "model.discriminator.ndf=4", "model.discriminator.n_layers=2") for arg in ("--set", item)]
    dry = runner.invoke(app, ["fit", str(tiny_config), *sets, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    shown = yaml.safe_load(dry.output.split("\n", 1)[1])
    assert shown["model"]["generator"] == {"arch": "resnet", "ngf": 4, "n_blocks": 1, "norm": "instance",
                                           "dropout": False, "padding": "reflect", "antialias": False,
                                           "antialias_up": False}
    assert set(shown["losses"]) == {"adversarial", "reconstruction", "n_critic", "gp_weight", "clip_value",
                                    "lambda_identity"}
    result = runner.invoke(app, ["fit", str(tiny_config), *sets, "--max-steps", "2", "--name", "fourth"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tiny_config.parent / "runs" / "fourth" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["translate"]["model"] == "identitygan" and ckpt["global_step"] == 2 * 2
    out = tiny_config.parent / "out"
    converted = runner.invoke(app, ["convert", str(tiny_config.parent / "runs" / "fourth" / "last.ckpt"),
                                    str(tiny_config.parent / "data" / "testA"), str(out)], catch_exceptions=False)
    assert converted.exit_code == 0, converted.output
    assert len(list(out.glob("*.png"))) == 2

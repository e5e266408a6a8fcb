from __future__ import annotations

import pytest

from translate.config import Config, from_dict, parse_overrides, preset_names, read_preset, recipe_of, resolve
from translate.errors import ConfigError


def test_defaults_are_the_published_cyclegan_recipe():
    cfg = from_dict({})
    assert (cfg.model.generator.arch, cfg.model.generator.ngf, cfg.model.generator.n_blocks) == ("resnet", 64, 9)
    assert cfg.model.generator.norm == "instance" and cfg.model.discriminator.n_layers == 3
    assert cfg.model.pool_size == 50 and cfg.model.init_gain == 0.02  # LSGAN's pool (the default -1 resolved)
    assert cfg.losses.adversarial == "lsgan" and cfg.losses.n_critic == 1 and cfg.losses.gp_weight == 10.0
    assert (cfg.losses.lambda_cycle, cfg.losses.lambda_identity) == (10.0, 5.0)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2) == (2e-4, 0.5, 0.999)
    assert (cfg.optim.n_epochs, cfg.optim.n_epochs_decay, cfg.total_epochs) == (100, 100, 200)
    assert (cfg.data.load_size, cfg.data.crop_size, cfg.data.flip, cfg.data.batch_size) == (286, 256, True, 1)


def test_precedence_defaults_file_set_flags():
    base = {"optim": {"lr": 1e-3}, "data": {"batch_size": 2}}
    cfg = resolve(base, ["data.batch_size=3", "losses.lambda_cycle=7"], {"data.batch_size": 4, "train.seed": None})
    assert cfg.optim.lr == 1e-3  # from the file
    assert cfg.losses.lambda_cycle == 7.0  # --set
    assert cfg.data.batch_size == 4  # explicit flag beats --set
    assert cfg.train.seed == 0  # a flag left as None does not hide the default


def test_unknown_key_suggests_close_match():
    with pytest.raises(ConfigError, match=r"unknown config key 'losses.lambda_cycel'.*lambda_cycle"):
        from_dict({"losses": {"lambda_cycel": 3}})
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        from_dict({"trian": {}})


@pytest.mark.parametrize("data, match", [
    ({"data": {"batch_size": "four"}}, "data.batch_size: expected int"),
    ({"data": {"flip": 1}}, "data.flip: expected bool"),
    ({"optim": {"lr": True}}, "optim.lr: expected float"),
    ({"model": "cyclegan"}, "model: expected a mapping"),
    ({"losses": {"adversarial": "lsgn"}}, "did you mean lsgan"),
    ({"data": {"crop_size": 300}}, "cannot exceed"),
    ({"data": {"crop_size": 30, "load_size": 36}}, "multiple of 4"),
    ({"data": {"batch_size": 0}}, "must be positive"),
    ({"train": {"precision": "8-bit"}}, "train.precision"),
    ({"train": {"compile_mode": "fastest"}}, "train.compile_mode"),
    ({"model": {"generator": {"arch": "unet"}}, "data": {"crop_size": 128, "load_size": 143}}, "multiple of 256"),
])
def test_invalid_values_are_rejected_with_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(data)


def test_int_and_exponent_strings_are_accepted_where_float_is_expected():
    assert from_dict({"optim": {"lr": 1}}).optim.lr == 1.0
    assert resolve({}, ["optim.lr=5e-5"]).optim.lr == 5e-5  # YAML gives the string '5e-5'
    with pytest.raises(ConfigError, match="optim.lr: expected float"):
        resolve({}, ["optim.lr=fast"])


def test_parse_overrides_types_and_nesting():
    assert parse_overrides(["a.b=3", "a.c=0.5", "d=true", "e=horse", "f="]) == {
        "a": {"b": 3, "c": 0.5}, "d": True, "e": "horse", "f": ""}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["lambda_cycle"])


def test_roundtrip_through_dict_and_frozen():
    cfg = resolve({}, ["model.generator.ngf=8", "train.run_name=x"])
    assert from_dict(cfg.to_dict()) == cfg
    with pytest.raises(AttributeError):
        cfg.train.seed = 3  # type: ignore[misc]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid_and_states_only_changes(name):
    data = read_preset(name)
    cfg = from_dict(data)
    assert isinstance(cfg, Config)
    defaults = resolve(recipe_of(cfg.model.name)).to_dict()  # the model's recipe over the dataclass defaults
    for section, values in data.items():  # a preset repeating a default says nothing
        for key, value in values.items():
            if not isinstance(value, dict) and key not in ("dataset", "name"):
                assert defaults[section][key] != value, f"{name}: {section}.{key} repeats the default"


def test_required_presets_exist():
    assert {"shapes", "stripes", "horse2zebra"} <= set(preset_names())


@pytest.mark.parametrize("objective, pool, n_critic, sn", [
    ("lsgan", 50, 1, False), ("vanilla", 50, 1, False), ("hinge", 50, 1, True),
    ("wgan-gp", 0, 5, False), ("wgan-clip", 0, 5, False)])
def test_objective_fills_the_settings_left_to_it(objective, pool, n_critic, sn):
    cfg = resolve({}, [f"losses.adversarial={objective}"])
    assert (cfg.model.pool_size, cfg.losses.n_critic, cfg.model.discriminator.spectral_norm) == (pool, n_critic, sn)
    explicit = resolve({}, [f"losses.adversarial={objective}", "model.pool_size=7", "losses.n_critic=3"])
    assert (explicit.model.pool_size, explicit.losses.n_critic) == (7, 3)  # an explicit value wins


@pytest.mark.parametrize("setting, key", [
    ("model.discriminator.n_layers=50", "model.discriminator.n_layers"),
    ("model.discriminator.n_layers=-1", "model.discriminator.n_layers"),
    ("model.discriminator.n_layers=0", "model.discriminator.n_layers"),
    ("model.generator.num_downs=0", "model.generator.num_downs"),
    ("model.generator.arch=unet model.generator.num_downs=1000000", "model.generator.num_downs"),
    ("model.generator.arch=unet model.generator.num_downs=6", "model.generator.num_downs"),  # 64 > 32 px
    ("optim.lr=.nan", "optim.lr"),
    ("optim.lr=.inf", "optim.lr"),
    ("optim.lr=nan", "optim.lr"),
    ("optim.lr=1e999", "optim.lr"),
    ("losses.lambda_cycle=-.inf", "losses.lambda_cycle"),
    ("data.holdout=.nan", "data.holdout"),
    ("model.init_gain=.nan", "model.init_gain"),
    ("train.seed=-5", "train.seed"),
    ("train.seed=4294967296", "train.seed"),
    ("model.generator.n_blocks=-1", "model.generator.n_blocks"),
    ("data.num_workers=-2", "data.num_workers"),
])
def test_values_that_would_fail_later_are_refused_by_dry_run(tiny_config, setting, key):
    from typer.testing import CliRunner

    from translate.cli import app

    sets = [arg for item in setting.split() for arg in ("--set", item)]
    result = CliRunner().invoke(app, ["fit", str(tiny_config), *sets, "--dry-run"])
    assert result.exit_code == ConfigError.exit_code, result.output
    assert "Traceback" not in result.output and key in result.output
    assert len(result.output.strip().splitlines()) == 1  # one line, nothing printed before it


@pytest.mark.parametrize("setting", ["train.seed=0", "train.seed=4294967295", "data.num_workers=-1",
                                     "model.generator.n_blocks=0", "model.discriminator.n_layers=3"])
def test_edge_values_that_work_are_accepted(setting):
    resolve({}, [setting, "data.crop_size=32", "data.load_size=36"])


def test_n_layers_rule_matches_the_patch_discriminator_it_guards():
    import torch

    from translate.recipes.archs import patch_output_side
    from translate.nets import PatchDiscriminator

    for crop in (8, 12, 16, 20, 24, 32, 48, 64, 256):
        for n_layers in range(1, 8):
            net = PatchDiscriminator(ndf=1, n_layers=n_layers, norm="none")
            try:
                out = net(torch.zeros(1, 3, crop, crop))
                works = min(out.shape[-2:]) >= 1
            except RuntimeError:  # "Kernel size can't be greater than actual input size"
                works = False
            side = patch_output_side(crop, n_layers)
            assert (side >= 1) == works, (crop, n_layers)
            if works:
                assert out.shape[-2:] == (side, side)
            settings = [f"data.crop_size={crop}", f"data.load_size={crop}", f"model.discriminator.n_layers={n_layers}",
                        "model.generator.n_blocks=1"]
            if works:
                resolve({}, settings)
            else:
                with pytest.raises(ConfigError, match="model.discriminator.n_layers"):
                    resolve({}, settings)


@pytest.mark.parametrize("mode, passed", [("default", None), ("reduce-overhead", "reduce-overhead"),
                                          ("max-autotune", "max-autotune")])
def test_train_compile_mode_reaches_torch_compile_of_every_net(mode, passed, monkeypatch):
    import torch

    from translate.models import build_model
    from translate.train import loop_callbacks

    cfg = resolve({"model": {"name": "cyclegan"}}, flags={"train.compile": True, "train.compile_mode": mode})
    model = build_model(cfg)
    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kwargs: seen.append((type(self).__name__, kwargs)))
    setup = loop_callbacks(cfg)[0]
    setup.on_fit_start(None, model)
    assert len(seen) == len(model.net_specs) == 4 and all(kwargs == {"mode": passed} for _, kwargs in seen)

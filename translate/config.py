"""Run configuration: frozen dataclasses, one section per package; YAML presets; strict overrides; one
resolve pass.

A config has the chosen model's own sections, ``model`` and ``losses`` (their dataclasses and the paper's
defaults live in translate/recipes/<model>.py), and the run-level sections every model shares, defined
here: ``optim``, ``data``, ``train``, ``eval``.

Precedence (lowest first): dataclass defaults < the model's recipe < preset or ``--config FILE`` <
``--set a.b=c`` < explicit CLI flags. Every layer is a nested dict of primitives merged over the previous
one, then built strictly (unknown keys are errors with close-match suggestions, wrong types too) and
resolved once (:func:`concrete`): a preset may leave a setting to the objective or the machine (-1, 0 or
"auto" where the comments say so), the resolved config never does, so ``--dry-run`` and each run's
``config.yaml`` show exactly what runs. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from translate.configtools import build, choice, merge, non_negative, parse_overrides, positive, suggest
from translate.errors import ConfigError
from translate.recipes import RECIPES, LossSettings, ModelSettings, recipe

__all__ = ["COMMAND_ONLY", "Config", "ConfigError", "DataConfig", "EvalConfig", "OptimConfig", "TrainConfig",
           "build_config", "concrete", "from_dict", "from_saved", "inherited_by_init", "merge", "parse_overrides", "preset_names",
           "read_preset", "read_yaml", "recipe_of", "resolve", "validate"]


@dataclass(frozen=True)
class OptimConfig:
    kind: str = "auto"  # adam | rmsprop; auto in a preset: the objective's (RMSprop for wgan-clip)
    lr: float = 2e-4  # the generators'
    lr_d: float = 0.0  # the discriminators' (two time-scale updates); 0 in a preset: lr
    beta1: float = 0.5  # Adam
    beta2: float = 0.999  # Adam
    alpha: float = 0.99  # RMSprop's smoothing constant (PyTorch's default; GeneGAN's authors: 0.8)
    weight_decay: float = 0.0  # L2 weight decay of the generators (DiscoGAN, GeneGAN: 1e-5)
    weight_decay_d: float = -1.0  # of the discriminators; -1 in a preset: the model's (weight_decay, or 0
    #                               for GeneGAN's RMSprop as in the authors' code)
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs of linear decay towards zero afterwards


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "shapes"  # built-in name, catalog name or a folder with trainA/ and trainB/
    dir_a: str = ""  # two plain folders of images instead of a dataset (translate fit --a DIR --b DIR)
    dir_b: str = ""
    holdout: float = 0.05  # share of a domain's images kept out of training when it has no test folder
    root: str = "datasets"  # where named datasets live (and are generated or downloaded)
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True
    batch_size: int = 1
    num_workers: int = -1  # loader processes; -1 in a preset: min(4, CPU cores) of the machine resolving it
    n_samples: int = 4  # test images per domain shown in sample grids
    max_images: int = 0  # training images per domain, a seeded subset (small-data runs); 0: all


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = -1  # -1 in a preset: optim.n_epochs + optim.n_epochs_decay (0: no epoch limit)
    max_steps: int = -1  # training batches; -1: no limit
    accelerator: str = "auto"  # Lightning's: auto picks the GPU when there is one
    devices: str = "auto"  # Lightning's: "auto", a count ("2") or a list ("0,1")
    num_nodes: int = 1
    strategy: str = "auto"  # auto: DDP when devices x nodes > 1, else one process; ddp: DDP even on one device
    precision: str = "32-true"
    seed: int = 0
    out_dir: str = "checkpoints"
    run_name: str = ""  # "": derived from the dataset name
    checkpoint_every_n_epochs: int = 10  # periodic checkpoints kept; last.ckpt is written every epoch
    sample_every_n_steps: int = 500
    log_every_n_steps: int = 50
    channels_last: bool = True  # on CUDA only
    compile: bool = False
    compile_mode: str = "default"  # torch.compile's mode: default | reduce-overhead (CUDA graphs) | max-autotune
    #                                | max-autotune-no-cudagraphs; only with train.compile
    init: str = ""  # fine-tuning: start from this checkpoint's weights (fresh optimizer and schedule)
    ema: bool = False  # keep an exponential moving average of each generator; outputs use it (models/ema.py)
    ema_decay: float = 0.999  # the EMA's decay per generator step (StarGAN v2's beta)
    ema_rampup: float = 0.05  # warm-up: the EMA's half-life is at most this share of the steps so far
    #                           (StyleGAN2-ADA's ema_rampup); 0: the plain decay from the first step
    augment: str = "auto"  # none | diffaugment: the same differentiable transform on the real and fake images
    #                        before every discriminator call (models/diffaugment.py); auto: diffaugment with
    #                        translation only when fine-tuning (init) on a small folder (train.AUGMENT_AUTO),
    #                        else none (measured: benchmarks/finetune_small.py)
    augment_policy: str = "color,translation,cutout"  # DiffAugment's operations, comma-separated


@dataclass(frozen=True)
class EvalConfig:
    every: int = 0  # training batches between FID/KID evaluations on the test split (best.ckpt kept); 0: off
    features: str = "inception"  # inception | classifier | pixels | package.module:factory (see metrics.py)
    max_images: int = 0  # test images per domain; 0: all
    monitor: str = "fid"  # fid | kid: the mean over both directions that picks best.ckpt


def _default_model() -> ModelSettings:
    return RECIPES["cyclegan"].model()


def _default_losses() -> LossSettings:
    return RECIPES["cyclegan"].losses()


@dataclass(frozen=True)
class Config:
    model: ModelSettings = field(default_factory=_default_model)  # the model's own (recipes/<name>.py)
    losses: LossSettings = field(default_factory=_default_losses)  # the model's own
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @property
    def total_epochs(self) -> int:
        """Epochs to train; 0: no epoch limit (train.max_steps ends the run)."""
        if self.train.max_epochs > 0:
            return self.train.max_epochs
        return self.optim.n_epochs + self.optim.n_epochs_decay


PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "bf16-true", "16-true")
STRATEGIES = ("auto", "ddp")
OPTIMIZERS = ("adam", "rmsprop")
EVAL_FEATURES = ("inception", "classifier", "pixels")  # translate.metrics.FEATURES (tests/test_evaluate.py)
MONITORS = ("fid", "kid")
AUGMENTS = ("auto", "none", "diffaugment")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")  # torch.compile's
AUGMENT_OPS = ("color", "translation", "cutout")  # DiffAugment's operations (models/diffaugment.py)
MAX_SEED = 2**32 - 1  # what numpy and Lightning's seed_everything accept
_SHARED = {"optim": OptimConfig, "data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


# --------------------------------------------------------------------------- dict -> Config -> resolved Config


def build_config(data: dict[str, Any] | None) -> Config:
    """A Config from a (partial) nested dict, strictly checked, not resolved: ``model`` and ``losses`` are
    built with the dataclasses of the model that ``model.name`` names (default cyclegan)."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: expected a mapping, got {data!r}")
    names = [f.name for f in dataclasses.fields(Config)]
    for key in data:
        if key not in names:
            raise ConfigError(f"unknown config key '{key}'{suggest(str(key), names)}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model: expected a mapping, got {model!r}")
    r = recipe(str(model.get("name", "cyclegan")))
    sections: dict[str, Any] = {"model": build(r.model, model, "model."),
                                "losses": build(r.losses, data.get("losses") or {}, "losses.")}
    for key, cls in _SHARED.items():
        sections[key] = build(cls, data.get(key) or {}, f"{key}.")
    return Config(**sections)


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def concrete(cfg: Config) -> Config:
    """The one resolve pass: every setting a preset may leave open gets its value. The model's recipe fills
    its own (n_critic, pool size, g_steps, spectral norm, the optimizer kind, a discriminator's image size);
    then the run-level ones: the discriminators' learning rate and weight decay, the epoch count and the
    loader processes. Applied to a resolved config it changes nothing."""
    cfg = recipe(cfg.model.name).resolve(cfg)
    o, t, d = cfg.optim, cfg.train, cfg.data
    optim = dataclasses.replace(o, lr_d=o.lr_d or o.lr,
                                weight_decay_d=o.weight_decay if o.weight_decay_d == -1 else o.weight_decay_d)
    train = dataclasses.replace(t, max_epochs=t.max_epochs if t.max_epochs > 0 else o.n_epochs + o.n_epochs_decay)
    data = dataclasses.replace(d, num_workers=default_workers() if d.num_workers == -1 else d.num_workers)
    return dataclasses.replace(cfg, optim=optim, train=train, data=data)


def from_dict(data: dict[str, Any] | None) -> Config:
    """Strictly build, resolve and validate a Config from a (partial) nested dict; missing keys take the
    defaults of the model's dataclasses and of the run-level sections (not the model's recipe: see resolve)."""
    cfg = concrete(build_config(data))
    validate(cfg)
    return cfg


def from_saved(config: dict[str, Any], format_version: int) -> dict[str, Any]:
    """A checkpoint's saved config dict in today's layout. Format 1 (before the models owned their settings)
    saved one union of all three models' keys: the keys this model or its architectures do not take are
    dropped, and GeneGAN's RMSprop smoothing, then hard-coded at 0.8, is written out."""
    if format_version >= 2 or not isinstance(config, dict):
        return config
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in config.items()}
    model = out.get("model") if isinstance(out.get("model"), dict) else {}
    name = str(model.get("name", "cyclegan"))
    if name not in RECIPES:
        return out  # build_config names the unknown model
    r = RECIPES[name]
    from translate.recipes.archs import TABLES

    kept_model = {f.name for f in dataclasses.fields(r.model)}
    for key in ("generator", "discriminator"):
        net = model.get(key)
        table = TABLES[key]
        if isinstance(net, dict) and net.get("arch") in table:
            takes = {f.name for f in dataclasses.fields(table[net["arch"]])}
            model[key] = {k: v for k, v in net.items() if k in takes}
    out["model"] = {k: v for k, v in model.items() if k in kept_model}
    if isinstance(out.get("losses"), dict):
        takes = {f.name for f in dataclasses.fields(r.losses)}
        out["losses"] = {k: v for k, v in out["losses"].items() if k in takes}
    if name == "genegan" and isinstance(out.get("optim"), dict):
        out["optim"].setdefault("alpha", 0.8)
    return out


# --------------------------------------------------------------------------- presets and files


def preset_folder() -> Any:
    """Presets ship as package data ``translate.configs`` (mapped from ``configs/`` at build time); an
    editable install or a plain source checkout reads the repository's ``configs/`` folder directly."""
    try:
        return resources.files("translate.configs")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "configs"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in preset_folder().iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def read_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset '{name}'{suggest(name, preset_names())}")
    text = preset_folder().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


# What a preset keeps when --model switches to another model: its data and its run settings.
_KEPT_ON_MODEL_SWITCH = {"data": ("dataset", "dir_a", "dir_b", "holdout", "root", "num_workers", "n_samples",
                                  "max_images"),
                         "train": None, "eval": None}


def _model_name(*layers: dict[str, Any]) -> str | None:
    """model.name from the first layer that sets it."""
    for layer in layers:
        model = layer.get("model")
        if isinstance(model, dict) and model.get("name") is not None:
            return str(model["name"])
    return None


def _keep_on_switch(base: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for section, keys in _KEPT_ON_MODEL_SWITCH.items():
        values = base.get(section)
        if isinstance(values, dict):
            kept[section] = dict(values) if keys is None else {k: v for k, v in values.items() if k in keys}
    return kept


NET_SECTIONS = ("generator", "discriminator")


def merge_layer(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """`update` merged over `base`, except that a net section whose ``arch`` `update` changes starts afresh
    from `update`'s keys: the earlier layer's were written for another architecture (as a model switch
    keeps only the data and run settings). Keys given beside the new arch are still checked strictly."""
    out = merge(base, update)
    new_model, old_model = (update or {}).get("model"), (base or {}).get("model")
    if isinstance(new_model, dict) and isinstance(old_model, dict):
        r = RECIPES.get(str(out["model"].get("name", "cyclegan")))
        for key in NET_SECTIONS:
            new, old = new_model.get(key), old_model.get(key)
            if not (isinstance(new, dict) and isinstance(old, dict) and "arch" in new and r is not None):
                continue
            if new["arch"] != old.get("arch", getattr(r.model(), key).arch):  # a missing arch is the model's own
                out["model"][key] = dict(new)
    return out


def recipe_of(name: str) -> dict[str, Any]:
    """The paper's values for the shared sections (``shared`` on the model's recipe) with ``model.name``, as a
    nested dict; {} for an unknown name (build_config names the valid ones)."""
    r = RECIPES.get(name)
    return merge(r.shared, {"model": {"name": name}}) if r else {}


def resolve(
    base: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Config:
    """Defaults < the model's recipe < base (preset/file/saved run) < ``--set`` overrides < explicit flags.

    When ``--model``/``--set model.name`` picks another model than the base was written for, the base
    keeps only its data and run settings (:data:`_KEPT_ON_MODEL_SWITCH`) and the new model's recipe
    supplies the rest, so ``translate fit stripes --model discogan`` trains DiscoGAN as published on the
    stripes data. Flags that are None were not given; the flag ``data.image_size`` sets the crop size
    and scales the load size by the recipe's own ratio."""
    base = base or {}
    over = parse_overrides(overrides or [])
    given: dict[str, Any] = {}
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".")
        given.setdefault(section, {})[key] = value
    base_name = _model_name(base) or "cyclegan"
    name = _model_name(given, over) or base_name
    if name != base_name:
        base = _keep_on_switch(base)
    layers = merge_layer(merge(recipe_of(name), base), over)
    image_size = given.get("data", {}).pop("image_size", None)
    if image_size is not None:  # keep the recipe's resize-to-crop ratio (CycleGAN 286/256, DiscoGAN 1)
        data = build_config(layers).data
        given["data"] = {"crop_size": image_size,
                         "load_size": math.ceil(image_size * data.load_size / data.crop_size), **given["data"]}
    return from_dict(merge_layer(layers, given))


# --------------------------------------------------------------------------- cross-field rules


def validate(cfg: Config) -> None:
    """The run-level rules, then the model's (recipes/<name>.py); checked before any work starts."""
    o, d, t, e = cfg.optim, cfg.data, cfg.train, cfg.eval
    choice("train.precision", t.precision, PRECISIONS)
    choice("train.strategy", t.strategy, STRATEGIES)
    choice("eval.monitor", e.monitor, MONITORS)
    if not names_code(e.features):
        choice("eval.features", e.features, EVAL_FEATURES)
    for key, value in {"data.batch_size": d.batch_size, "data.crop_size": d.crop_size,
                       "data.load_size": d.load_size, "optim.lr": o.lr, "optim.lr_d": o.lr_d,
                       "train.num_nodes": t.num_nodes, "train.log_every_n_steps": t.log_every_n_steps}.items():
        positive(key, value)
    for key, value in {"optim.n_epochs": o.n_epochs, "optim.n_epochs_decay": o.n_epochs_decay,
                       "optim.weight_decay": o.weight_decay, "optim.weight_decay_d": o.weight_decay_d,
                       "data.n_samples": d.n_samples, "data.num_workers": d.num_workers,
                       "data.max_images": d.max_images, "train.ema_rampup": t.ema_rampup,
                       "train.checkpoint_every_n_epochs": t.checkpoint_every_n_epochs,
                       "train.sample_every_n_steps": t.sample_every_n_steps, "eval.every": e.every,
                       "eval.max_images": e.max_images}.items():
        non_negative(key, value)
    if not 0 <= t.seed <= MAX_SEED:
        raise ConfigError(f"train.seed must be in [0, {MAX_SEED}] (2**32 - 1), got {t.seed}")
    if not 0.0 <= t.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    choice("train.augment", t.augment, AUGMENTS)
    choice("train.compile_mode", t.compile_mode, COMPILE_MODES)
    for op in t.augment_policy.split(","):
        choice("train.augment_policy", op.strip(), AUGMENT_OPS)
    if not 0.0 <= d.holdout < 1.0:
        raise ConfigError(f"data.holdout must be in [0, 1), got {d.holdout}")
    if bool(d.dir_a) != bool(d.dir_b):
        raise ConfigError("give both data.dir_a and data.dir_b (--a DIR --b DIR), or neither")
    if e.every and e.max_images == 1:
        raise ConfigError("eval.max_images must be 0 (all) or at least 2: FID needs two images per side")
    if d.crop_size > d.load_size:
        raise ConfigError(f"data.crop_size ({d.crop_size}) cannot exceed data.load_size ({d.load_size})")
    if not (0.0 <= o.beta1 < 1.0 and 0.0 <= o.beta2 < 1.0):
        raise ConfigError("optim.beta1 and optim.beta2 must be in [0, 1)")
    if not 0.0 <= o.alpha < 1.0:
        raise ConfigError(f"optim.alpha must be in [0, 1), got {o.alpha}")
    if cfg.total_epochs <= 0 and t.max_steps <= 0:
        raise ConfigError("nothing to train: set train.max_epochs or train.max_steps")
    recipe(cfg.model.name).validate(cfg)
    choice("optim.kind", o.kind, OPTIMIZERS)


# --------------------------------------------------------------------------- what a saved config may not choose

# Settings that name paths to read and write. A loaded checkpoint's saved config never chooses them: on
# --resume they come from this command (its target, config file, --set and flags), as eval.features does
# when the saved value names code (package.module:factory) to import and call.
COMMAND_ONLY: dict[str, tuple[str, ...]] = {"data": ("dataset", "dir_a", "dir_b", "root"),
                                            "train": ("out_dir", "init")}


# What `fit DATA --init RUN/last.ckpt` takes from the run it fine-tunes (the target names only data): its
# model, losses and schedule, its image sizes and its training switches but augmentation. Not its data,
# budget, hardware, name or evaluation: those belong to the new data and machine.
INHERITED_BY_INIT: dict[str, tuple[str, ...] | None] = {
    "model": None, "losses": None, "optim": None,
    "data": ("load_size", "crop_size", "flip", "batch_size", "n_samples"),
    "train": ("precision", "ema", "ema_decay", "ema_rampup", "sample_every_n_steps", "log_every_n_steps",
              "checkpoint_every_n_epochs"),  # not train.augment: its auto choice depends on the new data
}


def inherited_by_init(saved: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """`base` (what the target names: its data) over the :data:`INHERITED_BY_INIT` part of a checkpoint's saved
    config dict, for fine-tuning a run on new data with that run's own recipe."""
    out: dict[str, Any] = {}
    for section, keys in INHERITED_BY_INIT.items():
        values = (saved or {}).get(section)
        if isinstance(values, dict):
            out[section] = dict(values) if keys is None else {k: v for k, v in values.items() if k in keys}
    return merge(out, base)


def names_code(features: str) -> bool:
    """True for an eval.features value that names a function to import (package.module:factory)."""
    return ":" in features


def saved_without_code_or_paths(saved: dict[str, Any], command: Config) -> dict[str, Any]:
    """A checkpoint's saved config dict with every :data:`COMMAND_ONLY` key taken from `command` (the config
    this command resolves to without the checkpoint), and eval.features too when the saved value names code.
    A hostile or moved checkpoint then cannot make ``fit --resume`` import a module or write elsewhere."""
    out = {section: dict(values) if isinstance(values, dict) else values for section, values in (saved or {}).items()}
    mine = command.to_dict()
    for section, keys in COMMAND_ONLY.items():
        part = out.setdefault(section, {})
        if not isinstance(part, dict):
            part = out[section] = {}
        for key in keys:
            part[key] = mine[section][key]
    saved_eval = out.get("eval")
    if isinstance(saved_eval, dict) and names_code(str(saved_eval.get("features", ""))):
        saved_eval["features"] = mine["eval"]["features"]
    return out

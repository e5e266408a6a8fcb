"""Run configuration: frozen dataclasses, one section per package; YAML presets; strict overrides.

Precedence (lowest first): dataclass defaults < preset or ``--config FILE`` < ``--set a.b=c`` < explicit
CLI flags. Every layer is a nested dict of primitives merged over the previous one, then turned into
dataclasses by :func:`from_dict`, which rejects unknown keys (with close-match suggestions) and wrong
types. The defaults are the published CycleGAN recipe; presets state only what a recipe changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union

import yaml

from translate.errors import ConfigError


@dataclass(frozen=True)
class GeneratorConfig:
    arch: str = "resnet"  # resnet | unet
    ngf: int = 64
    norm: str = "instance"
    dropout: bool = False
    n_blocks: int = 9  # resnet only
    num_downs: int = 8  # unet only
    object_share: float = 0.25  # genegan only: the share of the code's channels that is the object part


@dataclass(frozen=True)
class DiscriminatorConfig:
    arch: str = "patch"
    ndf: int = 64
    n_layers: int = 3
    norm: str = "instance"
    spectral_norm: bool = False


@dataclass(frozen=True)
class ModelConfig:
    name: str = "cyclegan"
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    pool_size: int = -1  # fakes kept per direction for D; -1: the objective's default (50; 0 for WGAN critics)
    init_type: str = "normal"  # normal: N(0, init_gain) as CycleGAN; default: PyTorch's own (DiscoGAN's code)
    init_gain: float = 0.02


@dataclass(frozen=True)
class LossConfig:
    adversarial: str = "lsgan"
    reconstruction: str = "l1"
    lambda_cycle: float = 10.0  # per direction
    lambda_identity: float = 5.0  # absolute weight (the classic code's 0.5 x lambda_cycle); 0 turns it off
    n_critic: int = 0  # discriminator steps per generator step; 0: the objective's (1; 5 for WGAN critics)
    gp_weight: float = 10.0  # wgan-gp penalty weight (lambda)
    clip_value: float = 0.01  # wgan-clip weight clipping bound c
    # DiscoGAN: per direction (1 - rate) * [(1 - fm_weight) * adversarial + fm_weight * feature matching]
    # + rate * reconstruction, with rate = recon_rate_start for the first recon_curriculum batches.
    fm_weight: float = 0.9
    recon_rate: float = 0.5
    recon_rate_start: float = 0.01
    recon_curriculum: int = 10000
    lambda_recon: float = 0.5  # GeneGAN: reconstruction of each parent
    lambda_parallelogram: float = 1.275  # GeneGAN: |Au + B0 - Bu - A0|
    lambda_nulling: float = 1.0  # GeneGAN: |object part of a B image|
    lambda_reproduction: float = 0.0  # GeneGAN: parents recovered from the children (not in the authors' code)
    critic_burst: int = 0  # critic steps at the first and every critic_burst_every-th generator step (WGAN); 0: off
    critic_burst_every: int = 500
    g_steps: int = 0  # DiscoGAN: generator batches after each n_critic discriminator batches; 0: 2, or 1 for critics


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-4
    lr_d: float = 0.0  # the discriminators' learning rate when different (two time-scale updates); 0: lr
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0  # Adam's L2 weight decay, G and D (DiscoGAN: 1e-5)
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
    num_workers: int = -1  # -1: min(4, CPU cores)
    n_samples: int = 4  # test images per domain shown in sample grids


@dataclass(frozen=True)
class TrainConfig:
    max_epochs: int = -1  # -1: optim.n_epochs + optim.n_epochs_decay
    max_steps: int = -1  # training batches; -1: no limit
    accelerator: str = "auto"
    devices: str = "auto"  # "auto", a count ("2") or a list ("0,1")
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
    init: str = ""  # fine-tuning: start from this checkpoint's weights (fresh optimizer and schedule)


@dataclass(frozen=True)
class EvalConfig:
    every: int = 0  # training batches between FID/KID evaluations on the test split (best.ckpt kept); 0: off
    features: str = "inception"  # inception | classifier | pixels | package.module:factory (see metrics.py)
    max_images: int = 0  # test images per domain; 0: all
    monitor: str = "fid"  # fid | kid: the mean over both directions that picks best.ckpt


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    losses: LossConfig = field(default_factory=LossConfig)
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
        if self.train.max_epochs > 0:
            return self.train.max_epochs
        return self.optim.n_epochs + self.optim.n_epochs_decay


PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "64-true", "bf16-true", "16-true")


# --------------------------------------------------------------------------- dict <-> dataclass


def _check_value(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_value(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {hint}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string; users mean a number
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # .nan, .inf, 1e999: every later comparison would be meaningless
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return number
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def _suggest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{hint} (valid: {', '.join(options)})"


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in hints:
            raise ConfigError(f"unknown config key '{path}'{_suggest(str(key), names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{path}.")
        else:
            kwargs[key] = _check_value(value, hint, path)
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> Config:
    """Strictly build a Config from a (partial) nested dict; missing keys take their defaults."""
    cfg = _objective_defaults(_build(Config, data or {}, ""))
    validate(cfg)
    return cfg


def _objective_defaults(cfg: Config) -> Config:
    """Fill the settings left to the adversarial objective, so --dry-run shows what will run."""
    from translate.losses import ADVERSARIAL

    objective = ADVERSARIAL.get(cfg.losses.adversarial)
    if objective is None:
        return cfg  # validate() names the valid objectives
    m, w = cfg.model, cfg.losses
    model = dataclasses.replace(
        m, pool_size=objective.default_pool_size if m.pool_size == -1 else m.pool_size,
        discriminator=dataclasses.replace(
            m.discriminator, spectral_norm=m.discriminator.spectral_norm or objective.needs_spectral_norm))
    losses = dataclasses.replace(w, n_critic=w.n_critic or objective.default_n_critic)
    return dataclasses.replace(cfg, model=model, losses=losses)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins. Neither input is modified."""
    out = dict(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}``; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (for example losses.lambda_cycle=5), got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
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
        raise ConfigError(f"unknown preset '{name}'{_suggest(name, preset_names())}")
    text = preset_folder().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


# What a preset keeps when --model switches to another model: its data and its run settings.
_KEPT_ON_MODEL_SWITCH = {"data": ("dataset", "dir_a", "dir_b", "holdout", "root", "num_workers", "n_samples"),
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


def recipe_of(name: str) -> dict[str, Any]:
    """The config a model's paper uses (``recipe`` on its class), as a nested dict; {} if unknown."""
    from translate.models import MODELS

    model = MODELS.get(name)
    return merge(getattr(model, "recipe", {}), {"model": {"name": name}}) if model else {}


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
    layers = merge(merge(recipe_of(name), base), over)
    image_size = given.get("data", {}).pop("image_size", None)
    if image_size is not None:  # keep the recipe's resize-to-crop ratio (CycleGAN 286/256, DiscoGAN 1)
        data = _build(Config, layers, "").data
        given["data"] = {"crop_size": image_size,
                         "load_size": math.ceil(image_size * data.load_size / data.crop_size), **given["data"]}
    return from_dict(merge(layers, given))


# --------------------------------------------------------------------------- cross-field rules


def _choice(key: str, value: str, valid: typing.Iterable[str]) -> None:
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{key}: unknown value '{value}'{_suggest(value, valid)}")


MAX_SEED = 2**32 - 1  # what numpy and Lightning's seed_everything accept
UNET_MIN_DOWNS = 5  # the U-Net's five outer levels are fixed; num_downs - 5 more sit in between


def patch_output_side(crop_size: int, n_layers: int) -> int:
    """Side of the PatchGAN's logit map for a square input: n_layers 4x4 stride-2 convs (pad 1) halve the side
    (rounding down), then two 4x4 stride-1 convs (pad 1) take one pixel each; < 1 means no output at all."""
    side = crop_size
    for _ in range(n_layers):
        if side < 2:  # a 4x4 kernel no longer fits the padded input
            return 0
        side //= 2
    return side - 2


def _check_sizes(cfg: Config) -> None:
    """Depths and counts of the nets that would pass the type check but fail when the nets are built or run."""
    g, d, crop = cfg.model.generator, cfg.model.discriminator, cfg.data.crop_size
    if g.n_blocks < 0:
        raise ConfigError(f"model.generator.n_blocks must be >= 0, got {g.n_blocks}")
    if g.num_downs < UNET_MIN_DOWNS:
        raise ConfigError(f"model.generator.num_downs must be at least {UNET_MIN_DOWNS} (the U-Net's fixed outer "
                          f"levels), got {g.num_downs}")
    if g.arch == "unet" and g.num_downs >= crop.bit_length():  # 2**num_downs > crop_size: found without building
        multiple = 2**g.num_downs if g.num_downs <= 20 else f"2**{g.num_downs}"
        raise ConfigError(f"data.crop_size ({crop}) must be a multiple of {multiple} for the unet generator "
                          f"(model.generator.num_downs={g.num_downs})")
    if d.n_layers < 1:
        raise ConfigError(f"model.discriminator.n_layers must be >= 1, got {d.n_layers}")
    if d.arch == "patch" and patch_output_side(crop, d.n_layers) < 1:
        deepest = max((n for n in range(1, crop.bit_length() + 1) if patch_output_side(crop, n) >= 1), default=0)
        fix = f"use at most {deepest}" if deepest else "use a larger data.crop_size"
        raise ConfigError(f"model.discriminator.n_layers ({d.n_layers}) is too deep for data.crop_size ({crop}): "
                          f"the patch discriminator's output would be smaller than 1x1; {fix}")


def validate(cfg: Config) -> None:
    """Rules across fields, checked before any work starts."""
    from translate.losses import ADVERSARIAL, RECONSTRUCTION
    from translate.models import MODELS
    from translate.nets import DISCRIMINATORS, GENERATORS, size_multiple

    _choice("model.name", cfg.model.name, MODELS)
    _choice("model.generator.arch", cfg.model.generator.arch, GENERATORS)
    _choice("model.discriminator.arch", cfg.model.discriminator.arch, DISCRIMINATORS)
    for key, norm in (("model.generator.norm", cfg.model.generator.norm),
                      ("model.discriminator.norm", cfg.model.discriminator.norm)):
        _choice(key, norm, ("instance", "batch", "none"))
    _choice("model.init_type", cfg.model.init_type, ("normal", "default"))
    _choice("losses.adversarial", cfg.losses.adversarial, ADVERSARIAL)
    _choice("losses.reconstruction", cfg.losses.reconstruction, RECONSTRUCTION)
    _choice("train.precision", cfg.train.precision, PRECISIONS)
    _choice("train.strategy", cfg.train.strategy, ("auto", "ddp"))

    positive = {
        "data.batch_size": cfg.data.batch_size, "data.crop_size": cfg.data.crop_size,
        "data.load_size": cfg.data.load_size, "model.generator.ngf": cfg.model.generator.ngf,
        "model.discriminator.ndf": cfg.model.discriminator.ndf, "optim.lr": cfg.optim.lr,
        "train.num_nodes": cfg.train.num_nodes, "train.log_every_n_steps": cfg.train.log_every_n_steps,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    non_negative = {
        "losses.lambda_cycle": cfg.losses.lambda_cycle,
        "losses.n_critic": cfg.losses.n_critic, "losses.gp_weight": cfg.losses.gp_weight,
        "losses.lambda_identity": cfg.losses.lambda_identity, "optim.n_epochs": cfg.optim.n_epochs,
        "optim.n_epochs_decay": cfg.optim.n_epochs_decay, "data.n_samples": cfg.data.n_samples,
        "train.checkpoint_every_n_epochs": cfg.train.checkpoint_every_n_epochs,
        "train.sample_every_n_steps": cfg.train.sample_every_n_steps,
        "losses.recon_curriculum": cfg.losses.recon_curriculum, "losses.g_steps": cfg.losses.g_steps,
        "optim.weight_decay": cfg.optim.weight_decay, "optim.lr_d": cfg.optim.lr_d, "eval.every": cfg.eval.every,
        "losses.lambda_recon": cfg.losses.lambda_recon, "losses.lambda_parallelogram": cfg.losses.lambda_parallelogram,
        "losses.lambda_nulling": cfg.losses.lambda_nulling, "losses.lambda_reproduction": cfg.losses.lambda_reproduction,
        "losses.critic_burst": cfg.losses.critic_burst,
        "eval.max_images": cfg.eval.max_images,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} must be >= 0, got {value}")
    _check_sizes(cfg)
    if not 0 <= cfg.train.seed <= MAX_SEED:
        raise ConfigError(f"train.seed must be in [0, {MAX_SEED}] (2**32 - 1), got {cfg.train.seed}")
    if cfg.data.num_workers < -1:
        raise ConfigError(f"data.num_workers must be >= 0 (or -1: min(4, CPU cores)), got {cfg.data.num_workers}")
    if cfg.model.pool_size < -1:
        raise ConfigError(f"model.pool_size must be >= 0 (or -1: the objective's default), got {cfg.model.pool_size}")
    for key in ("fm_weight", "recon_rate", "recon_rate_start"):
        if not 0.0 <= getattr(cfg.losses, key) <= 1.0:
            raise ConfigError(f"losses.{key} must be in [0, 1], got {getattr(cfg.losses, key)}")
    if not 0.0 <= cfg.data.holdout < 1.0:
        raise ConfigError(f"data.holdout must be in [0, 1), got {cfg.data.holdout}")
    if bool(cfg.data.dir_a) != bool(cfg.data.dir_b):
        raise ConfigError("give both data.dir_a and data.dir_b (--a DIR --b DIR), or neither")
    if cfg.model.discriminator.arch == "discogan" and cfg.data.crop_size < 64:
        raise ConfigError(f"the discogan discriminator needs images of at least 64 px; data.crop_size is "
                          f"{cfg.data.crop_size} (DiscoGAN works at 64: --image-size 64)")
    _choice("eval.monitor", cfg.eval.monitor, ("fid", "kid"))
    if cfg.eval.every and cfg.model.name == "genegan":
        raise ConfigError("eval.every scores A->B and B->A generators; GeneGAN has none (evaluate its swaps "
                          "with translate swap and benchmarks/genegan_faces.py)")
    if cfg.model.discriminator.arch == "genegan" and cfg.data.crop_size % 16:
        raise ConfigError(f"the genegan discriminator needs data.crop_size to be a multiple of 16, got "
                          f"{cfg.data.crop_size}")
    if not 0.0 < cfg.model.generator.object_share < 1.0:
        raise ConfigError(f"model.generator.object_share must be in (0, 1), got {cfg.model.generator.object_share}")
    if ":" not in cfg.eval.features:
        from translate.metrics import FEATURES

        _choice("eval.features", cfg.eval.features, FEATURES)
    if cfg.eval.every and cfg.eval.max_images == 1:
        raise ConfigError("eval.max_images must be 0 (all) or at least 2: FID needs two images per side")
    if cfg.losses.clip_value <= 0:
        raise ConfigError(f"losses.clip_value must be positive, got {cfg.losses.clip_value}")
    if cfg.data.crop_size > cfg.data.load_size:
        raise ConfigError(
            f"data.crop_size ({cfg.data.crop_size}) cannot exceed data.load_size ({cfg.data.load_size})")
    try:
        multiple = size_multiple(cfg.model.generator.arch, dataclasses.asdict(cfg.model.generator))
    except ValueError as exc:  # a constructor rule not mirrored above: still the user's setting, said in one line
        raise ConfigError(f"model.generator: {str(exc).splitlines()[0]}") from None
    if cfg.data.crop_size % multiple:
        raise ConfigError(
            f"data.crop_size ({cfg.data.crop_size}) must be a multiple of {multiple} for the "
            f"{cfg.model.generator.arch} generator")
    if not (0.0 <= cfg.optim.beta1 < 1.0 and 0.0 <= cfg.optim.beta2 < 1.0):
        raise ConfigError("optim.beta1 and optim.beta2 must be in [0, 1)")
    if cfg.total_epochs <= 0 and cfg.train.max_steps <= 0:
        raise ConfigError("nothing to train: set train.max_epochs or train.max_steps")


# --------------------------------------------------------------------------- what a saved config may not choose

# Settings that name paths to read and write. A loaded checkpoint's saved config never chooses them: on
# --resume they come from this command (its target, config file, --set and flags), as eval.features does
# when the saved value names code (package.module:factory) to import and call.
COMMAND_ONLY: dict[str, tuple[str, ...]] = {"data": ("dataset", "dir_a", "dir_b", "root"),
                                            "train": ("out_dir", "init")}


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

"""Training orchestration: the only place a Trainer, loggers, callbacks, devices and precision are built.

``translate fit TARGET`` resolves TARGET (a preset, a built-in dataset, a folder or a YAML file) to a base
config, layers overrides on top, picks the run folder ``<out_dir>/<run>/`` and trains. ``--resume``
continues ``<run>/last.ckpt`` with the config saved in it: same step count, LR position, optimizer
state, image pools and data order. What names paths or code (the data folders, ``data.root``,
``train.out_dir``, an ``eval.features`` factory) is taken from this command, never from the checkpoint
(config.COMMAND_ONLY): a checkpoint from elsewhere cannot make a resume import a module or write elsewhere.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from translate.callbacks import (BatchBudget, EpochCheckpoint, Evaluate, GracefulStop, LinearDecay, NonFinite,
                                 Reseed, SampleGrids, batches_seen)
from translate.checkpoint import check_block, load_checkpoint
from translate.errors import CheckpointError, DataError
from translate.config import (Config, ConfigError, DataConfig, from_saved, inherited_by_init, preset_names,
                              read_preset, read_yaml, resolve, saved_without_code_or_paths)
from translate.data.datamodule import UnpairedDataModule
from translate.data.names import dataset_kind, resolve_dataset
from translate.models import build_model
from translate.models.base import TranslationModel
from translate.models.ema import matching_state

log = logging.getLogger(__name__)

# Lightning notes that the module's batch hook (scaling to [-1, 1]) wins over the datamodule's: by design.
warnings.filterwarnings("ignore", message=".*on_after_batch_transfer.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
# The run folder already holds config.yaml (written first) and, on resume, the checkpoints being resumed.
warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


@dataclass(frozen=True)
class FitResult:
    run_dir: Path
    checkpoint: Path
    samples: Path
    batches: int  # the run's total, earlier attempts included
    seconds: float  # this attempt's
    batches_now: int = 0  # the batches this attempt trained, in `seconds`
    is_global_zero: bool = True
    stopped_by: str | None = None  # "SIGTERM"/"SIGINT" when a signal ended the run early


def base_for(target: str | None, flags: dict[str, Any] | None = None) -> tuple[dict[str, Any], str]:
    """The config dict TARGET stands for, and the run name it suggests (two folders: --a/--b)."""
    flags = flags or {}
    if target is None:
        a, b = flags.get("data.dir_a"), flags.get("data.dir_b")
        if bool(a) != bool(b):
            raise ConfigError("give both --a DIR and --b DIR (one folder per domain)")
        if not (a and b):
            raise ConfigError("give a TARGET (preset, dataset, folder or YAML file), or two folders: --a DIR --b DIR")
        return {}, f"{Path(a).resolve().name}2{Path(b).resolve().name}"
    path = Path(target).expanduser()
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return read_yaml(path), path.stem
    if target in preset_names():
        return read_preset(target), target
    root = flags.get("data.root") or DataConfig().root
    if dataset_kind(target, root) is not None:  # a catalog dataset downloads on first use
        return {"data": {"dataset": target}}, path.name or "run"
    raise ConfigError(
        f"'{target}' is not a preset ({', '.join(preset_names())}), a built-in or catalog dataset "
        "(translate datasets list) or an existing folder (a folder needs trainA/ and trainB/)")


RUN_DIR_ENV = "TRANSLATE_RUN_DIR"  # rank 0's run folder, inherited by the DDP processes it launches


def external_launch() -> bool:
    """True when torchrun or SLURM's srun started several processes of this command."""
    if os.environ.get(RUN_DIR_ENV):
        return False
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 or int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1


LOCK_NAME = ".lock"


def _holds_a_run(folder: Path) -> bool:
    return folder.exists() and any(p.name != LOCK_NAME for p in folder.iterdir())


def _free_run_dir(out_dir: Path, name: str, skip: int = 1) -> Path:
    """`out_dir/name`, or `name-2`, `name-3`, ... so a new run never overwrites an old one (from `name-skip`
    on, past folders another process has claimed)."""
    if os.environ.get(RUN_DIR_ENV):  # a DDP rank re-running the command: rank 0 already chose
        return Path(os.environ[RUN_DIR_ENV])
    if external_launch():
        # torchrun/srun start every rank at once: they can't agree on "name-2", so the name is used as it
        # is, and a finished run there is refused on every rank alike (no rank writes last.ckpt at start).
        if (out_dir / name / "last.ckpt").exists():
            raise ConfigError(f"{out_dir / name} already holds a run; under torchrun/srun pass a new --name, "
                              "or --resume to continue it")
        return out_dir / name
    n = skip
    candidate = out_dir / name if n == 1 else out_dir / f"{name}-{n}"
    while _holds_a_run(candidate):
        n += 1
        candidate = out_dir / f"{name}-{n}"
    return candidate


class RunLock:
    """An exclusive lock (flock on ``<run>/.lock``) held while a run trains in its folder, so two runs
    started together can't share one: the second takes the next free name, or, resuming, is refused.
    The operating system releases it when the process ends, however it ends."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.handle = None
        self.created = False  # this run made the folder (so a run that fails before training can remove it)

    def acquire(self) -> bool:
        self.created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handle = (self.run_dir / LOCK_NAME).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self.handle = handle
        return True

    def holder(self) -> str:
        try:
            return (self.run_dir / LOCK_NAME).read_text(encoding="utf-8").strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def claim_run_dir(cfg: Config, run_dir: Path, resume: bool) -> tuple[Path, RunLock | None]:
    """Lock the run folder before anything is written in it. A new run whose folder another process has
    claimed meanwhile moves on to the next free name; a resume of a run in use is refused. DDP ranks that
    Lightning or torchrun started use the folder their rank 0 locked."""
    rank = os.environ.get("RANK") or os.environ.get("SLURM_PROCID") or "0"  # torchrun, srun
    if os.environ.get(RUN_DIR_ENV) or (external_launch() and int(rank) != 0):
        return run_dir, None
    first, skip = run_dir, 1
    while True:
        lock = RunLock(run_dir)
        if lock.acquire():
            if resume or external_launch() or not _holds_a_run(run_dir):  # ranks keep the name they share
                partial = run_dir / ".last.ckpt.partial"  # a write that a kill interrupted; last.ckpt is whole
                partial.unlink(missing_ok=True)
                return run_dir, lock
            lock.release()  # another run wrote here between the choice and the lock
        elif resume:
            raise ConfigError(f"{run_dir} is in use by another translate fit (pid {lock.holder()}); wait for "
                              "it to finish or stop it before resuming")
        elif external_launch():
            raise ConfigError(f"{run_dir} is in use by another translate fit (pid {lock.holder()}); pass a new --name")
        skip += 1  # taken in a race, ... after the folder X this command chose
        run_dir = _free_run_dir(first.parent, first.name, skip)


def prepare(target: str, config_file: str | None = None, overrides: list[str] | None = None,
            flags: dict[str, Any] | None = None, resume: bool = False) -> tuple[Config, Path, Path | None]:
    """Resolve the config and the run folder (and the checkpoint to resume from) without training."""
    base, name = base_for(target, flags)
    if config_file:
        base = read_yaml(config_file)
    cfg = resolve(base, overrides, flags)
    if cfg.train.init and not resume and set(base) <= {"data"}:  # the target names only data: fine-tune the
        saved = init_settings(cfg.train.init)                    # checkpoint's own recipe on it
        if saved is not None:
            cfg = resolve(inherited_by_init(saved, base), overrides, flags)
            log.info("--init %s: its model, losses, schedule and image size carry over (--set changes them)",
                     cfg.train.init)
    name = cfg.train.run_name or name
    out_dir = Path(cfg.train.out_dir)
    if not resume:
        return cfg, _free_run_dir(out_dir, name), None
    run_dir = out_dir / name
    ckpt = run_dir / "last.ckpt"
    if not ckpt.is_file():
        raise ConfigError(f"nothing to resume: {ckpt} does not exist (runs in {out_dir}: "
                          f"{', '.join(sorted(p.name for p in out_dir.glob('*') if p.is_dir())) or 'none'})")
    checkpoint = load_checkpoint(ckpt)
    # The saved config supplies the recipe and the run's settings; paths and code come from this command.
    block = checkpoint["translate"]
    saved = saved_without_code_or_paths(from_saved(block["config"], block["format_version"]), cfg)
    resumed = resolve(saved, overrides, flags)
    if resumed.model != resolve(saved).model:
        raise ConfigError("model.* settings cannot change when resuming; start a new run instead")
    check_block(checkpoint, expect_model=resumed.model.name, path=ckpt)
    return resumed, run_dir, ckpt


AUGMENT_AUTO = 100  # train.augment=auto: DiffAugment (translation) when fine-tuning on at most this many
#                     images in a domain. Measured at 40 (benchmarks/finetune_small.py); 100 is our choice.


def concrete_augment(cfg: Config, folders: tuple[Path, Path]) -> Config:
    """`cfg` with train.augment=auto decided: diffaugment with the translation policy when fine-tuning
    (train.init) on at most :data:`AUGMENT_AUTO` training images in the smaller of `folders` (the domains'
    training folders), else none."""
    t = cfg.train
    if t.augment != "auto":
        return cfg
    small = False
    if t.init and cfg.model.name != "genegan":  # GeneGAN refuses augmentation (not measured)
        from translate.data.io import list_images

        counts = [len(list_images(f)) for f in folders]
        if cfg.data.max_images > 0:
            counts = [min(n, cfg.data.max_images) for n in counts]
        small = min(counts) <= AUGMENT_AUTO
        if small:
            log.info("fine-tuning on a small folder (%d image files in its smaller domain): DiffAugment (translation) on, "
                     "as measured to help (--set train.augment=none turns it off)", min(counts))
    augment = {"augment": "diffaugment", "augment_policy": "translation"} if small else {"augment": "none"}
    return dataclasses.replace(cfg, train=dataclasses.replace(t, **augment))


def init_settings(init: str) -> dict[str, Any] | None:
    """The saved config of a translate checkpoint named by --init, in today's layout; None for a pretrained name
    or a classic generator file (they carry no settings). A missing or unreadable file is load_init's error."""
    from translate.checkpoint import is_translate_checkpoint, read_torch_file, zoo_name

    if zoo_name(init) is not None or not Path(init).is_file():
        return None
    checkpoint = read_torch_file(init)
    if not is_translate_checkpoint(checkpoint):
        return None
    block = check_block(checkpoint, path=init)
    saved = from_saved(block["config"], block["format_version"])
    return saved if isinstance(saved, dict) else None


def _devices(value: str) -> Any:
    value = value.strip()
    if value == "auto":
        return "auto"
    if value.lstrip("-").isdigit():
        return int(value)
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"train.devices: expected auto, a count or a list like 0,1; got '{value}'") from None


def _device_count(devices: Any) -> int:
    if isinstance(devices, list):
        return len(devices)
    return devices if isinstance(devices, int) and devices > 0 else 1


def _uses_batch_norm(cfg: Config) -> bool:
    return "batch" in (getattr(cfg.model.generator, "norm", ""), getattr(cfg.model.discriminator, "norm", ""))


class DeviceSetup(pl.Callback):
    """Device-dependent setup of the nets, once they are on their device: channels_last memory format on
    CUDA (nets and each batch; ``train.channels_last``) and ``torch.compile`` of each net (``train.compile``, in
    ``train.compile_mode``: reduce-overhead captures CUDA graphs, for batch-1 steps that wait on launches)."""

    def __init__(self, channels_last: bool, compile: bool, compile_mode: str = "default") -> None:
        self.channels_last, self.compile, self.compile_mode = channels_last, compile, compile_mode
        self.memory_format: torch.memory_format | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda" and self.channels_last:
            self.memory_format = torch.channels_last
            pl_module.to(memory_format=self.memory_format)
        if self.compile:
            for attr in pl_module.net_specs:  # "default" is torch.compile's own default (mode=None)
                getattr(pl_module, attr).compile(mode=None if self.compile_mode == "default" else self.compile_mode)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.memory_format is not None:  # the batch dict training_step receives, converted in place
            for key, value in batch.items():
                batch[key] = value.contiguous(memory_format=self.memory_format)


def loop_callbacks(cfg: Config) -> list[pl.Callback]:
    """The loop's jobs (callbacks.py), in the order they must run: the stops before the NaN check."""
    o, t = cfg.optim, cfg.train
    return [DeviceSetup(t.channels_last, t.compile, t.compile_mode), Reseed(t.seed), LinearDecay([o.lr, o.lr_d], o.n_epochs,
            o.n_epochs_decay), BatchBudget(t.max_steps), GracefulStop(), NonFinite(t.log_every_n_steps)]


def build_trainer(cfg: Config, run_dir: Path) -> pl.Trainer:
    t = cfg.train
    devices = _devices(t.devices)
    distributed = _device_count(devices) > 1 or t.num_nodes > 1 or t.strategy == "ddp"
    logs = run_dir / "logs"
    tb = logs / "tensorboard"
    version = len(list(tb.glob("version_*"))) if tb.is_dir() else 0  # one per attempt (resumes add one)
    checkpoints: list[pl.Callback] = [EpochCheckpoint(run_dir / "last.ckpt")]  # each epoch and at the end
    if t.checkpoint_every_n_epochs:
        checkpoints.append(ModelCheckpoint(dirpath=run_dir, filename="epoch{epoch:04d}", auto_insert_metric_name=False,
                                           every_n_epochs=t.checkpoint_every_n_epochs, save_top_k=-1))
    extra = []
    if cfg.eval.every:
        e = cfg.eval
        extra.append(Evaluate(e.every, e.features, e.max_images, e.monitor, run_dir, t.seed))
    return pl.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.total_epochs if cfg.total_epochs > 0 else -1,
        accelerator=t.accelerator,
        devices=devices,
        num_nodes=t.num_nodes,
        # One module holds G and D: plain DDP rejects the D parameters unused in the G step and
        # static_graph rejects the changing graph (see DESIGN.md); this strategy trains correctly.
        strategy="ddp_find_unused_parameters_true" if distributed else "auto",
        precision=t.precision,
        # Batch norm (DiscoGAN's nets) sees the global batch across GPUs, as one process would; torch's
        # SyncBatchNorm exists for GPUs only, so CPU (gloo) DDP keeps per-process statistics.
        sync_batchnorm=distributed and _uses_batch_norm(cfg) and t.accelerator != "cpu" and torch.cuda.is_available(),
        use_distributed_sampler=False,  # UnpairedSampler shards by rank itself, keeping resume exact
        logger=[TensorBoardLogger(logs, name="tensorboard", version=version, default_hp_metric=False),
                CSVLogger(logs, name="csv", version=version)],
        callbacks=[*loop_callbacks(cfg), SampleGrids(run_dir / "samples", t.sample_every_n_steps), *extra,
                   *checkpoints],
        log_every_n_steps=t.log_every_n_steps,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        enable_model_summary=False,
    )


def fit(cfg: Config, run_dir: Path, resume_from: Path | None = None, lock: RunLock | None = None) -> FitResult:
    """Train `cfg` into `run_dir`, continuing from `resume_from` when given. A new run that fails before its
    first batch (unreadable data, a bad --init) leaves no run folder behind."""
    built: list[pl.Trainer] = []
    try:
        return _fit(cfg, run_dir, resume_from, built)
    except BaseException:
        trained = built and batches_seen(built[0]) > 0
        if lock is not None and lock.created and not trained and not (run_dir / "last.ckpt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if lock is not None:
            lock.release()


def build_checked(cfg: Config) -> TranslationModel:
    """The LightningModule `cfg` names. config.validate refuses the nets a model cannot use, so a ValueError
    from a model or net constructor is still the user's choice of settings: a ConfigError naming them, not
    a traceback. Only construction is guarded; a ValueError while training stays a bug's traceback."""
    try:
        return build_model(cfg)
    except ValueError as exc:
        m = cfg.model
        raise ConfigError(f"model.name={m.name} with model.generator.arch={m.generator.arch} and "
                          f"model.discriminator.arch={m.discriminator.arch}: {str(exc).strip().splitlines()[0]}"
                          ) from None


def _fit(cfg: Config, run_dir: Path, resume_from: Path | None, built: list[pl.Trainer]) -> FitResult:
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    model = build_checked(cfg)
    if cfg.train.init and resume_from is None:  # fine-tuning; a resumed run has its own weights
        load_init(model, cfg.train.init)
    data = UnpairedDataModule(cfg.data, seed=cfg.train.seed)
    trainer = build_trainer(cfg, run_dir)
    built.append(trainer)
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    start = time.perf_counter()
    # Lightning's DDP launcher re-runs this command once per extra rank; they must use this run folder.
    inherited = trainer.world_size > 1 and RUN_DIR_ENV not in os.environ
    if inherited:
        os.environ[RUN_DIR_ENV] = str(run_dir)
    try:
        trainer.fit(model, datamodule=data, ckpt_path=resume_from, weights_only=True)
    finally:
        if inherited:
            os.environ.pop(RUN_DIR_ENV, None)
    seconds = time.perf_counter() - start
    return FitResult(run_dir=run_dir, checkpoint=run_dir / "last.ckpt", samples=run_dir / "samples" / "latest.png",
                     batches=batches_seen(trainer), seconds=seconds,
                     batches_now=batches_seen(trainer) - _callback(trainer, BatchBudget).at_start,
                     is_global_zero=trainer.is_global_zero, stopped_by=_callback(trainer, GracefulStop).received)


def _callback(trainer: pl.Trainer, kind: type) -> Any:
    return next(c for c in trainer.callbacks if isinstance(c, kind))


def run_fit(target: str, config_file: str | None = None, overrides: list[str] | None = None,
            flags: dict[str, Any] | None = None, resume: bool = False,
            dry_run: bool = False) -> tuple[Config, Path, FitResult | None]:
    """What ``translate fit`` does: resolve, then train unless `dry_run`."""
    cfg, run_dir, ckpt = prepare(target, config_file, overrides, flags, resume)
    if dry_run:
        return cfg, run_dir, None
    # Fail on a missing folder before building anything (the data module scans the images once, later).
    if cfg.data.dir_a:
        folders = (Path(cfg.data.dir_a), Path(cfg.data.dir_b))
        for folder in folders:
            if not folder.is_dir():
                raise DataError(folder, "folder not found")
    else:
        root = resolve_dataset(cfg.data.dataset, cfg.data.root)
        folders = (root / "trainA", root / "trainB")
    cfg = concrete_augment(cfg, folders)
    run_dir, lock = claim_run_dir(cfg, run_dir, resume=ckpt is not None)
    return cfg, run_dir, fit(cfg, run_dir, resume_from=ckpt, lock=lock)


def load_init(model: TranslationModel, path: str | Path) -> None:
    """Fine-tuning: start `model` from other weights; optimizer, schedule and pools start fresh.

    `path` is a translate checkpoint of the same model (every net copied, architectures checked), a
    pretrained model name (g_ab from it, g_ba from the model that translates back, where the zoo has one) or a
    classic CycleGAN generator file (g_ab; g_ba from its ``..._G_B.pth`` sibling when there is one). The
    discriminators of the last two start fresh. Moving averages (train.ema) start afresh from the initial
    weights: the raw weights of a translate checkpoint are taken, as its discriminators were trained with them."""
    from translate.checkpoint import is_translate_checkpoint, not_found, read_torch_file, zoo_name

    name = zoo_name(path)
    if name is None:
        if not Path(path).exists():
            raise not_found(path)
        checkpoint = read_torch_file(path)
        if not is_translate_checkpoint(checkpoint):
            _init_generators(model, path, classic_pair(Path(path)))
            model.reset_ema()
            return
        block = check_block(checkpoint, path=path)
    else:
        from translate import zoo

        _init_generators(model, path, {"g_ab": name, "g_ba": zoo.ZOO[name].partner})
        model.reset_ema()
        return
    if block["model"] != model.name:
        raise CheckpointError(f"--init {path}: a {block['model']} checkpoint cannot initialise a {model.name} "
                              f"model (use --model {block['model']})")
    from translate.nets import full_kwargs

    for attr, spec in model.net_specs.items():
        theirs = block["nets"].get(attr)
        same = theirs is not None and theirs["arch"] == spec["arch"] and (
            full_kwargs(spec["kind"], theirs["arch"], theirs["kwargs"]) == full_kwargs(spec["kind"], spec["arch"],
                                                                                       spec["kwargs"]))
        if not same:
            got = "missing" if theirs is None else f"{theirs['arch']} {theirs['kwargs']}"
            raise CheckpointError(f"--init {path}: net '{attr}' is {got}, this run builds {spec['arch']} "
                                  f"{spec['kwargs']}; the architecture must match (same model.* settings)")
    model.load_state_dict(matching_state(checkpoint["state_dict"], tuple(model.ema), fresh=True), strict=True)


def classic_pair(path: Path) -> dict[str, str | Path | None]:
    """g_ab from a classic generator file and g_ba from its ``G_B`` sibling (``latest_net_G_A.pth`` ->
    ``latest_net_G_B.pth``) when that exists."""
    sibling = path.with_name(path.name.replace("net_G_A", "net_G_B")) if "net_G_A" in path.name else None
    return {"g_ab": path, "g_ba": sibling if sibling is not None and sibling.is_file() else None}


def _init_generators(model: TranslationModel, init: str | Path, sources: dict[str, str | Path | None]) -> None:
    """Load generator weights (pretrained names or classic files) into `model`'s g_ab / g_ba."""
    from translate.checkpoint import load_generator
    from translate.upstream import Layout

    if model.name != "cyclegan" or not {"g_ab", "g_ba"} <= set(model.net_specs):
        raise CheckpointError(f"--init {init}: CycleGAN generator weights cannot initialise a {model.name} model "
                              "(use --model cyclegan)")
    for attr, source in sources.items():
        if source is None:
            log.info("--init %s: %s starts fresh (no weights for that direction)", init, attr)
            continue
        found = load_generator(source, log=log.info)  # a classic file (a Path) or a pretrained model name
        spec = model.net_specs[attr]
        ours, theirs = Layout(spec["arch"], spec["kwargs"]), Layout(found.arch, found.kwargs)
        if spec["arch"] != found.arch or ours.full_kwargs() != theirs.full_kwargs():
            raise CheckpointError(
                f"--init {init}: {found.describe()} does not fit this run's {attr} ({ours.describe() if spec['arch'] in ('resnet', 'unet') else spec['arch']}); "
                f"set the model.generator.* settings to match, e.g. {theirs.settings()}")
        getattr(model, attr).load_state_dict(found.net.state_dict(), strict=True)
        log.info("--init: %s from %s", attr, found.describe())

"""Lightning callbacks built by train.py: the loop's jobs, so that the LightningModules hold the recipe only.

- :class:`LinearDecay`: the learning rates of each epoch (constant, then linear decay), set at its start.
- :class:`Reseed`: global RNGs reseeded from (seed, rank, epoch) at each epoch start, for exact resume.
- :class:`BatchBudget`: ``train.max_steps`` counts batches (Lightning's max_steps counts optimizer steps).
- :class:`NonFinite`: stops a run whose losses became NaN or infinite, without a host sync per batch.
- :class:`SampleGrids`, :class:`Evaluate`: sample grids, and FID/KID with best.ckpt during training.
- :class:`EpochCheckpoint`: last.ckpt at every epoch end; :class:`GracefulStop`: SIGTERM/Ctrl-C.

:func:`batches_seen` is the one place that reads the loop's batch counter."""

from __future__ import annotations

import logging
import os
import random
import signal
import threading
from pathlib import Path

import numpy as np

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from translate.checkpoint import DIRECTIONS
from translate.data.transforms import to_model_range
from translate.errors import CheckpointError, NonFiniteLoss


def batches_seen(trainer: pl.Trainer | None) -> int:
    """Training batches seen, the current one included; restored on resume (0 outside training)."""
    return trainer.fit_loop.total_batch_idx + 1 if trainer is not None else 0


def linear_decay(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """LR factor at 0-based `epoch`: 1 for `n_epochs` epochs, then linear towards 0 over `n_epochs_decay`.

    Matches the classic ``lambda_rule`` with ``epoch_count = 1``: 1 - max(0, e + 1 - n) / (n_decay + 1).
    """
    # clamped at 0: --max-epochs beyond the schedule must not turn into a negative rate (gradient ascent)
    return max(0.0, 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1))


class LinearDecay(pl.Callback):
    """At each epoch start, every optimizer's rate is its base rate (``base_lrs``, in configure_optimizers'
    order: generators, discriminators) times :func:`linear_decay`. A pure function of the epoch, so a
    resumed run has the right rate without restoring scheduler objects, also when a resume changed a base
    rate. Logged as ``lr_factor``."""

    def __init__(self, base_lrs: list[float], n_epochs: int, n_epochs_decay: int) -> None:
        self.base_lrs, self.n_epochs, self.n_epochs_decay = base_lrs, n_epochs, n_epochs_decay

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        factor = linear_decay(trainer.current_epoch, self.n_epochs, self.n_epochs_decay)
        for opt, base in zip(trainer.optimizers, self.base_lrs, strict=True):
            for group in opt.param_groups:
                group["initial_lr"] = base
                group["lr"] = base * factor
        pl_module.log("lr_factor", factor, on_step=False, on_epoch=True, sync_dist=False)


class Reseed(pl.Callback):
    """Global RNGs (torch, numpy, random) reseeded from (run seed, rank, epoch) at each epoch start: with the
    seeded sampler, an epoch's randomness does not depend on what ran before it, so resume is exact."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed = (self.seed * 1_000_003 + trainer.global_rank * 7919 + trainer.current_epoch) % 2**31
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)


class BatchBudget(pl.Callback):
    """Stops after ``max_batches`` training batches in all (-1: no limit), then the epoch ends early and
    last.ckpt is written. Lightning's own max_steps counts optimizer steps, which vary per batch (a critic
    batch steps one optimizer, a CycleGAN batch two). ``at_start`` is the count a resumed attempt began at."""

    def __init__(self, max_batches: int) -> None:
        self.max_batches = max_batches
        self.at_start = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.at_start = batches_seen(trainer)  # as counted before this attempt's first batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if 0 < self.max_batches <= batches_seen(trainer):
            trainer.should_stop = True


class NonFinite(pl.Callback):
    """Raises :class:`NonFiniteLoss` once a loss was NaN or infinite. The module keeps the flag on the
    device (``watch_finite``); it is read every `every` batches, and always before a checkpoint can be
    written (an epoch's end, a stop), so a NaN never reaches last.ckpt and costs no sync per batch.
    Must come after :class:`BatchBudget` and :class:`GracefulStop`, whose stops it checks for."""

    def __init__(self, every: int) -> None:
        self.every = every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        flag = getattr(pl_module, "nonfinite", None)
        step = batches_seen(trainer)
        epoch_end = batch_idx + 1 >= trainer.num_training_batches
        if flag is not None and (epoch_end or trainer.should_stop or step % self.every == 0) and bool(flag):
            raise NonFiniteLoss(
                f"a loss became NaN or infinite by batch {step} (epoch {trainer.current_epoch + 1}); training "
                "stopped, and last.ckpt still holds the last finished epoch. Try a lower optim.lr, "
                "--precision 32, or check the data")


class SampleGrids(pl.Callback):
    """Every `every_n_steps` batches (and at the end), translate fixed test images of both domains.

    Grid columns are samples; rows are real A, G_AB(A), G_BA(G_AB(A)), real B, G_BA(B), G_AB(G_BA(B)).
    Files: ``<run>/samples/step_000500.png`` and ``<run>/samples/latest.png``.
    """

    def __init__(self, folder: str | Path, every_n_steps: int) -> None:
        self.folder = Path(folder)
        self.every_n_steps = every_n_steps
        self.images: tuple[torch.Tensor, torch.Tensor] | None = None
        self.last_written = -1

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.images = trainer.datamodule.sample_images()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = batches_seen(trainer)
        if self.every_n_steps and step % self.every_n_steps == 0:
            self.write(trainer, pl_module, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, batches_seen(trainer))

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> Path | None:
        if not trainer.is_global_zero or self.images is None or step == self.last_written:
            return None
        real_a, real_b = (to_model_range(x.to(pl_module.device)) for x in self.images)
        n = min(len(real_a), len(real_b))
        if n == 0:
            return None
        was_training = pl_module.training
        pl_module.eval()
        with torch.no_grad():
            rows = pl_module.sample_grid(real_a[:n], real_b[:n])
        pl_module.train(was_training)
        grid = make_grid(torch.cat([r.float().cpu() for r in rows]), nrow=n, padding=2, normalize=True,
                         value_range=(-1, 1))
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{step:06d}.png"
        save_image(grid, path)
        save_image(grid, self.folder / "latest.png")
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("samples", grid, global_step=step)
        self.last_written = step
        return path


log = logging.getLogger(__name__)


class Evaluate(pl.Callback):
    """Every `every` batches: FID and KID of both directions on the test split (see evaluate.py), logged
    as ``eval/fid_AtoB``, ``eval/kid_AtoB``, ..., ``eval/fid`` (mean of the directions) at the step of the
    batch's losses, and ``best.ckpt`` written when the monitored mean improves. Rank 0 scores; every rank gets the
    result, so all take the same decision about the (collective) checkpoint save."""

    def __init__(self, every: int, features: str, max_images: int, monitor: str, run_dir: str | Path,
                 seed: int) -> None:
        self.every, self.features, self.max_images, self.monitor = every, features, max_images, monitor
        self.run_dir = Path(run_dir)
        self.seed = seed
        self.scorer = None
        self.best: float | None = None
        self.best_batch = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from translate.errors import TranslateError
        from translate.evaluate import build_scorer, load_eval_data

        error = None
        if trainer.is_global_zero:  # fail before training when, say, the Inception weights cannot be had
            try:
                data_cfg = trainer.datamodule.cfg
                data = load_eval_data(data_cfg, self.seed, data_cfg.crop_size, self.max_images)
                self.scorer = build_scorer(data, self.features, pl_module.device, checks=False)
            except TranslateError as exc:
                error = str(exc)
        error = trainer.strategy.broadcast(error, src=0)
        if error:
            raise TranslateError(f"eval.every is set, but evaluation cannot run: {error}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = batches_seen(trainer)
        if step % self.every == 0:
            self.run(trainer, pl_module, step)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> dict[str, float]:
        metrics: dict[str, float] | None = None
        if trainer.is_global_zero:
            was_training = pl_module.training
            pl_module.eval()
            metrics = {}
            directions = [d for d, attr in DIRECTIONS.items() if hasattr(pl_module, attr)]  # CUT: AtoB only
            for direction in directions:  # the moving averages with train.ema
                scores, _ = self.scorer.score(pl_module.output_net(DIRECTIONS[direction]), direction)
                metrics[f"eval/fid_{direction}"] = scores["fid"]
                metrics[f"eval/kid_{direction}"] = scores["kid_mean"]
            pl_module.train(was_training)
            for name in ("fid", "kid"):
                metrics[f"eval/{name}"] = sum(metrics[f"eval/{name}_{d}"] for d in directions) / len(directions)
        metrics = trainer.strategy.broadcast(metrics, src=0)
        value = metrics[f"eval/{self.monitor}"]
        if self.best is None or value < self.best:
            self.best, self.best_batch = value, step
            trainer.save_checkpoint(self.run_dir / "best.ckpt", weights_only=False)
        metrics[f"eval/best_{self.monitor}"] = self.best
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step - 1)  # the step Lightning logs a batch's losses at
        if trainer.is_global_zero:
            each = ", ".join(f"{d[0]}->{d[-1]} {metrics[f'eval/fid_{d}']:.2f}" for d in DIRECTIONS
                             if f"eval/fid_{d}" in metrics)
            log.info("batch %d: FID %.2f (%s); best %s %.4g at batch %d", step, metrics["eval/fid"], each,
                     self.monitor, self.best, self.best_batch)
        return metrics

    def state_dict(self) -> dict[str, float | int | None]:
        return {"best": self.best, "best_batch": self.best_batch}

    def load_state_dict(self, state_dict: dict) -> None:
        self.best, self.best_batch = state_dict["best"], state_dict["best_batch"]


class EpochCheckpoint(Checkpoint):
    """Write ``<run>/last.ckpt`` at the end of every epoch and when training ends or stops (--max-steps, a
    signal), so a crash or a killed job (no handler runs on SIGKILL or a power cut) loses at most the epoch in
    progress, and ``--resume`` continues from the last finished epoch exactly. Lightning's ``save_last``
    writes only when training ends.

    The file is written beside the old one and renamed over it, so a kill during the write leaves the
    previous ``last.ckpt`` whole. All ranks call this (the save has a barrier); rank 0 writes. As a
    ``Checkpoint`` subclass, Lightning runs it after the other callbacks, so their state is current.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def save(self, trainer: pl.Trainer) -> None:
        partial = self.path.with_name(f".{self.path.name}.partial")
        try:
            trainer.save_checkpoint(partial, weights_only=False)
            if trainer.is_global_zero:
                os.replace(partial, self.path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a failed write as a RuntimeError
            if isinstance(exc, RuntimeError) and "write" not in str(exc).lower():
                raise
            partial.unlink(missing_ok=True)
            reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0]
            kept = "the previous last.ckpt is kept" if self.path.exists() else "no checkpoint was written yet"
            raise CheckpointError(f"cannot write {self.path} ({reason}); {kept}, and --resume continues "
                                  "from it once there is room") from None
        trainer.strategy.barrier("EpochCheckpoint")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.should_stop or 0 < trainer.max_epochs <= trainer.current_epoch + 1:
            return  # training ends now: on_train_end writes this state once, with the epoch counted
        self.save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.save(trainer)  # the final state, with the last epoch counted as finished


class GracefulStop(pl.Callback):
    """SIGTERM (a preempted job) or Ctrl-C finishes the current batch, then stops like --max-steps does:
    the epoch ends early and ``last.ckpt`` is written, so ``--resume`` continues from the step reached.
    A second Ctrl-C aborts at once. ``received`` names the signal after a stop."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals can only be handled in the main thread

        def handler(signum: int, frame: object) -> None:
            if self.received is not None and signum == signal.SIGINT:
                self._restore()
                raise KeyboardInterrupt
            self.received = signal.Signals(signum).name
            trainer.should_stop = True
            log.warning("%s: stopping after this batch and writing a checkpoint (Ctrl-C again aborts now)",
                        self.received)

        for sig in (signal.SIGINT, signal.SIGTERM):  # replaces Lightning's SIGTERM handling, which saves nothing
            self._previous[sig] = signal.signal(sig, handler)

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._restore()

"""Lightning callbacks built by train.py: sample grids (PNG files and the logger), evaluation during
training (FID/KID, best.ckpt), last.ckpt at every epoch end, and graceful stops."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from translate.data.transforms import to_model_range
from translate.errors import CheckpointError


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
        step = pl_module.batches_done
        if self.every_n_steps and step % self.every_n_steps == 0:
            self.write(trainer, pl_module, step)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.write(trainer, pl_module, pl_module.batches_done)

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
        step = pl_module.batches_done
        if step % self.every == 0:
            self.run(trainer, pl_module, step)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int) -> dict[str, float]:
        metrics: dict[str, float] | None = None
        if trainer.is_global_zero:
            was_training = pl_module.training
            pl_module.eval()
            metrics = {}
            for direction, net in (("AtoB", pl_module.g_ab), ("BtoA", pl_module.g_ba)):
                scores, _ = self.scorer.score(net, direction)
                metrics[f"eval/fid_{direction}"] = scores["fid"]
                metrics[f"eval/kid_{direction}"] = scores["kid_mean"]
            pl_module.train(was_training)
            for name in ("fid", "kid"):
                metrics[f"eval/{name}"] = (metrics[f"eval/{name}_AtoB"] + metrics[f"eval/{name}_BtoA"]) / 2
        metrics = trainer.strategy.broadcast(metrics, src=0)
        value = metrics[f"eval/{self.monitor}"]
        if self.best is None or value < self.best:
            self.best, self.best_batch = value, step
            trainer.save_checkpoint(self.run_dir / "best.ckpt", weights_only=False)
        metrics[f"eval/best_{self.monitor}"] = self.best
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step - 1)  # the step Lightning logs a batch's losses at
        if trainer.is_global_zero:
            log.info("batch %d: FID %.2f (A->B %.2f, B->A %.2f); best %s %.4g at batch %d", step, metrics["eval/fid"],
                     metrics["eval/fid_AtoB"], metrics["eval/fid_BtoA"], self.monitor, self.best, self.best_batch)
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

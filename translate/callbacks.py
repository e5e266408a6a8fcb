"""Lightning callbacks built by train.py: sample grids (PNG files and the logger) and graceful stops."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from torchvision.utils import make_grid, save_image

from translate.data.transforms import to_model_range


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

"""Shared fixtures: tiny configs and tiny unpaired image folders, so every test runs in seconds on a CPU."""

from __future__ import annotations

import socket
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

TINY = {
    "model": {"generator": {"ngf": 4, "n_blocks": 1}, "discriminator": {"ndf": 4, "n_layers": 2}, "pool_size": 3},
    "data": {"load_size": 36, "crop_size": 32, "batch_size": 1, "num_workers": 0, "n_samples": 2},
    "optim": {"n_epochs": 1, "n_epochs_decay": 1},
    "train": {"accelerator": "cpu", "devices": "1", "sample_every_n_steps": 2, "log_every_n_steps": 1,
              "checkpoint_every_n_epochs": 0},
}


# TINY's model section is CycleGAN's (its nets' arguments); the other models take other arguments.
TINY_MODEL = {"cyclegan": TINY["model"],
              "discogan": {"generator": {"ngf": 4}, "discriminator": {"ndf": 4}},
              "genegan": {"generator": {"ngf": 4}, "discriminator": {"ndf": 4}},
              "cut": {"generator": {"ngf": 4, "n_blocks": 1}, "discriminator": {"ndf": 4, "n_layers": 2}},
              "fastcut": {"generator": {"ngf": 4, "n_blocks": 1}, "discriminator": {"ndf": 4, "n_layers": 2}}}


def tiny(name: str = "cyclegan") -> dict:
    """TINY for model `name`: its own tiny nets, TINY's data, optim and train sections."""
    return {**TINY, "model": {"name": name, **TINY_MODEL[name]}}


def make_domain(folder: Path, n: int, seed: int, size: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def batch_of(n: int = 1, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """A training batch as the datamodule yields it: uint8 images [n,3,size,size] of both domains."""
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8) for k in "AB"}


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """How often `optimizer` has stepped, from its own state (Adam's and RMSprop's per-parameter ``step``)."""
    return max((int(s["step"]) for s in optimizer.state.values() if "step" in s), default=0)


class FitLog:
    """What :func:`fit_batches` saw: after each batch, each optimizer's step count and the logged metrics."""

    def __init__(self) -> None:
        self.steps: list[list[int]] = []  # [batch][optimizer, in configure_optimizers' order]
        self.metrics: list[dict[str, float]] = []  # trainer.callback_metrics after each batch
        self.trainer = None

    @property
    def keys(self) -> set[str]:
        return set().union(*self.metrics) if self.metrics else set()


def fit_batches(model, batches: list[dict[str, torch.Tensor]]) -> FitLog:
    """Train `model` for one epoch over `batches` with a small real Lightning Trainer on the CPU (no logger,
    checkpoints or progress bar) and record, per batch, the optimizers' step counts and the logged terms.

    Runs on one CPU thread: these nets are tiny, and on a shared machine intra-op threads mostly wait for each
    other. The thread count is restored afterwards (results elsewhere are compared bit for bit)."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    log = FitLog()

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            log.steps.append([optimizer_steps(opt) for opt in trainer.optimizers])
            log.metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        log.trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, callbacks=[Record()])
        log.trainer.fit(model, train_dataloaders=DataLoader(batches, batch_size=None))  # each item is a batch
    finally:
        torch.set_num_threads(threads)
    assert len(log.steps) == len(batches)
    return log


def make_unpaired(root: Path) -> Path:
    """root/data with trainA (4), trainB (3), testA (2), testB (2) random images."""
    for i, (split, n) in enumerate({"trainA": 4, "trainB": 3, "testA": 2, "testB": 2}.items()):
        make_domain(root / "data" / split, n, seed=i)
    return root / "data"


def write_tiny_config(root: Path, dataset: Path) -> Path:
    """root/tiny.yaml: a tiny CycleGAN on `dataset`, writing runs under root/runs."""
    cfg = {**TINY, "data": {**TINY["data"], "dataset": str(dataset)},
           "train": {**TINY["train"], "out_dir": str(root / "runs")}}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def train_tiny_run(root: Path, name: str = "c") -> Path:
    """root/runs/<name>: a tiny CycleGAN trained for one batch on make_unpaired(root) (module fixtures build
    their checkpoint with it once)."""
    from typer.testing import CliRunner

    from translate.cli import app

    result = CliRunner().invoke(app, ["fit", str(write_tiny_config(root, make_unpaired(root))), "--name", name,
                                      "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    return root / "runs" / name


@pytest.fixture
def unpaired(tmp_path: Path) -> Path:
    """A dataset folder with trainA (4), trainB (3), testA (2), testB (2) random images."""
    return make_unpaired(tmp_path)


@pytest.fixture
def tiny_config(tmp_path: Path, unpaired: Path) -> Path:
    """A YAML config for a tiny CycleGAN on `unpaired`, writing runs under tmp_path/runs."""
    return write_tiny_config(tmp_path, unpaired)


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder, honours Range, and can misbehave per path (set these with monkeypatch.setattr)."""

    cut_once: set[str] = set()  # promise the whole body, send half, drop the connection (first request only)
    short_length: set[str] = set()  # declare only half the body as Content-Length and send just that
    close_early: set[str] = set()  # no Content-Length: send half the body and close, as if that were all
    drip: set[str] = set()  # promise the whole body, send 1000 bytes, then a byte every 0.05 s (5 s at most)
    ranges: list[str] = []  # Range headers received, in order

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        header = self.headers.get("Range")
        if header:
            self.ranges.append(header)
        if header and header.startswith("bytes="):
            start = int(header[6:].split("-")[0])
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if self.path in self.close_early:  # HTTP/1.0 without a length: the close ends the body
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            return
        if self.path in self.short_length:
            body = body[: len(body) // 2]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in self.drip:
            try:
                self.wfile.write(body[:1000])
                for i in range(1000, min(len(body), 1100)):  # bounded: ends by itself if nobody hangs up
                    self.wfile.flush()
                    time.sleep(0.05)
                    self.wfile.write(body[i : i + 1])
            except OSError:  # the client gave up on us
                pass
            return
        if self.path in self.cut_once:  # promise the whole body, send half, drop the connection
            self.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server(tmp_path: Path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    """(folder, a tiny CycleGAN checkpoint, a tiny GeneGAN checkpoint), each fitted for 2 batches."""
    from typer.testing import CliRunner

    from translate.cli import app

    root = tmp_path_factory.mktemp("demo")
    config = write_tiny_config(root, make_unpaired(root / "data"))
    cfg = yaml.safe_load(config.read_text())
    gene = {**tiny("genegan"), "losses": {"critic_burst": 0},
            "data": {**cfg["data"], "load_size": 32, "crop_size": 32, "batch_size": 2}, "train": cfg["train"]}
    (root / "gene.yaml").write_text(yaml.safe_dump(gene))
    for path, name in ((config, "c"), (root / "gene.yaml", "g")):
        result = CliRunner().invoke(app, ["fit", str(path), "--name", name, "--max-steps", "2"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    return root, str(root / "runs" / "c" / "last.ckpt"), str(root / "runs" / "g" / "last.ckpt")

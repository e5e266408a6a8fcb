"""The `translate` CLI end to end on tiny data: fit, exact resume, checkpoints, and user errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from translate.cli import app
from translate.errors import ConfigError

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_help_lists_commands_and_options():
    result = run("--help")
    assert result.exit_code == 0 and "fit" in result.output
    result = run("fit", "--help")
    for option in ("--config", "--set", "--resume", "--dry-run", "--max-epochs", "--devices", "--precision"):
        assert option in result.output


def test_dry_run_prints_resolved_config(tiny_config: Path):
    result = run("fit", "shapes", "--dry-run", "--set", "losses.lambda_cycle=3", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load(result.output.split("\n", 1)[1])
    assert cfg["losses"]["lambda_cycle"] == 3.0 and cfg["data"]["batch_size"] == 2
    assert cfg["data"]["crop_size"] == 32  # from the shapes preset


def test_fit_writes_run_folder_and_resume_equals_uninterrupted_run(tiny_config: Path, tmp_path: Path):
    runs = tmp_path / "runs"
    straight = run("fit", str(tiny_config), "--name", "straight", "--max-epochs", "2")
    assert straight.exit_code == 0, straight.output
    first = run("fit", str(tiny_config), "--name", "split", "--max-epochs", "1")
    assert first.exit_code == 0, first.output
    # A worker process prefetches indices as soon as the loader starts: the pairing must still be epoch 2's.
    second = run("fit", str(tiny_config), "--name", "split", "--max-epochs", "2", "--resume",
                 "--set", "data.num_workers=1")
    assert second.exit_code == 0, second.output

    run_dir = runs / "straight"
    assert (run_dir / "config.yaml").is_file() and (run_dir / "samples" / "latest.png").is_file()
    assert list((run_dir / "logs" / "csv").glob("version_0/metrics.csv"))
    assert list((run_dir / "logs" / "tensorboard" / "version_0").glob("events.*"))
    assert len(list((runs / "split" / "logs" / "tensorboard").glob("version_*"))) == 2  # the resume's own logs

    a = torch.load(run_dir / "last.ckpt", map_location="cpu", weights_only=True)  # loads safely
    b = torch.load(runs / "split" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 2 * 4 * 2  # 2 epochs x 4 batches x (G + D)
    assert a["translate"]["model"] == "cyclegan"
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for pool in ("pool_a", "pool_b"):
        assert torch.equal(a["translate"]["state"][pool]["images"], b["translate"]["state"][pool]["images"])
    # The optimizer continued too, with the decayed LR of the second epoch (n_epochs = n_epochs_decay = 1).
    assert a["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.5)
    assert a["optimizer_states"][0]["state"][0]["step"] == b["optimizer_states"][0]["state"][0]["step"] == 8


def test_new_run_never_overwrites_an_old_one(tiny_config: Path, tmp_path: Path):
    assert run("fit", str(tiny_config), "--name", "x", "--max-steps", "1").exit_code == 0
    result = run("fit", str(tiny_config), "--name", "x", "--max-steps", "1")
    assert result.exit_code == 0
    assert (tmp_path / "runs" / "x" / "last.ckpt").is_file() and (tmp_path / "runs" / "x-2" / "last.ckpt").is_file()


def _error(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_missing_folder(tmp_path: Path):
    assert "is not a preset" in _error("fit", str(tmp_path / "nope"))


def test_folder_without_train_domains(tmp_path: Path):
    (tmp_path / "ds" / "trainA").mkdir(parents=True)
    msg = _error("fit", str(tmp_path / "ds"), "--out-dir", str(tmp_path / "runs"), "--max-steps", "1")
    assert "missing trainB" in msg


def test_empty_and_unreadable_domains(tiny_config: Path, unpaired: Path):
    for p in (unpaired / "trainB").iterdir():
        p.unlink()
    assert "trainB: no images" in _error("fit", str(tiny_config), "--max-steps", "1")
    (unpaired / "trainB" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert "no readable images (1 unreadable)" in _error("fit", str(tiny_config), "--max-steps", "1")


def test_unknown_config_key_and_bad_value():
    assert "did you mean lambda_cycle" in _error("fit", "shapes", "--set", "losses.lambda_cycel=3", "--dry-run")
    assert "data.batch_size: expected int" in _error("fit", "shapes", "--set", "data.batch_size=big", "--dry-run")


def test_resume_errors(tiny_config: Path, tmp_path: Path):
    assert "nothing to resume" in _error("fit", str(tiny_config), "--name", "none", "--resume")
    assert run("fit", str(tiny_config), "--name", "r", "--max-steps", "1").exit_code == 0
    ckpt = tmp_path / "runs" / "r" / "last.ckpt"
    assert "model.* settings cannot change" in _error(
        "fit", str(tiny_config), "--name", "r", "--resume", "--set", "model.generator.ngf=8")
    data = torch.load(ckpt, map_location="cpu", weights_only=True)
    data["translate"]["model"] = "discogan"  # a checkpoint of another model
    torch.save(data, ckpt)
    assert "checkpoint of a discogan model, expected cyclegan" in _error(
        "fit", str(tiny_config), "--name", "r", "--resume")
    ckpt.write_bytes(b"garbage")
    assert "a text file (YAML?), not a checkpoint" in _error("fit", str(tiny_config), "--name", "r", "--resume")


def test_ddp_on_two_cpu_processes_shares_one_run_folder(tiny_config: Path, tmp_path: Path):
    """Lightning's launcher re-runs the command per rank: all ranks must train into rank 0's folder.
    Evaluation during training runs on rank 0 and every rank takes part in saving best.ckpt (no hang)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [sys.executable, "-m", "translate.cli", "fit", str(tiny_config), "--name", "ddp", "--devices", "2",
         "--max-epochs", "2", "--set", "eval.every=2", "--set", "eval.features=pixels"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["ddp"]
    assert (tmp_path / "runs" / "ddp" / "best.ckpt").is_file() and proc.stderr.count("batch 4: FID") == 1
    ckpt = torch.load(tmp_path / "runs" / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    # 4 A images -> 4 samples per epoch, sharded: 2 batches per rank per epoch, 2 optimizer steps each.
    assert ckpt["global_step"] == 2 * 2 * 2 and ckpt["epoch"] == 2
    assert proc.stdout.count("trained ") == 1  # only rank 0 reports


def test_a_crash_loses_at_most_the_epoch_in_progress_and_resume_is_exact(tiny_config: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch):
    """last.ckpt is written at every epoch end, not only when training ends: a run that dies in epoch 3
    (no handler runs on SIGKILL or a power cut) resumes from the end of epoch 2 and ends equal to a run that
    never stopped."""
    import pytorch_lightning as pl

    from translate import train

    runs = tmp_path / "runs"
    assert run("fit", str(tiny_config), "--name", "straight", "--max-epochs", "3").exit_code == 0

    seen: list[tuple[int, int, int | None]] = []

    class Crash(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            ckpt = runs / "crash" / "last.ckpt"
            epoch = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] if ckpt.exists() else None
            seen.append((trainer.current_epoch, batch_idx, epoch))
            if trainer.current_epoch == 2 and batch_idx == 2:
                raise RuntimeError("simulated crash")

    build = train.build_trainer

    def with_crash(cfg, run_dir):
        trainer = build(cfg, run_dir)
        trainer.callbacks.insert(0, Crash())
        return trainer

    monkeypatch.setattr(train, "build_trainer", with_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run("fit", str(tiny_config), "--name", "crash", "--max-epochs", "3")
    monkeypatch.undo()
    # No checkpoint during epoch 1; from epoch 2 on, the one written when the previous epoch ended.
    assert {(e, b): saved for e, b, saved in seen if b == 0} == {(0, 0): None, (1, 0): 0, (2, 0): 1}
    assert not list((runs / "crash").glob(".*partial"))  # written beside, then renamed over last.ckpt

    resumed = run("fit", str(tiny_config), "--name", "crash", "--max-epochs", "3", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "trained 12 batches (4 in this run)" in resumed.output  # epoch 3 again, from its start
    a = torch.load(runs / "straight" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(runs / "crash" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 3 * 4 * 2 and a["epoch"] == b["epoch"] == 3
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_discriminators_can_have_their_own_learning_rate(tiny_config: Path, tmp_path: Path):
    result = run("fit", str(tiny_config), "--name", "ttur", "--max-epochs", "2", "--set", "optim.lr_d=1e-4")
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tmp_path / "runs" / "ttur" / "last.ckpt", map_location="cpu", weights_only=True)
    g, d = (ckpt["optimizer_states"][i]["param_groups"][0] for i in (0, 1))
    # both follow the schedule (epoch 2 of n_epochs = n_epochs_decay = 1: half the rate)
    assert g["lr"] == pytest.approx(2e-4 * 0.5) and d["lr"] == pytest.approx(1e-4 * 0.5)
    assert run("fit", "stripes", "--dry-run", "--set", "optim.lr_d=-1").exit_code != 0


def test_strategy_flag_forces_ddp_and_rejects_unknown_strategies(tiny_config: Path, tmp_path: Path):
    from translate import train
    from translate.config import resolve

    cfg = resolve(yaml.safe_load(tiny_config.read_text()), flags={"train.strategy": "ddp"})
    trainer = train.build_trainer(cfg, tmp_path / "runs" / "one")
    assert type(trainer.strategy).__name__ == "DDPStrategy" and trainer.world_size == 1
    assert type(train.build_trainer(resolve(yaml.safe_load(tiny_config.read_text())), tmp_path / "x").strategy).__name__ \
        == "SingleDeviceStrategy"
    result = runner.invoke(app, ["fit", str(tiny_config), "--dry-run", "--strategy", "fsdp"])
    assert result.exit_code != 0 and "train.strategy" in result.output


def test_resume_after_a_mid_epoch_stop_continues_from_the_step_reached(tiny_config: Path, tmp_path: Path):
    """--max-steps can stop inside an epoch; resuming continues from there (not from epoch 1).

    Lightning records such an epoch as finished, so the resumed run starts the next epoch: bit-exact resume
    is guaranteed from epoch-end checkpoints (see the test above), not from mid-epoch stops.
    """
    runs = tmp_path / "runs"
    assert run("fit", str(tiny_config), "--name", "split", "--max-steps", "3").exit_code == 0  # 3 of 4 batches
    mid = torch.load(runs / "split" / "last.ckpt", map_location="cpu", weights_only=True)
    assert mid["global_step"] == 3 * 2
    result = run("fit", str(tiny_config), "--name", "split", "--max-epochs", "2", "--max-steps", "-1", "--resume")
    assert result.exit_code == 0, result.output
    end = torch.load(runs / "split" / "last.ckpt", map_location="cpu", weights_only=True)
    assert end["epoch"] == 2 and end["global_step"] == (3 + 4) * 2  # continued: 3 batches, then one full epoch
    assert end["optimizer_states"][0]["state"][0]["step"] == 7
    assert "trained 7 batches (4 in this run)" in result.output


def test_n_critic_steps_the_generators_every_nth_batch(tiny_config: Path, tmp_path: Path):
    result = run("fit", str(tiny_config), "--name", "gp", "--max-epochs", "1",
                 "--set", "losses.adversarial=wgan-gp", "--set", "losses.n_critic=2", "--set", "model.pool_size=-1")
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tmp_path / "runs" / "gp" / "last.ckpt", map_location="cpu", weights_only=True)
    # 4 batches: the discriminators step on each, the generators on batches 2 and 4.
    assert ckpt["global_step"] == 4 + 2
    assert ckpt["optimizer_states"][0]["state"][0]["step"] == 2
    assert ckpt["optimizer_states"][1]["state"][0]["step"] == 4
    assert ckpt["translate"]["state"]["pool_a"]["images"].numel() == 0  # no pool for a Wasserstein critic


def test_sigterm_finishes_the_batch_writes_a_checkpoint_and_resume_continues(tiny_config: Path, tmp_path: Path):
    """A preempted job (SIGTERM) stops after the current batch with last.ckpt written; --resume goes on."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    # output to files, not pipes: nobody reads a pipe while we wait, and a full one would stall training
    stdout, stderr = (open(tmp_path / name, "w+") for name in ("stdout.txt", "stderr.txt"))
    with stdout, stderr:
        proc = subprocess.Popen([sys.executable, "-m", "translate.cli", "fit", str(tiny_config), "--name", "pre",
                                 "--max-epochs", "500"], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr,
                                text=True)
        # Ready once the first sample grid exists: it is written after batch 2 (sample_every_n_steps), so
        # training has started and the stop handler (installed at train start) is in place.
        samples = tmp_path / "runs" / "pre" / "samples"
        deadline = time.monotonic() + 120
        while not list(samples.glob("step_*.png")):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                stderr.seek(0)
                pytest.fail(f"training never wrote its first sample grid (exit {proc.returncode}); no signal sent:\n"
                            f"{stderr.read()[-2000:]}")
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            pytest.fail("SIGTERM did not stop training within 120 s")
        stderr.seek(0)
        err = stderr.read()
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err
    ckpt = torch.load(tmp_path / "runs" / "pre" / "last.ckpt", map_location="cpu", weights_only=True)
    steps = ckpt["global_step"]
    assert 2 * 2 <= steps < 500 * 4 * 2  # at least the two batches before the first sample grid
    resumed = run("fit", str(tiny_config), "--name", "pre", "--resume", "--max-steps", str(steps // 2 + 2))
    assert resumed.exit_code == 0, resumed.output
    after = torch.load(tmp_path / "runs" / "pre" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["global_step"] > steps


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_config: Path, tmp_path: Path):
    assert run("fit", str(tiny_config), "--name", "nan", "--max-epochs", "1").exit_code == 0
    ckpt = tmp_path / "runs" / "nan" / "last.ckpt"
    good = ckpt.read_bytes()
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "nan", "--resume", "--max-epochs", "3",
                                 "--set", "optim.lr=1e30"])
    assert result.exit_code != 0 and "NaN or infinite" in result.output, result.output
    assert "Traceback" not in result.output
    assert ckpt.read_bytes() == good  # the broken weights were never saved


def test_ddp_on_two_cpu_processes_matches_one_process_on_the_same_global_batch(tiny_config: Path, tmp_path: Path):
    """2 ranks x batch 1 (gloo) == 1 process x batch 2: same samples per step, gradients averaged; the
    generators' moving averages (train.ema, updated on every rank after the step) agree too."""
    import os
    import subprocess
    import sys

    common = ["--max-epochs", "1", "--set", "model.pool_size=0", "--set", "data.num_workers=0",
              "--set", "train.ema=true", "--set", "train.ema_decay=0.5", "--set", "train.ema_rampup=0"]
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run(
        [sys.executable, "-m", "translate.cli", "fit", str(tiny_config), "--name", "ddp", "--devices", "2",
         "--batch-size", "1", *common], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = run("fit", str(tiny_config), "--name", "one", "--batch-size", "2", *common)
    assert single.exit_code == 0, single.output
    from translate.checkpoint import load_checkpoint, load_net

    a, b = (load_checkpoint(tmp_path / "runs" / name / "last.ckpt") for name in ("ddp", "one"))
    assert a["global_step"] == b["global_step"] == 2 * 2  # 4 A images: 2 steps of 2 images, G + D each
    # Compare what the nets compute. Biases just before an InstanceNorm have a true gradient of zero, so
    # Adam turns their float noise into +-lr steps that differ between runs and cancel in the output.
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for attr, weights in (("g_ab", "raw"), ("g_ba", "raw"), ("d_a", "raw"), ("d_b", "raw"), ("g_ab", "ema"),
                          ("g_ba", "ema")):
        with torch.no_grad():
            torch.testing.assert_close(load_net(a, attr, weights=weights)(x), load_net(b, attr, weights=weights)(x),
                                       rtol=1e-4, atol=1e-4, msg=f"{attr} {weights}")
    with torch.no_grad():
        assert not torch.allclose(load_net(a, "g_ab", weights="ema")(x), load_net(a, "g_ab", weights="raw")(x))


def test_externally_launched_ranks_share_the_run_name(tiny_config: Path, tmp_path: Path, monkeypatch):
    """Under torchrun/srun every rank resolves the same folder; an existing run needs --resume or a new name."""
    from translate.train import prepare

    monkeypatch.setenv("WORLD_SIZE", "2")
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "config.yaml").write_text("rank 0 got here first")
    _, run_dir, _ = prepare(str(tiny_config), flags={"train.run_name": "r"})
    assert run_dir == tmp_path / "runs" / "r"  # not r-2: the ranks could not agree on a counter
    (run_dir / "last.ckpt").write_bytes(b"a finished run")
    with pytest.raises(ConfigError, match="pass a new --name, or --resume"):
        prepare(str(tiny_config), flags={"train.run_name": "r"})
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert prepare(str(tiny_config), flags={"train.run_name": "r"})[1] == tmp_path / "runs" / "r-2"
    # the run folder's lock: rank 0 takes it (keeping the shared name), the other ranks use the folder as it is
    from translate.config import resolve
    from translate.train import claim_run_dir

    cfg = resolve({"train": {"out_dir": str(tmp_path / "runs")}})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert claim_run_dir(cfg, tmp_path / "runs" / "s", resume=False) == (tmp_path / "runs" / "s", None)
    monkeypatch.setenv("RANK", "0")
    (tmp_path / "runs" / "s").mkdir()
    (tmp_path / "runs" / "s" / "config.yaml").write_text("an earlier attempt that never trained")
    folder, lock = claim_run_dir(cfg, tmp_path / "runs" / "s", resume=False)
    assert folder == tmp_path / "runs" / "s" and lock is not None
    lock.release()


@pytest.mark.parametrize("model, objective", [("cyclegan", "lsgan"), ("cyclegan", "wgan-gp"), ("discogan", "vanilla")])
def test_bf16_mixed_precision_trains_with_finite_losses(tiny_config: Path, tmp_path: Path, model, objective):
    """bf16 autocast through Lightning (CPU here), including WGAN-GP's double backward."""
    import csv

    args = ["fit", str(tiny_config), "--name", "bf16", "--max-steps", "3", "--precision", "bf16-mixed",
            "--model", model, "--adversarial", objective]
    if model == "cyclegan":
        args += ["--set", "model.pool_size=-1"]
    else:
        args += ["--batch-size", "2", "--set", "model.generator.ngf=4", "--set", "model.discriminator.ndf=4"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "runs" / "bf16" / "logs" / "csv" / "version_0" / "metrics.csv").open()))
    values = [float(v) for row in rows for k, v in row.items() if v and k.startswith(("g/", "d/"))]
    assert values and all(math.isfinite(v) for v in values)


# ---------------------------------------------------------------- issue 21: concurrency, disk full, leftovers


def test_two_runs_never_share_a_folder_and_a_run_in_use_cannot_be_resumed(tiny_config: Path, tmp_path: Path):
    from translate.train import LOCK_NAME, RunLock

    runs = tmp_path / "runs"
    assert run("fit", str(tiny_config), "--name", "same", "--max-steps", "1").exit_code == 0
    other = RunLock(runs / "same")  # another translate fit training in that folder right now
    assert other.acquire()
    try:
        msg = _error("fit", str(tiny_config), "--name", "same", "--resume", "--max-epochs", "2")
        assert "in use by another translate fit" in msg and str(os.getpid()) in msg
        # two runs started together both see the empty folder 'race'; the one that locks it second moves on
        racer = RunLock(runs / "race")
        assert racer.acquire()
        try:
            result = run("fit", str(tiny_config), "--name", "race", "--max-steps", "1")
            assert result.exit_code == 0, result.output
            assert (runs / "race-2" / "last.ckpt").is_file()
            assert [p.name for p in (runs / "race").iterdir()] == [LOCK_NAME]  # nothing of the second run
        finally:
            racer.release()
    finally:
        other.release()
    result = run("fit", str(tiny_config), "--name", "same", "--resume", "--max-epochs", "2")
    assert result.exit_code == 0, result.output  # free again once the other run ended


def test_a_run_that_fails_before_training_leaves_no_folder(tiny_config: Path, tmp_path: Path):
    assert "checkpoint not found" in _error("fit", str(tiny_config), "--name", "early", "--init",
                                            str(tmp_path / "missing.ckpt"))
    assert not (tmp_path / "runs" / "early").exists()
    assert run("fit", str(tiny_config), "--name", "early", "--max-steps", "1").exit_code == 0
    assert (tmp_path / "runs" / "early" / "last.ckpt").is_file()  # the name is still free, not early-2


def test_disk_full_while_checkpointing_keeps_the_last_good_checkpoint(tiny_config: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    import errno

    import pytorch_lightning as pl

    runs = tmp_path / "runs"
    real = pl.Trainer.save_checkpoint
    calls = []

    def fill_the_disk(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) == 1:  # the end of epoch 1 fits on the disk
            return real(self, filepath, *args, **kwargs)
        Path(filepath).write_bytes(b"\0" * 4096)  # part of the file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(filepath))

    monkeypatch.setattr(pl.Trainer, "save_checkpoint", fill_the_disk)
    msg = _error("fit", str(tiny_config), "--name", "full", "--max-epochs", "3")
    monkeypatch.undo()
    assert "No space left on device" in msg and "previous last.ckpt is kept" in msg
    assert not list((runs / "full").glob(".*partial"))
    kept = torch.load(runs / "full" / "last.ckpt", map_location="cpu", weights_only=True)
    assert kept["epoch"] == 0 and kept["global_step"] == 4 * 2  # the end of epoch 1, whole
    result = run("fit", str(tiny_config), "--name", "full", "--max-epochs", "3", "--resume")
    assert result.exit_code == 0 and "(8 in this run)" in result.output, result.output

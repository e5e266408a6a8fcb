"""translate convert as several processes: the shares, the launch, the partial reports and their merge, and
whole jobs over 2 CPU processes (--devices 2, torchrun, an interrupted job resumed with --skip-existing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import train_tiny_run
from translate import shard
from translate.cli import app
from translate.errors import TranslateError
from translate.infer import REPORT_NAME, convert
from translate.shard import (Launch, RankReport, in_share, job_id, launch_from_env, merge, partial_path, share_of,
                             wait_for_ranks)

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN checkpoint (one batch), trained once for the module; the tests only read it."""
    return train_tiny_run(tmp_path_factory.mktemp("shard")) / "last.ckpt"


VALID = ["odd.png", *(f"p{i}.png" for i in range(0, 8, 2)), *(f"sub/p{i}.png" for i in range(1, 8, 2))]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """9 images (one of an odd size) in two folders, a broken image, a broken link and a text file."""
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / ("sub" if i % 2 else "")
                                                                                 / f"p{i}.png")
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(root / "odd.png")
    (root / "broken.png").write_bytes(b"\x89PNG broken")  # fails when its rank reads it
    (root / "gone.png").symlink_to(root / "deleted.png")  # fails at planning (rank 0 reports it)
    (root / "notes.txt").write_text("not an image")
    assert {share_of(name, 2) for name in VALID} == {0, 1}  # both ranks have work
    return root


def outputs(folder: Path) -> dict[str, bytes]:
    """Every output image under `folder` (not the report, nor hidden files): relative path -> bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != REPORT_NAME and not p.name.startswith(".")}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not p.is_symlink()}


def single(checkpoint: Path, photos: Path, out: Path, threads: int) -> dict[str, bytes]:
    """One process's outputs, with the torch threads each rank has (results compared byte for byte)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        convert(checkpoint, photos, out, fmt="png", precision="32")
    finally:
        torch.set_num_threads(before)
    return outputs(out)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def test_shares_are_disjoint_complete_deterministic_and_stable():
    keys = [f"folder{i % 7}/IMG_{i:05d}.jpg" for i in range(600)]
    for world in (1, 2, 3, 8):
        shares = [[k for k in keys if in_share(k, rank, world)] for rank in range(world)]
        assert sorted(sum(shares, [])) == sorted(keys)  # every file in exactly one share
        assert min(map(len, shares)) > 0.8 * len(keys) / world  # balanced enough to finish together
    assert share_of(Path("folder1/IMG_00001.jpg"), 8) == share_of("folder1/IMG_00001.jpg", 8)
    before = {k: share_of(k, 3) for k in keys}
    grown = keys + [f"new/{i}.png" for i in range(50)]
    assert {k: share_of(k, 3) for k in grown if k in before} == before  # new files move no old one
    # the same in another process, whatever its hash seed (Python's hash() would not be)
    code = ("import json,sys; from translate.shard import share_of; "
            "print(json.dumps([share_of(k, 3) for k in json.load(sys.stdin)]))")
    env = {**os.environ, "PYTHONHASHSEED": "123", "PYTHONPATH": str(ROOT)}
    other = subprocess.run([sys.executable, "-c", code], input=json.dumps(keys), capture_output=True, text=True,
                           env=env, check=True)
    assert json.loads(other.stdout) == [before[k] for k in keys]


def test_launch_and_job_come_from_torchrun_srun_or_the_job_variable():
    assert launch_from_env({}) == Launch()
    assert launch_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == Launch()
    assert launch_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == Launch(3, 4, 1, "torchrun")
    srun = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8",
            "SLURM_JOB_ID": "777", "SLURM_STEP_ID": "0"}
    assert launch_from_env(srun) == Launch(5, 8, 1, "srun")
    # an sbatch script outside srun: SLURM_NTASKS is set, yet this is the only process
    assert launch_from_env({"SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_JOB_ID": "777"}) == Launch()
    assert launch_from_env({"WORLD_SIZE": "2", "RANK": "0", "SLURM_STEP_NUM_TASKS": "8"}).launcher == "torchrun"
    with pytest.raises(TranslateError, match="rank 2 is not one of 0 .. 1"):
        launch_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    launch = launch_from_env(srun)
    assert job_id(launch, srun) == "slurm-777.0.0"
    assert job_id(launch, {**srun, "SLURM_RESTART_COUNT": "2"}) == "slurm-777.0.2"  # a requeued job is another
    assert job_id(launch, {**srun, shard.JOB_ENV: "mine"}) == "mine"
    with pytest.raises(TranslateError, match=shard.JOB_ENV):
        job_id(Launch(0, 2, 0, "torchrun"), {"WORLD_SIZE": "2", "RANK": "0"})


def fields(written: list[str], failed: dict | None = None) -> dict:
    """A rank's report, as infer.convert's ConvertReport gives it."""
    return {"written": written, "skipped_existing": [], "failed": failed or {}, "ignored": {}, "notes": {},
            "seconds": 1.0, "generator": "g", "precision": "fp32", "backend": "torch", "ranks": []}


def finished(out: Path, job: str, rank: int, world: int, written: list[str], failed: dict | None = None) -> None:
    state = RankReport(out, job, rank, world, "cpu")
    state.progress(len(written), len(written))
    state.finish(fields(written, failed))


def test_the_merger_names_ranks_that_stopped_and_ignores_other_jobs_reports(tmp_path: Path, monkeypatch):
    out = tmp_path / "out"
    finished(out, "j", 0, 2, ["a.png"], {"bad.png": "unreadable"})
    running = {"job": "j", "rank": 1, "world_size": 2, "state": "running", "beat": 4, "done": 3, "total": 10}
    partial_path(out, 1, 2).write_text(json.dumps(running))
    with pytest.raises(TranslateError, match=r"rank 1: exited with code -9 after 3 of 10 files.*--skip-existing"):
        wait_for_ranks(out, "j", 2, exited=lambda rank: -9 if rank == 1 else None)
    finished(out, "earlier", 1, 2, ["stale.png"])  # left by an interrupted job: not this one's
    with pytest.raises(TranslateError, match="rank 1: silent for .* before it wrote a report"):
        wait_for_ranks(out, "j", 2, timeout=0.3)
    failing = RankReport(out, "j", 1, 2)
    failing.progress(0, 5)
    failing.fail("out of disk")
    with pytest.raises(TranslateError, match="rank 1: failed: out of disk"):
        wait_for_ranks(out, "j", 2, timeout=5)
    # a rank still beating is waited for, however long it takes
    monkeypatch.setattr(shard, "HEARTBEAT_SECONDS", 0.05)
    slow = RankReport(out, "j", 1, 2)
    slow.progress(0, 1)

    def done() -> None:
        slow.progress(1, 1)
        slow.finish(fields(["b.png"]))

    later = threading.Timer(1.0, done)
    later.start()
    seen = []
    started = time.monotonic()
    parts = wait_for_ranks(out, "j", 2, timeout=0.4, progress=lambda done, total: seen.append((done, total)))
    assert time.monotonic() - started >= 1.0
    later.join()
    merged = merge(parts)
    assert merged["written"] == ["a.png", "b.png"] and merged["failed"] == {"bad.png": "unreadable"}
    assert [r["written"] for r in merged["ranks"]] == [1, 1] and seen[-1] == (2, 2)


def test_devices_2_writes_what_one_process_writes(checkpoint: Path, photos: Path, tmp_path: Path):
    expected = single(checkpoint, photos, tmp_path / "one", threads=max(1, cores() // 2))
    before = snapshot(photos)
    out = tmp_path / "two"
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(out), "--devices", "2",
                                 "--format", "png", "--precision", "32", "--quiet"])
    assert result.exit_code == 3, result.output  # the broken files, as in one process
    assert outputs(out) == expected and len(expected) == len(VALID)
    assert result.output.count("converted 9, kept 0 existing, failed 2, ignored 1 other files") == 1
    report = json.loads((out / REPORT_NAME).read_text())
    assert (report["inputs"], report["written"], report["skipped_existing"]) == (11, 9, 0)
    assert report["failed"] == json.loads((tmp_path / "one" / REPORT_NAME).read_text())["failed"]
    assert set(report["failed"]) == {str(photos / "broken.png"), str(photos / "gone.png")}
    assert sum(r["failed"] for r in report["ranks"]) == 2  # each by one rank: the link by rank 0, at planning
    assert list(report["ignored"]) == [str(photos / "notes.txt")]
    assert [r["rank"] for r in report["ranks"]] == [0, 1]
    assert [r["written"] for r in report["ranks"]] == [sum(share_of(n, 2) == r for n in VALID) for r in (0, 1)]
    assert not [p for p in out.rglob(".*")]  # no partial report, temporary or probe file is left
    assert snapshot(photos) == before


def test_an_interrupted_job_resumes_with_skip_existing(checkpoint: Path, photos: Path, tmp_path: Path,
                                                       monkeypatch):
    expected = single(checkpoint, photos, tmp_path / "one", threads=max(1, cores() // 2))
    out = tmp_path / "out"
    args = ["convert", str(checkpoint), str(photos), str(out), "--format", "png", "--precision", "32", "--quiet"]
    # rank 0 of 2 alone: rank 1 never comes, and rank 0 gives up when it has been silent too long
    with monkeypatch.context() as alone:
        alone.setattr(shard, "WAIT_SECONDS", 1.0)
        for name, value in {"WORLD_SIZE": "2", "RANK": "0", shard.JOB_ENV: "first"}.items():
            alone.setenv(name, value)
        result = runner.invoke(app, args)
    assert result.exit_code == 1 and "rank 1: silent" in result.output and "--skip-existing" in result.output
    share0 = sorted(n for n in VALID if share_of(n, 2) == 0)
    assert sorted(outputs(out)) == share0 and not (out / REPORT_NAME).exists()
    finished(out, "first", 1, 2, ["made-up.png"])  # as if rank 1 of that job had reported: not the next job's
    result = runner.invoke(app, [*args, "--devices", "2", "--skip-existing"])
    assert result.exit_code == 3, result.output
    assert outputs(out) == expected
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["skipped_existing"] == len(share0) and report["written"] == len(VALID) - len(share0)
    assert [r["skipped_existing"] for r in report["ranks"]] == [len(share0), 0]
    assert len(report["failed"]) == 2 and not [p for p in out.rglob(".*")]


def test_torchrun_with_two_processes_writes_what_one_process_writes(checkpoint: Path, photos: Path, tmp_path: Path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python nor on PATH")
    for name in ("broken.png", "gone.png"):
        (photos / name).unlink()  # a clean folder: rank 0 exits 0, so torchrun does too
    expected = single(checkpoint, photos, tmp_path / "one", threads=1)  # torchrun sets OMP_NUM_THREADS=1
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "-m", "translate.cli", "convert",
                          str(checkpoint), str(photos), str(out), "--format", "png", "--precision", "32", "--quiet"],
                         capture_output=True, text=True, env=env, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    assert outputs(out) == expected
    assert run.stdout.count("converted 9, kept 0 existing, failed 0, ignored 1 other files") == 1  # rank 0 only
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["written"] == 9 and [r["rank"] for r in report["ranks"]] == [0, 1]
    assert not [p for p in out.rglob(".*")]


@pytest.mark.parametrize("extra, env, match", [
    (["--devices", "0"], {}, "--devices must be at least 1, got 0"),
    (["--devices", "2"], {"WORLD_SIZE": "2", "RANK": "0"}, "under torchrun each of its 2 processes"),
    (["--devices", "100000", "--device", "cpu"], {}, "CPU cores for the processes to share"),
    (["--devices", "3", "--device", "cuda"], {"GPUS": "1"}, "this machine has 1 CUDA GPU; use --devices 1"),
    (["--devices", "2", "--device", "cuda:1"], {"GPUS": "2"}, "leave out the index of --device cuda:1"),
])
def test_nonsense_device_counts_are_refused_in_one_line(photos: Path, tmp_path: Path, monkeypatch, extra, env, match):
    gpus = int(env.pop("GPUS", 0))
    if gpus:  # a machine with that many GPUs, as far as the checks can tell
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", "missing.ckpt", str(photos), str(out), *extra])
    assert result.exit_code != 0 and match in result.output and "Traceback" not in result.output
    assert not out.exists()  # refused before anything was planned or written

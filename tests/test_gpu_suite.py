"""benchmarks/gpu_suite.py (issue 17) on a CPU with --quick, so the GPU suite cannot rot while no GPU is
lent; its fit check; and benchmarks/gpu_wheels.sh, by a dry run."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import torch
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_suite import check_fit  # noqa: E402

# The GPU machine's Python packages (the device tool's KINDS.md, read 2026-11-17), those translate's
# runtime requirements reach.
GPU_MACHINE_HAS = {
    "torch", "torchvision", "pytorch-lightning", "lightning", "lightning-utilities", "pillow", "typer", "pyyaml",
    "tensorboard", "tensorboard-data-server", "safetensors", "rich", "torchmetrics", "matplotlib", "numpy", "scipy",
    "opencv-python-headless", "typing-extensions", "packaging", "fsspec", "tqdm", "click", "shellingham",
    "markdown-it-py", "mdurl", "pygments", "filelock", "jinja2", "markupsafe", "networkx", "sympy", "mpmath",
    "triton", "setuptools", "aiohttp", "aiohappyeyeballs", "aiosignal", "attrs", "frozenlist", "multidict",
    "propcache", "yarl", "idna", "absl-py", "grpcio", "markdown", "protobuf", "six", "werkzeug", "contourpy",
    "cycler", "fonttools", "kiwisolver", "pyparsing", "python-dateutil", "annotated-doc", "wheel"}


def _quick_suite(out: Path, budget: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--out", str(out), "--device",
                           "cpu", "--quick", "--budget", str(budget)], capture_output=True, text=True,
                          timeout=budget + 60, cwd=out.parent)


def test_the_quick_suite_runs_every_step_on_a_cpu(tmp_path: Path):
    out = tmp_path / "suite"
    done = _quick_suite(out, 840)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "suite.json").read_text())["results"]
    names = [r["name"] for r in results]
    assert names == ["environment", "train_step", "convert", "fit cyclegan bf16-mixed",
                     "fit cyclegan 16-mixed wgan-gp", "fit cyclegan ddp (1 device)", "fit cut bf16-mixed",
                     "fit discogan-stripes preset", "fit genegan-faces preset", "export", "evaluate"]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    steps = {r["label"]: r for r in results[1]["records"]}
    assert set(steps) == {"classic fp32", "cyclegan bf16-mixed", "cut bf16-mixed", "cyclegan bf16-mixed profiled"}
    profile = Path(steps.pop("cyclegan bf16-mixed profiled")["profile"])
    assert profile.parent == out / "profile" and "convolution" in profile.read_text()
    for label, r in steps.items():
        assert len(r["times"]) == 3 and r["s_per_step"] > 0 and r["peak_bytes"] > 2**20, label  # Adam state alone
        assert r["versus"] == ("classic fp32" if label.startswith(("classic", "cyclegan")) else
                               "cyclegan " + label.split()[1])
    assert results[2]["figures"]["classic"]["images_per_s"] > 0 and results[2]["figures"]["auto"]["ratio"] > 0
    assert results[9]["max_abs_difference"] <= 1e-4
    assert set(results[10]["fid"]) == {"AtoB", "BtoA"}
    for name in ("fit cyclegan bf16-mixed", "fit genegan-faces preset"):
        assert (out / "runs" / name.split(" ", 1)[1].replace(" ", "-") / "last.ckpt").exists()
    table = done.stdout.strip().splitlines()
    assert table[-2] == "11 of 11 steps ok" and "suite wall time" in table[-1]
    assert "===== fit cut bf16-mixed: exit 0" in (out / "suite.log").read_text()


def test_a_spent_budget_stops_the_step_in_hand_and_still_prints_the_table(tmp_path: Path):
    out = tmp_path / "suite"
    done = _quick_suite(out, 35)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((out / "suite.json").read_text())["results"]
    assert results[0]["name"] == "environment" and results[0]["ok"]
    assert results[1]["name"] == "train_step" and not results[1]["ok"] and "stopped after its limit" in \
        (out / "suite.log").read_text()
    assert len(results) == 11 and not any(r["ok"] for r in results[2:])
    assert "the suite's --budget is spent" in results[-1]["summary"]
    assert "1 of 11 steps ok; failed: train_step, convert" in done.stdout
    marker = f"TRANSLATE_GPU_SUITE={out}".encode()
    left = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0"):
                left.append(environ.parent.name)
        except OSError:
            pass  # gone, or not ours to read
    assert not left, f"the stopped step left processes behind: {left}"


def test_train_step_reports_a_variant_past_its_limit_and_keeps_the_rest(tmp_path: Path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--device", "cpu", "--sizes",
                           "32", "--steps", "2", "--warmup", "1", "--precision", "bf16-mixed", "--variant-timeout", "1",
                           "--json", str(tmp_path / "t.json")], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "failed: classic fp32, cyclegan bf16-mixed" in done.stderr
    records = json.loads((tmp_path / "t.json").read_text())["records"]
    assert [r["label"] for r in records] == ["classic fp32", "cyclegan bf16-mixed"]
    assert all("stopped after its limit of 1 s" in r["error"] for r in records)


def test_only_names_steps_that_exist(tmp_path: Path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_suite.py"), "--out", str(tmp_path / "s"),
                           "--device", "cpu", "--only", "train_step,fit"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown step fit; the steps are train_step, convert, fits" in done.stderr
    assert not (tmp_path / "s").exists()


def _run(tmp_path: Path, rows: list[str], step: int | None) -> Path:
    run = tmp_path / "run"
    (run / "logs" / "csv" / "version_0").mkdir(parents=True)
    (run / "logs" / "csv" / "version_0" / "metrics.csv").write_text("\n".join(["d_loss,g_loss,g/cycle_a,step", *rows]))
    if step is not None:
        torch.save({"global_step": step, "state_dict": {}}, run / "last.ckpt")
    return run


def test_the_fit_check_catches_non_finite_losses_missing_checkpoints_and_failures(tmp_path: Path):
    good = ["1.5,10.2,3.1,0", ",,,1", "1.4,9.8,2.9,1"]
    assert check_fit(_run(tmp_path / "a", good, 2), 0, "trained 2 batches", 2)[0]
    ok, why = check_fit(_run(tmp_path / "b", ["1.5,nan,3.1,0"], 2), 0, "", 2)
    assert not ok and "non-finite losses: g_loss" in why
    ok, why = check_fit(_run(tmp_path / "c", ["1.5,10.2,inf,0"], 2), 0, "", 2)
    assert not ok and "g/cycle_a" in why
    ok, why = check_fit(_run(tmp_path / "d", good, None), 0, "", 2)
    assert not ok and "weights_only" in why
    ok, why = check_fit(_run(tmp_path / "e", good, 1), 0, "", 2)
    assert not ok and "step 1" in why
    ok, why = check_fit(_run(tmp_path / "f", good, 2), 1, "Traceback\nRuntimeError: CUDA out of memory", 2)
    assert not ok and "exit 1: RuntimeError: CUDA out of memory" in why
    ok, why = check_fit(_run(tmp_path / "g", [",,,0"], 2), 0, "", 2)
    assert not ok and "no losses logged" in why


def _closure(name: str, seen: set[str], have: set[str]) -> set[str]:
    """`name` and every runtime requirement it reaches (installed metadata; extras left out), not looking
    inside the packages in `have` (the machine brings what they need)."""
    key = canonicalize_name(name)
    if key in seen:
        return seen
    seen.add(key)
    if key in have:
        return seen
    for line in importlib.metadata.requires(name) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional platform-specific package not installed here
        _closure(requirement.name, seen, have)
    return seen


def test_the_wheel_script_lists_what_the_gpu_machine_lacks(tmp_path: Path):
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_wheels.sh"), "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pinned = dict(re.findall(r"^would download: ([A-Za-z0-9_.-]+)==(\S+)$", done.stdout, re.M))
    assert "--python-version 3.12" in done.stdout and "--only-binary=:all:" in done.stdout
    names = {canonicalize_name(n) for n in pinned}
    have = {canonicalize_name(n) for n in GPU_MACHINE_HAS}
    needed = _closure("translate", set(), have) - {"translate"} - have
    assert needed <= names, f"translate needs {sorted(needed - names)}, which the GPU machine lacks"
    assert {"albumentations", "albucore", "pydantic", "pydantic-core", "torch-fidelity"} <= names
    own = {canonicalize_name(Requirement(r).name): Requirement(r) for r in importlib.metadata.requires("translate")
           if "extra" not in r}
    for name, version in pinned.items():
        if canonicalize_name(name) in own:  # the pinned version is one translate accepts
            assert own[canonicalize_name(name)].specifier.contains(version), (name, version)


def test_the_wheel_script_refuses_unknown_arguments():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_wheels.sh"), "--download-everything"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "usage" in done.stderr

"""What the quality campaigns share (ema_augment.py, cut_stripes.py, finetune_small.py): train a setting once per
seed with ``translate fit``, score each run with ``translate evaluate --features classifier``, and print mean ±
sample standard deviation over the seeds.

A run whose ``last.ckpt`` exists is not trained again, and a report newer than its checkpoint is not
recomputed, so a stopped campaign resumes where it stopped and ``--evaluate-only`` only prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

METRICS = ("colour_error", "background_error", "position_error_px", "in_target", "fid")
CLI = [sys.executable, "-c", "from translate.cli import app; app()"]


def arguments(doc: str, settings: dict, out: str) -> argparse.ArgumentParser:
    """The options every campaign takes: --settings (of SETTINGS), --seeds, --out, --data-root, --evaluate-only."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(settings), choices=list(settings))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--data-root", default="datasets")
    parser.add_argument("--evaluate-only", action="store_true", help="score existing runs only")
    return parser


def translate(*args: str) -> float:
    """Run one ``translate`` command; returns its wall-clock seconds."""
    print("$ translate " + " ".join(args), flush=True)
    start = time.monotonic()
    subprocess.run([*CLI, *args], check=True)
    return time.monotonic() - start


def fit(out: Path, name: str, args: list[str], seed: int, data_root: str, *, train: bool = True) -> Path:
    """``translate fit ARGS --seed SEED --name NAME`` under OUT unless it has run; its wall-clock seconds are
    kept beside the checkpoint (fit_seconds.txt)."""
    ckpt = out / name / "last.ckpt"
    if train and not ckpt.is_file():
        seconds = translate("fit", *args, "--seed", str(seed), "--name", name, "--out-dir", str(out),
                            "--data-root", data_root)
        (out / name / "fit_seconds.txt").write_text(f"{seconds:.1f}\n")
    return ckpt


def fit_seconds(ckpt: Path) -> float | None:
    path = ckpt.parent / "fit_seconds.txt"
    return float(path.read_text()) if path.is_file() else None


def evaluate(ckpt: Path, out: Path, data_root: str, *extra: str) -> dict:
    """The report of ``translate evaluate CKPT --features classifier EXTRA``, reused when newer than CKPT."""
    done = out / "report.json"
    if not (done.is_file() and done.stat().st_mtime > ckpt.stat().st_mtime):
        translate("evaluate", str(ckpt), *extra, "--features", "classifier", "--out", str(out),
                  "--data-root", data_root, "--device", "cpu")
    return json.loads(done.read_text())


def scores(report: dict, directions: tuple[str, ...] | None = None) -> dict[str, float]:
    """The metrics of one report, averaged over its directions (or over the ones named)."""
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for direction, m in report["directions"].items():
        if directions is not None and direction not in directions:
            continue
        paired = m["paired"]["translated"]
        for key in ("colour_error", "background_error", "position_error_px"):
            out[key].append(paired[key])
        out["in_target"].append(m["domain_classifier"]["translated"])
        out["fid"].append(m["fid"])
    return {k: sum(v) / len(v) for k, v in out.items()}


def add(summary: dict, key: str, values: dict[str, float]) -> None:
    for metric, value in values.items():
        summary.setdefault(key, {}).setdefault(metric, []).append(value)


def table(summary: dict[str, dict[str, list[float]]], width: int = 22) -> None:
    """One row per key: mean ± sample standard deviation of each metric over the seeds (the evaluation's, then
    any other recorded, such as a fit's seconds)."""
    extra = sorted({m for values in summary.values() for m in values} - set(METRICS))
    metrics = METRICS + tuple(extra)
    print(f"\n{'setting':<{width}} " + " ".join(f"{m:>20}" for m in metrics))
    for key, values in summary.items():
        cells = []
        for m in metrics:
            v = values.get(m)
            if not v:
                cells.append(f"{'':>20}")
                continue
            spread = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):>10.3f} ± {spread:<7.3f}")
        print(f"{key:<{width}} " + " ".join(cells) + f"  (n={len(values[metrics[0]])})")

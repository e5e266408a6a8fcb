"""``translate report RUN_DIR``: one PNG of a run's losses and evaluation metrics, from its CSV logs.

Every attempt of a run (a resume adds ``logs/csv/version_N``) is read in order; a step logged again by a
later attempt replaces the earlier value. Panels: generator terms (``g/*``), discriminator terms
(``d/*``), FID and KID when evaluation ran (``eval/*``), and schedules (``lr_factor``, ``recon_rate``).
Losses are drawn raw (faint) and as a moving average.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from translate.data.files import guard_outputs
from translate.data.io import atomic_write
from translate.errors import TranslateError

PANELS = (  # title, which columns
    ("generator losses", lambda c: c.startswith("g/")),
    ("discriminator losses", lambda c: c.startswith("d/")),
    ("FID (lower is better)", lambda c: c.startswith("eval/fid") or c.startswith("eval/best_fid")),
    ("KID (lower is better)", lambda c: c.startswith("eval/kid") or c.startswith("eval/best_kid")),
    ("schedules", lambda c: c in ("lr_factor", "recon_rate")),
)


def metrics_files(run_dir: str | Path) -> list[Path]:
    """Every attempt's ``metrics.csv`` of a run, in order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TranslateError(f"run folder not found: {run_dir}")
    files = sorted((run_dir / "logs" / "csv").glob("version_*/metrics.csv"),
                   key=lambda p: int(p.parent.name.removeprefix("version_") or 0))  # version_10 after version_9
    if not files:
        raise TranslateError(f"{run_dir}: no logs/csv/version_*/metrics.csv (is it a translate fit run folder?)")
    return files


def read_metrics(run_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """column -> sorted [(step, value)] over every attempt's ``metrics.csv``."""
    files = metrics_files(run_dir)
    series: dict[str, dict[int, float]] = {}
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                try:
                    step = int(float(row.get("step") or ""))
                except ValueError:
                    continue
                for column, text in row.items():
                    if column in ("step", "epoch") or not text:
                        continue
                    try:
                        value = float(text)
                    except ValueError:
                        continue
                    if math.isfinite(value):
                        series.setdefault(column, {})[step] = value
    return {column: sorted(points.items()) for column, points in series.items()}


def _smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the plot (default ``RUN_DIR/report.png``) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(out) if out is not None else Path(run_dir) / "report.png"
    guard_outputs([path], metrics_files(run_dir))
    series = read_metrics(run_dir)
    panels = [(title, [c for c in sorted(series) if wanted(c)]) for title, wanted in PANELS]
    panels = [(title, columns) for title, columns in panels if columns]
    if not panels:
        raise TranslateError(f"{run_dir}: the logs hold no losses or metrics yet")
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.8 * len(panels)), sharex=True, squeeze=False)
    for ax, (title, columns) in zip(axes[:, 0], panels):
        for column in columns:
            steps, values = zip(*series[column])
            if column.startswith("eval/") or len(values) < 10:
                ax.plot(steps, values, marker="o", markersize=3, label=column)
            else:
                line, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, _smooth(list(values), max(1, len(values) // 25)), color=line.get_color(),
                        label=column)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=4, loc="best")
    axes[-1, 0].set_xlabel("step (training batch, as logged)")
    fig.suptitle(Path(run_dir).resolve().name, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path

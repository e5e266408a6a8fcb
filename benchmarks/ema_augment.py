"""Issue 19's measurements: EMA generators and DiffAugment on the built-in stripes, mean and spread over seeds.

Each setting is trained once per seed with ``translate fit`` and scored with ``translate evaluate
--features classifier`` (offline; the built-in paired checks: colour, background and position errors, the
classifier's share in the target domain, FID on its features). A run with ``train.ema`` yields both weight
sets, so the EMA comparison needs no extra runs: the same checkpoint is scored with ``--weights ema`` and
``--weights raw``. The average only observes training (it draws no random numbers), so the raw weights of
an EMA run are those of the same run without EMA, and they are the full-data reference too.

Settings (equal budgets: every run trains 2,000 batches as the stripes preset does; with 40 images per
domain an epoch is 40 batches, so the small-data runs take 30 + 20 epochs for the preset's 3 + 2):
  cyclegan        translate fit stripes --set train.ema=true
  discogan        translate fit discogan-stripes --set train.ema=true
  small           translate fit stripes --set data.max_images=40 (epochs scaled), with EMA
  small-augment   the same with --set train.augment=diffaugment

    python benchmarks/ema_augment.py --seeds 0 1 2 --out runs-issue19             # all settings
    python benchmarks/ema_augment.py --settings cyclegan --seeds 0 --out runs-issue19
    python benchmarks/ema_augment.py --settings cyclegan --seeds 0 --out runs-issue19 --evaluate-only

Prints one table per setting and weight set (mean ± sample standard deviation over the seeds) and writes
``summary.json`` into the output folder. Set OMP_NUM_THREADS=1 on a shared CPU.
"""

from __future__ import annotations

import json

from campaign import add, arguments, evaluate, fit, scores, table

SMALL = ["--set", "data.max_images=40", "--set", "optim.n_epochs=30", "--set", "optim.n_epochs_decay=20"]
SETTINGS = {
    "cyclegan": ["stripes", "--set", "train.ema=true"],
    "discogan": ["discogan-stripes", "--set", "train.ema=true"],
    "small": ["stripes", "--set", "train.ema=true", *SMALL],
    "small-augment": ["stripes", "--set", "train.ema=true", *SMALL, "--set", "train.augment=diffaugment"],
}


def main() -> None:
    parser = arguments(__doc__, SETTINGS, "runs-issue19")
    args = parser.parse_args()
    summary: dict[str, dict[str, list[float]]] = {}
    for setting in args.settings:
        for seed in args.seeds:
            name = f"{setting}-s{seed}"
            ckpt = fit(args.out, name, SETTINGS[setting], seed, args.data_root, train=not args.evaluate_only)
            for weights in ("ema", "raw"):
                report = evaluate(ckpt, args.out / name / "eval" / weights, args.data_root, "--weights", weights)
                add(summary, f"{setting} {weights}", scores(report))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    table(summary)


if __name__ == "__main__":
    main()

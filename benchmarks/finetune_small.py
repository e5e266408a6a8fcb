"""Issue 19's fine-tuning check: does DiffAugment help `translate fit DIR --init MODEL` on a small folder?

The user's case, built from the built-in data: a model trained on a related task (the CycleGAN preset `shapes`,
circles <-> squares, the same U-Net, 2,000 batches as `stripes`) is fine-tuned on a folder of 40 solid and 40 striped shapes (copied from
the built-in `stripes` training images, with 8 of its test images per domain for the sample grids). Each
setting is trained once per seed for 1,000 batches (25 epochs of 40) and scored on the built-in `stripes`
test pairs with ``translate evaluate RUN/last.ckpt stripes --features classifier``:
  finetune               translate fit FOLDER --init SOURCE --set train.augment=none
  finetune-augment       the same with --set train.augment=diffaugment (color,translation,cutout)
  finetune-translation   the same with DiffAugment's translation only (what train.augment=auto now picks)
  scratch                translate fit FOLDER -c configs/stripes.yaml (no --init), the same budget

    python benchmarks/finetune_small.py --seeds 0 1 2 --out runs-finetune
    python benchmarks/finetune_small.py --out runs-finetune --evaluate-only

Prints one table row per setting (mean ± sample standard deviation over the seeds, both directions
averaged) and writes ``summary.json`` into the output folder. Set OMP_NUM_THREADS=1 on a shared CPU.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from campaign import add, arguments, evaluate, fit, fit_seconds, scores, table

IMAGES, TEST_IMAGES = 40, 8
SOURCE = ["shapes", "--set", "optim.n_epochs=3", "--set", "optim.n_epochs_decay=2"]  # 2,000 batches
BUDGET = ["--set", "optim.n_epochs=15", "--set", "optim.n_epochs_decay=10"]  # 25 epochs of 40 images
AUGMENT = ["--set", "train.augment=diffaugment"]
SETTINGS = {
    "finetune": ["--set", "train.augment=none"],  # explicit: auto would pick translation here
    "finetune-augment": AUGMENT,
    "finetune-translation": [*AUGMENT, "--set", "train.augment_policy=translation"],
    "scratch": None,  # no --init: the stripes preset's recipe from random weights
}
STRIPES = Path(__file__).resolve().parent.parent / "configs" / "stripes.yaml"


def make_folder(data_root: Path, folder: Path) -> None:
    """FOLDER/trainA, trainB (40 seeded images each) and testA, testB (8 each) from the built-in stripes."""
    from translate.data.builtin import ensure_builtin

    stripes = ensure_builtin("stripes", data_root)
    if (folder / "trainB").is_dir():
        return
    rng = random.Random(19)
    for split, n in (("train", IMAGES), ("test", TEST_IMAGES)):
        for domain in "AB":
            files = sorted((stripes / f"{split}{domain}").iterdir())
            (folder / f"{split}{domain}").mkdir(parents=True)
            for path in sorted(rng.sample(files, n)):
                shutil.copy2(path, folder / f"{split}{domain}" / path.name)


def main() -> None:
    parser = arguments(__doc__, SETTINGS, "runs-finetune")
    args = parser.parse_args()
    train = not args.evaluate_only
    folder = args.out / "folder"
    if train:
        make_folder(Path(args.data_root), folder)
    source = fit(args.out, "source", SOURCE, 0, args.data_root, train=train)
    summary: dict[str, dict[str, list[float]]] = {}
    for setting in args.settings:
        for seed in args.seeds:
            name = f"{setting}-s{seed}"
            extra = SETTINGS[setting]
            run = (["--config", str(STRIPES), "--set", f"data.dataset={folder}"] if extra is None
                   else ["--init", str(source), *extra])
            ckpt = fit(args.out, name, [str(folder), *run, *BUDGET], seed, args.data_root, train=train)
            report = evaluate(ckpt, args.out / name / "eval", args.data_root, "stripes")
            add(summary, setting, scores(report))
            seconds = fit_seconds(ckpt)
            if seconds is not None:
                add(summary, setting, {"seconds": seconds})
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    table(summary)


if __name__ == "__main__":
    main()

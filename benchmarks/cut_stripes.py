"""Issue 20's comparison: CUT and FastCUT against CycleGAN on the built-in stripes, at about equal wall-clock.

Each preset is trained once per seed with ``translate fit`` and scored A to B (CUT's one direction) with
``translate evaluate --features classifier`` (offline; the built-in paired checks: colour, background and
position errors, the classifier's share in the target domain, FID on its features).

Budgets: the CycleGAN preset `stripes` trains 2,000 batches (3 + 2 epochs of 400). CUT trains one generator
and one discriminator, so its batches are cheaper; its runs get more of them, for about the same time on a
2-core CPU (measured: 2,000 CycleGAN batches 449 s, 3,200 CUT batches 424 s, 3,200 FastCUT batches 351 s):
  cyclegan   translate fit stripes                                                   2,000 batches
  cut        translate fit cut-stripes --set optim.n_epochs=5 --set optim.n_epochs_decay=3      3,200
  fastcut    translate fit fastcut-stripes --set optim.n_epochs=6 --set optim.n_epochs_decay=4  4,000

    python benchmarks/cut_stripes.py --seeds 0 1 2 --out runs-issue20
    python benchmarks/cut_stripes.py --out runs-issue20 --evaluate-only

Prints the wall-clock of every fit and one table row per preset (mean ± sample standard deviation over the
seeds), and writes ``summary.json`` into the output folder. Set OMP_NUM_THREADS=1 on a shared CPU.
"""

from __future__ import annotations

import json

from campaign import add, arguments, evaluate, fit, fit_seconds, scores, table

SETTINGS = {
    "cyclegan": ["stripes"],
    "cut": ["cut-stripes", "--set", "optim.n_epochs=5", "--set", "optim.n_epochs_decay=3"],
    "fastcut": ["fastcut-stripes", "--set", "optim.n_epochs=6", "--set", "optim.n_epochs_decay=4"],
}


def main() -> None:
    parser = arguments(__doc__, SETTINGS, "runs-issue20")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra setting for every run (give --out a new folder)")
    args = parser.parse_args()
    extra = [a for kv in args.extra for a in ("--set", kv)]
    summary: dict[str, dict[str, list[float]]] = {}
    for setting in args.settings:
        for seed in args.seeds:
            name = f"{setting}-s{seed}"
            ckpt = fit(args.out, name, SETTINGS[setting] + extra, seed, args.data_root, train=not args.evaluate_only)
            report = evaluate(ckpt, args.out / name / "eval", args.data_root, "--direction", "AtoB")
            add(summary, setting, scores(report, ("AtoB",)))
            seconds = fit_seconds(ckpt)
            if seconds is not None:
                add(summary, setting, {"seconds": seconds})
                print(f"{name}: fit {seconds:.0f} s")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    table(summary)


if __name__ == "__main__":
    main()

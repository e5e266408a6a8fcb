"""The GPU suite: one prepared command that measures and exercises translate on a GPU (issue 17).

    python benchmarks/gpu_suite.py --out gpu-out                 # on a GPU machine: at most 7 minutes (--budget)
    python benchmarks/gpu_suite.py --out gpu-out --only train_step,convert      # the second run, after a fix
    python benchmarks/gpu_suite.py --out /tmp/suite --device cpu --quick    # the same checks, tiny, on a CPU

On a machine without albumentations and friends (the GPU machine we are lent has torch, Lightning and
torchmetrics but not those), fetch their wheels first where there is a network, with
`bash benchmarks/gpu_wheels.sh` (into .whl/); the suite installs them offline from .whl/ into a
temporary folder (`pip install --no-index --no-deps --target`) and puts it and this checkout on
PYTHONPATH, so translate needs no installing there.

What it runs, each step a separate process with its own time limit, its output appended to OUT/suite.log:
  train_step  benchmarks/train_step.py at 256 px, batch 1: the classic fp32 step against translate at
              32-true, bf16-mixed and bf16-mixed with train.compile, and CUT and FastCUT against translate's
              CycleGAN; median s/step and peak memory of each, each in a fresh process; and a profiled run
  convert     benchmarks/convert.py on 200 JPEGs of 512x512: the classic loop against translate at
              --precision auto, and with --compile; images/s
  fit ...     short real `translate fit` runs on a generated folder at 256 px: bf16-mixed; 16-mixed with
              wgan-gp (grad scaler and the penalty's double backward); --strategy ddp --devices 1; CUT;
              and the discogan-stripes and genegan-faces presets; each must exit 0 with finite logged
              losses and a checkpoint that loads with weights_only=True
  export      translate export (torch.export .pt2, checked for parity by export itself), then the program
              run on the device against the checkpoint's generator on the device
  evaluate    translate evaluate --features classifier on the device
The goals of issue 17 (bf16 step >= 1.8x the classic steps/s at <= 0.6x its peak memory; convert >= 4x)
are printed as met or not: they are measurements, not pass/fail checks. The suite fails (exit 1) when a
step fails: a crash, a non-finite loss, a missing checkpoint, a parity miss.
OUT/suite.json holds every figure; the table is printed last, also when the --budget (420 s) ran out:
a step that would run past it is stopped or not started, and shown as failed. train_step also runs
translate's bf16 CycleGAN step under torch.profiler (a run of its own): OUT/profile/ gets its top
operators, and the table the share of the step the GPU was busy, which says whether launches dominate
at batch 1 (then CUDA graphs would help: `--only train_step --compile-modes default,reduce-overhead`
times train.compile_mode=reduce-overhead). After a fix, `--only train_step,convert` measures again in
about half the time.

--quick makes every step tiny (32-px images, a few steps, 8 images to convert, bf16-mixed steps only, no
torch.compile) so the whole suite runs on 2 CPU cores in a few minutes; tests/test_gpu_suite.py runs it that way so it cannot rot.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
GOALS = {"step_speed": 1.8, "step_memory": 0.6, "convert_speed": 4.0}
STEPS = ("train_step", "convert", "fits", "export", "evaluate")  # in this order: export and evaluate use a fit


class Suite:
    def __init__(self, out: Path, device: str, quick: bool, env: dict[str, str], budget: float = 480) -> None:
        self.out, self.device, self.quick, self.env = out, device, quick, env
        self.deadline = time.perf_counter() + budget  # steps get what is left of it, so the table always prints
        self.compile_modes = ["default"]
        self.log = out / "suite.log"
        self.results: list[dict] = []
        self.accelerator = "gpu" if device == "cuda" else "cpu"

    def run(self, name: str, argv: list[str], timeout: float) -> tuple[int, str, float]:
        """Run one process; its output goes to the log (and is returned); rc 124 when it ran out of time
        (its own limit, or what is left of the suite's --budget)."""
        start = time.perf_counter()
        timeout = min(timeout, self.deadline - start - 5)
        if timeout < 10:
            text = f"[gpu_suite] {name}: not run, the suite's --budget is spent\n"
            with self.log.open("a") as log:
                log.write(f"\n===== {name}: {text}")
            return 124, text, 0.0
        # its own process group, so that a step stopped at its limit takes its children along
        child = subprocess.Popen(argv, cwd=self.out, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
        try:
            text, _ = child.communicate(timeout=timeout)
            rc = child.returncode
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            text, _ = child.communicate()
            rc = 124
            text += f"\n[gpu_suite] {name}: stopped after its limit of {timeout:.0f} s\n"
        except KeyboardInterrupt:  # Ctrl-C reaches only this process: take the step's group down too
            os.killpg(child.pid, signal.SIGKILL)
            raise
        seconds = time.perf_counter() - start
        with self.log.open("a") as log:
            log.write(f"\n===== {name}: {' '.join(argv)}\n{text}\n===== {name}: exit {rc} after {seconds:.1f} s\n")
        return rc, text, seconds

    def record(self, name: str, ok: bool, seconds: float, summary: str, **figures) -> dict:
        result = {"name": name, "ok": ok, "seconds": round(seconds, 1), "summary": summary, **figures}
        self.results.append(result)
        print(f"[{'ok' if ok else 'FAILED'}] {name} ({seconds:.0f} s): {summary}", flush=True)
        return result

    # ---------------------------------------------------------------------------------------------- steps

    def environment(self) -> None:
        code = ("import json, platform, torch, pytorch_lightning, albumentations, torchmetrics\n"
                "d = {'python': platform.python_version(), 'torch': torch.__version__,\n"
                "     'lightning': pytorch_lightning.__version__, 'albumentations': albumentations.__version__,\n"
                "     'torchmetrics': torchmetrics.__version__, 'cuda': torch.cuda.is_available(),\n"
                "     'cpu_capability': torch.backends.cpu.get_cpu_capability(), 'cpus': __import__('os').cpu_count()}\n"
                "if torch.cuda.is_available():\n"
                "    d['gpu'] = torch.cuda.get_device_name(0); d['bf16'] = torch.cuda.is_bf16_supported()\n"
                "print('ENV ' + json.dumps(d))\n")
        rc, text, seconds = self.run("environment", [sys.executable, "-c", code], 120)
        info = next((json.loads(line[4:]) for line in text.splitlines() if line.startswith("ENV ")), {})
        ok = rc == 0 and (self.device != "cuda" or info.get("cuda", False))
        summary = ", ".join(f"{k} {v}" for k, v in info.items()) if info else text.strip().splitlines()[-1:]
        self.record("environment", ok, seconds, str(summary), info=info)
        if not ok:
            raise SystemExit(self.finish())

    def train_step(self) -> None:
        out = self.out / "train_step.json"
        if self.quick:  # one precision, CUT alone, no compile: 4 processes
            shape = ["--sizes", "32", "--steps", "3", "--warmup", "1", "--precision", "bf16-mixed", "--models", "cut"]
        else:
            shape = ["--sizes", "256", "--steps", "30", "--warmup", "6", "--precision", "32-true", "bf16-mixed",
                     "--compile", *self.compile_modes, "--models", "cut", "fastcut"]
        argv = [sys.executable, str(HERE / "train_step.py"), "--device", self.device, *shape,
                "--json", str(out), "--profile", str(self.out / "profile"), "--variant-timeout", "200"]
        rc, text, seconds = self.run("train_step", argv, 420)
        if not out.exists():
            self.record("train_step", False, seconds, f"exit {rc}: {_last_line(text)}")
            return
        records = json.loads(out.read_text())["records"]  # written after each variant: partial when stopped
        lines, goal = [] if rc == 0 else [f"exit {rc}: {_last_line(text)}"], {}
        for r in records:
            if "error" in r:
                lines.append(f"{r['label']}: FAILED ({r['error']})")
                continue
            line = f"{r['label']}: {r['s_per_step'] * 1000:.1f} ms/step, peak {r['peak_bytes'] / 2**30:.2f} GiB"
            if r["label"] != r["versus"]:
                line += f", {r['speed_ratio']:.2f}x steps/s" + (f", {r['memory_ratio']:.2f}x memory" if r["memory_ratio"]
                                                               is not None else "") + f" of {r['versus']}"
            if r.get("device_busy") is not None:
                line += f", GPU busy {r['device_busy']:.0%} of the step"
            if r.get("profile"):
                line += f" (top operators: {Path(r['profile']).name})"
            lines.append(line)
            if r["model"] == "cyclegan" and r["precision"] == "bf16-mixed":
                goal[r["label"]] = {"speed": r["speed_ratio"], "memory": r["memory_ratio"]}
        bf16 = goal.get("cyclegan bf16-mixed", {})
        met = (bf16.get("speed", 0) >= GOALS["step_speed"] and (bf16.get("memory") or 9) <= GOALS["step_memory"])
        self.record("train_step", rc == 0, seconds, "; ".join(lines), records=records,
                    goal=f"bf16 step >= {GOALS['step_speed']}x steps/s and <= {GOALS['step_memory']}x memory: "
                         f"{'met' if met else 'not met'}")

    def convert(self) -> None:
        out = self.out / "convert.json"
        if self.quick:
            shape = ["--count", "8", "--size", "64", "--repeats", "1", "--variants", "auto"]
        else:
            shape = ["--count", "200", "--size", "512", "--repeats", "2", "--variants", "auto,compile"]
        argv = [sys.executable, str(HERE / "convert.py"), "--device", self.device, *shape, "--json", str(out)]
        rc, text, seconds = self.run("convert", argv, 300)
        if rc or not out.exists():
            self.record("convert", False, seconds, f"exit {rc}: {_last_line(text)}")
            return
        figures = json.loads(out.read_text())
        variants = [k for k in figures if isinstance(figures[k], dict) and "ratio" in figures[k]]
        summary = f"classic {figures['classic']['images_per_s']:.1f} images/s; " + "; ".join(
            f"{v} {figures[v]['images_per_s']:.1f} images/s = {figures[v]['ratio']:.2f}x "
            f"(|diff| {figures[v]['mean_abs_difference']:.2f} levels, {figures[v]['precision']})" for v in variants)
        best = max((figures[v]["ratio"] for v in variants), default=0)
        self.record("convert", True, seconds, summary, figures=figures,
                    goal=f"convert >= {GOALS['convert_speed']}x the classic loop: "
                         f"{'met' if best >= GOALS['convert_speed'] else 'not met'} (best {best:.2f}x)")

    def fits(self) -> None:
        size = 32 if self.quick else 256
        folder = self.out / "data" / "photos"
        make_folder(folder, size, 6 if self.quick else 8)
        steps = "2" if self.quick else "20"
        common = ["--accelerator", self.accelerator, "--devices", "1", "--max-steps", steps, "--out-dir",
                  str(self.out / "runs"), "--data-root", str(self.out / "data"), "--set", "train.log_every_n_steps=1"]
        on_folder = [str(folder), "--image-size", str(size)]
        jobs = {
            "fit cyclegan bf16-mixed": [*on_folder, "--precision", "bf16-mixed"],
            "fit cyclegan 16-mixed wgan-gp": [*on_folder, "--precision", "16-mixed", "--adversarial", "wgan-gp"],
            "fit cyclegan ddp (1 device)": [*on_folder, "--precision", "bf16-mixed", "--strategy", "ddp"],
            "fit cut bf16-mixed": [*on_folder, "--precision", "bf16-mixed", "--model", "cut"],
            "fit discogan-stripes preset": ["discogan-stripes", "--precision", "bf16-mixed"],
            "fit genegan-faces preset": ["genegan-faces", "--precision", "bf16-mixed"],
        }
        if self.quick:  # the preset's recipe on the generated folder: drawing the built-in faces takes 20 s
            jobs["fit genegan-faces preset"] += ["--set", f"data.dataset={folder}", "--image-size", str(size)]

        def one(item: tuple[str, list[str]]) -> tuple[str, int, str, float, Path]:
            name, args = item
            run = name.split(" ", 1)[1].replace(" ", "-").replace("(", "").replace(")", "")
            argv = [sys.executable, "-m", "translate.cli", "fit", *args, *common, "--name", run]
            rc, text, seconds = self.run(name, argv, 300)
            return name, rc, text, seconds, self.out / "runs" / run

        # Fits check correctness, not speed: on a GPU they share it, 4 at a time; on a CPU they take turns
        # (two at once on 2 cores measured several times slower than one after the other: threads contend).
        with ThreadPoolExecutor(max_workers=1 if self.device == "cpu" else 4) as pool:
            done = list(pool.map(one, jobs.items()))
        for name, rc, text, seconds, run in done:
            ok, summary = check_fit(run, rc, text, int(steps))
            self.record(name, ok, seconds, summary)

    def export(self) -> None:
        ckpt = self.out / "runs" / "cyclegan-bf16-mixed" / "last.ckpt"
        target = self.out / "export" / "g"
        target.parent.mkdir(exist_ok=True)
        rc, text, seconds = self.run("export", [sys.executable, "-m", "translate.cli", "export", str(ckpt),
                                                str(target), "--force"], 300)
        if rc:
            self.record("export", False, seconds, f"exit {rc}: {_last_line(text)}")
            return
        size = 32 if self.quick else 256
        code = f"""
import torch
from translate.checkpoint import load_generator
dev = torch.device({self.device!r})
program = torch.export.load({str(target) + '.pt2'!r}).module().to(dev)
net = load_generator({str(ckpt)!r}, "AtoB").net.to(dev).eval()
x = torch.rand(2, 3, {size}, {size}, generator=torch.Generator().manual_seed(0)).mul(2).sub(1).to(dev)
with torch.no_grad():
    a, b = program(x), net(x)
print("PARITY", float((a - b).abs().max()), tuple(a.shape), a.device)
"""
        rc2, text2, seconds2 = self.run("export parity on the device", [sys.executable, "-c", code], 300)
        line = next((ln for ln in text2.splitlines() if ln.startswith("PARITY ")), "")
        diff = float(line.split()[1]) if line else math.inf
        ok = rc2 == 0 and diff <= 1e-4
        self.record("export", ok, seconds + seconds2, f"{_export_line(text)}; .pt2 on {self.device} against the "
                    f"checkpoint's generator: max |difference| {diff:.2e}" if line else f"exit {rc2}: {_last_line(text2)}",
                    max_abs_difference=diff)

    def evaluate(self) -> None:
        ckpt = self.out / "runs" / "cyclegan-bf16-mixed" / "last.ckpt"
        folder = self.out / "data" / "photos"
        out = self.out / "evaluate"
        argv = [sys.executable, "-m", "translate.cli", "evaluate", str(ckpt), str(folder), "--features", "classifier",
                "--device", self.device, "--out", str(out), "--max-images", "6"]
        rc, text, seconds = self.run("evaluate", argv, 300)
        report = out / "report.json"
        if rc or not report.exists():
            self.record("evaluate", False, seconds, f"exit {rc}: {_last_line(text)}")
            return
        directions = json.loads(report.read_text()).get("directions", {})
        fids = {d: (v.get("fid"), v.get("do_nothing", {}).get("fid")) for d, v in directions.items()}
        ok = bool(fids) and all(isinstance(f, (int, float)) and math.isfinite(f) for pair in fids.values() for f in pair)
        self.record("evaluate", ok, seconds, f"--features classifier on {self.device}: " + "; ".join(
            f"{d} FID {f:.1f} (doing nothing {n:.1f})" for d, (f, n) in fids.items()) if ok else
            f"missing or non-finite FID in {report}: {fids}", fid=fids)

    def finish(self) -> int:
        (self.out / "suite.json").write_text(json.dumps({"device": self.device, "quick": self.quick,
                                                         "results": self.results}, indent=1))
        failed = [r["name"] for r in self.results if not r["ok"]]
        print("\n" + "=" * 100)
        print(f"translate GPU suite ({'quick, ' if self.quick else ''}{self.device}); full log {self.log}")
        for r in self.results:
            print(f"{'ok    ' if r['ok'] else 'FAILED'} {r['name']:34s} {r['seconds']:6.0f} s  {r['summary']}")
            if "goal" in r:
                print(f"{'':48s}goal: {r['goal']}")
        print(f"{len(self.results) - len(failed)} of {len(self.results)} steps ok"
              + (f"; failed: {', '.join(failed)}" if failed else ""))
        return 1 if failed else 0


# -------------------------------------------------------------------------------------------------- helpers

def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def _export_line(text: str) -> str:
    found = [line.strip() for line in text.splitlines() if "parity" in line.lower()]
    return found[-1][:200] if found else "exported"


def make_folder(folder: Path, size: int, count: int) -> None:
    """trainA/trainB/testA/testB of smooth random colour JPEGs (benchmarks/convert.py's photos), one seed each."""
    sys.path.insert(0, str(HERE))
    from convert import make_photos

    for i, split in enumerate(("trainA", "trainB", "testA", "testB")):
        if not (folder / split).exists():
            make_photos(folder / split, count, size, seed=i)


def check_fit(run: Path, rc: int, text: str, steps: int) -> tuple[bool, str]:
    """(ok, summary): exit 0, the metrics CSV has logged losses and every one is finite, the checkpoint loads
    with weights_only=True and holds the steps asked for."""
    if rc:
        return False, f"exit {rc}: {_last_line(text)}"
    metrics = sorted(run.glob("logs/csv/version_*/metrics.csv"))
    if not metrics:
        return False, "no metrics.csv"
    values = {}
    with metrics[-1].open() as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if value not in ("", None) and ("loss" in key or key.startswith(("g/", "d/"))):
                    values.setdefault(key, []).append(float(value))
    bad = sorted(k for k, v in values.items() if not all(math.isfinite(x) for x in v))
    if not values or bad:
        return False, f"non-finite losses: {', '.join(bad)}" if bad else "no losses logged"
    import torch

    try:
        ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return False, f"last.ckpt does not load with weights_only=True: {exc}"[:300]
    if ckpt.get("global_step", 0) < steps:
        return False, f"last.ckpt at step {ckpt.get('global_step')}, expected {steps}"
    speed = next((line.strip() for line in text.splitlines() if line.startswith("trained ")), "")
    final = {k: v[-1] for k, v in values.items() if k in ("g_loss", "d_loss")}
    return True, f"{speed}; finite losses ({', '.join(f'{k} {v:.3f}' for k, v in final.items())}); checkpoint ok"


def prepared_env(wheels: Path) -> dict[str, str]:
    """This process's environment with this checkout on PYTHONPATH and, where albumentations is missing and
    .whl/ holds wheels, those wheels installed offline into a temporary folder put on PYTHONPATH too."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    paths = [str(ROOT)]
    missing = subprocess.run([sys.executable, "-c", "import albumentations"], capture_output=True).returncode != 0
    found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    if missing and found:
        site = Path(tempfile.mkdtemp(prefix="translate-site-"))
        print(f"installing {len(found)} wheels from {wheels} into {site} (offline)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(site), *map(str, found)], check=True)
        paths.append(str(site))
    elif missing:
        raise SystemExit(f"albumentations is not installed and {wheels} holds no wheels: run "
                         "`bash benchmarks/gpu_wheels.sh` where there is a network, or pip install -e .")
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for suite.log, suite.json and the runs")
    parser.add_argument("--device", default=None, help="cuda (default when a GPU is visible) or cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and counts: a smoke run on a CPU")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="wheels to install offline (gpu_wheels.sh)")
    parser.add_argument("--only", default=None, help=f"comma-separated steps to run, e.g. train_step,convert for a "
                        f"second run after a fix (default: all of {','.join(STEPS)}; export and evaluate need fits)")
    parser.add_argument("--compile-modes", default="default",
                        help="train.compile_mode values timed by train_step on a GPU, comma-separated (default: "
                             "default; add reduce-overhead for CUDA graphs when the profile shows a GPU waiting on "
                             "launches)")
    parser.add_argument("--budget", type=float, default=420, help="seconds for the whole suite (default 420): "
                        "a step that would run past it is stopped or not started, and reported so")
    args = parser.parse_args()
    device = args.device
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cuda", "cpu"):
        parser.error("--device must be cuda or cpu")
    only = [name.strip() for name in args.only.split(",")] if args.only else list(STEPS)
    unknown = [name for name in only if name not in STEPS]
    if unknown:
        parser.error(f"--only: unknown step {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    env = dict(prepared_env(args.wheels), TRANSLATE_GPU_SUITE=str(args.out.resolve()))  # marks its processes
    suite = Suite(args.out.resolve(), device, args.quick, env, args.budget)
    suite.compile_modes = [mode.strip() for mode in args.compile_modes.split(",") if mode.strip()]
    print(f"translate GPU suite on {platform.node()}, {device}{', quick' if args.quick else ''}; log {suite.log}",
          flush=True)
    suite.environment()
    for step in [getattr(suite, name) for name in STEPS if name in only]:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - a broken step is reported and the others still run
            suite.record(step.__name__, False, 0.0, f"{type(exc).__name__}: {exc}"[:300])
    code = suite.finish()
    print(f"suite wall time {time.perf_counter() - started:.0f} s")
    raise SystemExit(code)


if __name__ == "__main__":
    main()

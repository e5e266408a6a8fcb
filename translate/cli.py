"""The ``translate`` command line: parse, hand off to one function, turn user errors into one line.

Options default to None ("not given") so they never hide a value from a preset, a config file or
``--set``; the defaults themselves live in config.py's dataclasses or in the signature of the function a
command hands off to (an option left out is left out of the call, see :func:`_given`).

Importing this module imports neither torch nor Lightning, so ``translate --help``, ``--version`` and
``translate <command> --help`` answer at once: every heavy import is inside a command, and help texts
list choices from :mod:`translate.choices` (literal copies of the registries, checked by the tests).
"""

from __future__ import annotations

import errno
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from translate import __version__
from translate.choices import (ADVERSARIAL, BACKENDS, BLENDS, CONVERT_PRECISIONS, DIRECTIONS, EXPORT_FORMATS,
                               FEATURES, IMAGE_FORMATS, MODELS, TRAIN_PRECISIONS, WEIGHTS, listed)
from translate.config import DataConfig, EvalConfig, TrainConfig
from translate.errors import TranslateError

WeightsOption = Annotated[Optional[str], typer.Option(
    help=f"A checkpoint's {listed(WEIGHTS)} weights: the generators' moving average (train.ema) or the trained "
         "weights themselves (default: ema when the checkpoint has it, else raw).")]

app = typer.Typer(
    name="translate",
    help="Unpaired image-to-image translation: CycleGAN, DiscoGAN and GeneGAN on PyTorch Lightning.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@contextmanager
def user_errors() -> Iterator[None]:
    """A user's mistake becomes `error: ...` on stderr and a non-zero exit, never a traceback.

    Lightning's MisconfigurationException is recognised by name: importing Lightning costs seconds, and
    commands such as convert never need it."""
    try:
        yield
    except TranslateError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror}{where}; free some space (or choose another folder) and run again",
                   err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        if not any(cls.__name__ == "MisconfigurationException" for cls in type(exc).__mro__):
            raise
        typer.echo(f"error: {str(exc).strip().splitlines()[0]}", err=True)
        raise typer.Exit(2) from None


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave: None is "not given", left out so the function handed off to applies its own
    default (one place owns each default, and the CLI never repeats it)."""
    return {name: value for name, value in options.items() if value is not None}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"translate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Show the version and exit.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More log output.")] = False,
) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s: %(message)s",
                        stream=sys.stderr)


@app.command()
def fit(
    target: Annotated[Optional[str], typer.Argument(
        help="What to train on: a preset (shapes, horse2zebra, ...), a built-in or catalog dataset (downloaded "
             "on first use), a folder with trainA/ and trainB/, or a YAML config file.", show_default=False)] = None,
    dir_a: Annotated[Optional[str], typer.Option("--a", help="A folder of domain-A images (with --b).")] = None,
    dir_b: Annotated[Optional[str], typer.Option("--b", help="A folder of domain-B images (with --a).")] = None,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Fine-tune: start from a checkpoint's weights, a pretrained model (horse2zebra: g_ab from it, "
                       "g_ba from zebra2horse) or a classic CycleGAN net_G_A.pth (fresh optimizer, schedule and "
                       "discriminators).")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config file (replaces the preset).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option(
        "--set", "-s", help="Override one config key, e.g. --set losses.lambda_cycle=5 (repeatable).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name: checkpoints/<name>/.")] = None,
    max_epochs: Annotated[Optional[int], typer.Option(help="Epochs to train (default: n_epochs + n_epochs_decay).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many training batches.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Images per domain per batch.")] = None,
    image_size: Annotated[Optional[int], typer.Option(
        help="Training crop size; images are first resized by the recipe's ratio (CycleGAN 286/256, DiscoGAN 1).")] = None,
    accelerator: Annotated[Optional[str], typer.Option(help="cpu, gpu, mps or auto.")] = None,
    devices: Annotated[Optional[str], typer.Option(help="auto, a count (2) or ids (0,1); >1 uses DDP.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option(help="Machines for multi-node DDP.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="auto (DDP when devices x nodes > 1) or ddp.")] = None,
    precision: Annotated[Optional[str], typer.Option(
        help=f"Lightning precision (train.precision): {listed(TRAIN_PRECISIONS)}.")] = None,
    adversarial: Annotated[Optional[str], typer.Option(
        help=f"Adversarial objective (losses.adversarial): {listed(ADVERSARIAL)}.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help=f"{listed(MODELS)}: the model's published recipe on the target's data.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for weights, data order and augmentation.")] = None,
    data_root: Annotated[Optional[str], typer.Option(
        help=f"Where named datasets live (data.root; default: {DataConfig().root}/).")] = None,
    out_dir: Annotated[Optional[str], typer.Option(
        help=f"Where runs are written (train.out_dir; default: {TrainConfig().out_dir}/).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue checkpoints/<name>/last.ckpt exactly.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and exit.")] = False,
) -> None:
    """Train a model; writes checkpoints, config.yaml, sample grids and logs to checkpoints/<run>/."""
    from translate import train

    flags = {
        "train.run_name": name, "train.max_epochs": max_epochs, "train.max_steps": max_steps,
        "data.batch_size": batch_size, "train.accelerator": accelerator, "train.devices": devices,
        "train.num_nodes": num_nodes, "train.strategy": strategy, "train.precision": precision, "train.seed": seed,
        "data.root": data_root, "train.out_dir": out_dir, "losses.adversarial": adversarial,
        "model.name": model, "data.dir_a": dir_a, "data.dir_b": dir_b, "train.init": init,
    }
    flags["data.image_size"] = image_size  # config.resolve keeps the recipe's resize ratio
    with user_errors():
        cfg, run_dir, result = train.run_fit(target, str(config) if config else None, overrides, flags,
                                             resume=resume, dry_run=dry_run)
    if result is None:
        typer.echo(f"# run folder: {run_dir}")
        typer.echo(cfg.to_yaml(), nl=False)
        return
    if not result.is_global_zero:
        return
    resumed = f" ({result.batches_now} in this run)" if result.batches_now != result.batches else ""
    typer.echo(f"trained {result.batches} batches{resumed} in {result.seconds:.0f} s "
               f"({result.seconds / max(result.batches_now, 1):.3f} s/batch)")
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo(f"samples:    {result.samples}")
    if result.stopped_by:
        typer.echo(f"stopped by {result.stopped_by}; continue with: translate fit ... --name {result.run_dir.name} "
                   "--resume", err=True)
        raise typer.Exit(130 if result.stopped_by == "SIGINT" else 143)


@app.command()
def convert(
    checkpoint: Annotated[str, typer.Argument(
        help="A pretrained model (horse2zebra, style_monet, ...: translate models list; downloaded on first use), "
             "a checkpoint from translate fit (checkpoints/run/last.ckpt), a .safetensors from translate export, "
             "or a classic CycleGAN generator file (latest_net_G_A.pth).", show_default=False)],
    source: Annotated[str, typer.Argument(help="An image, a folder (recursive) or a glob pattern.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Output folder; mirrors the input's relative paths.",
                                           show_default=False)],
    direction: Annotated[Optional[str], typer.Option(help=f"{listed(DIRECTIONS)} (default: AtoB).")] = None,
    format: Annotated[Optional[str], typer.Option(
        "--format", help=f"{listed(IMAGE_FORMATS)} (default: keep).")] = None,
    quality: Annotated[Optional[int], typer.Option(help="JPEG/WebP quality, 0..100 (default: 95).")] = None,
    size: Annotated[Optional[int], typer.Option(
        help="Resize so the shorter side is N first (aspect kept); default: native size.")] = None,
    tile: Annotated[Optional[int], typer.Option(
        help="Translate images larger than N in overlapping N x N tiles (for very large images).")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Keep outputs that already exist.")] = False,
    batch_size: Annotated[Optional[int], typer.Option(
        help="Images of equal size translated together (default: 8 on CUDA, 1 on CPU).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available).")] = None,
    precision: Annotated[Optional[str], typer.Option(
        help=f"{listed(CONVERT_PRECISIONS)}; auto: bf16/fp16 autocast on CUDA, bf16 on a CPU with native bf16 "
             "(AVX-512 BF16 or AMX), else fp32 (default: auto).")] = None,
    backend: Annotated[Optional[str], typer.Option(
        help=f"{listed(BACKENDS)}; onnxruntime runs on the CPU in fp32 and needs the optional 'onnx' extra: pip "
             "install translate\\[onnx] (default: torch).")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the generator (pays off on big jobs).")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Decoding processes (default: up to 4 on CUDA, 1 on CPU).")] = None,
    devices: Annotated[Optional[int], typer.Option(
        help="Processes on this machine, each converting a share of the files: one per GPU (cuda:0 .. cuda:N-1) or, "
             "on a CPU, each with cores/N threads (default: 1). Under torchrun or srun each process is a share "
             "already: leave it out.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    weights: WeightsOption = None,
) -> None:
    """Translate image files at their native size; writes convert-report.json; exit 3 if some failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from translate import infer, parallel
    from translate.shard import launch_from_env

    columns = (TextColumn("converting"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn())
    with user_errors():
        main_rank = launch_from_env().rank == 0  # under torchrun/srun, rank 0 speaks for the job
    with user_errors(), Progress(*columns, disable=quiet or not main_rank, transient=True) as bar:
        task = bar.add_task("convert", total=None, rate="")
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            elapsed = time.perf_counter() - started
            bar.update(task, completed=done, total=total,
                       rate=f"{done / elapsed:.1f} images/s" if done and elapsed > 0 else "")

        report = parallel.convert(checkpoint, source, output, skip_existing=skip_existing, compile=compile,
                                  progress=progress, log=lambda msg: bar.console.print(msg),
                                  **_given(direction=direction, fmt=format, quality=quality, batch_size=batch_size,
                                           device=device, size=size, tile=tile, precision=precision,
                                           workers=workers, backend=backend, weights=weights, devices=devices))
    if report is None:  # a rank other than 0: rank 0 reports for the job
        return
    typer.echo(f"generator: {report.generator}; {report.precision}")
    _finish_batch("converted", report, output / infer.REPORT_NAME)


def _finish_batch(verb: str, report, path: Path) -> None:
    """Summary of a batch job (convert, swap on a folder): counts, rate, failures; exit 3 if any failed."""
    rate = f", {len(report.written) / report.seconds:.2f} images/s" if report.written and report.seconds else ""
    ignored = f", ignored {len(report.ignored)} other files" if report.ignored else ""
    typer.echo(f"{verb} {len(report.written)}, kept {len(report.skipped_existing)} existing, "
               f"failed {len(report.failed)}{ignored} in {report.seconds:.1f} s{rate} (report: {path})")
    for source, why in report.failed.items():
        typer.echo(f"failed: {source}: {why}", err=True)
    for source, note in report.notes.items():
        typer.echo(f"note: {source}: {note}", err=True)
    if report.failed:
        raise typer.Exit(3)


@app.command()
def export(
    checkpoint: Annotated[str, typer.Argument(
        help="A checkpoint from translate fit, a pretrained model name or a classic CycleGAN net_G .pth.",
        show_default=False)],
    out: Annotated[Path, typer.Argument(
        help="Output name: writes OUT.safetensors and OUT.pt2 (OUT.onnx with --format onnx).", show_default=False)],
    direction: Annotated[Optional[str], typer.Option(
        help=f"Which generator: {listed(DIRECTIONS)} (default: AtoB).")] = None,
    program: Annotated[Optional[bool], typer.Option(
        "--program/--no-program", help="Also write a program (.pt2, or .onnx with --format onnx) (default: "
                                       "True).")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help=f"The program beside the .safetensors: {listed(EXPORT_FORMATS)}; pt2: torch.export, onnx: "
                         "for onnxruntime, needs the optional 'onnx' extra of translate (default: pt2).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files.")] = False,
    weights: WeightsOption = None,
) -> None:
    """Write a standalone generator (safetensors weights + arguments, and a .pt2 or .onnx program), checked for
    parity."""
    from translate.export import TOLERANCE
    from translate.export import export as run_export

    with user_errors():
        result = run_export(checkpoint, out, force=force, **_given(direction=direction, program=program, fmt=fmt,
                                                               weights=weights))
    typer.echo(f"weights: {result.weights}")
    if result.program:
        typer.echo(f"program: {result.program}")
    if result.onnx:
        typer.echo(f"onnx: {result.onnx}")
    checks = ", ".join(f"{k} {v:.1e}" for k, v in result.max_error.items())
    typer.echo(f"parity with the checkpoint (max |difference|, tolerance {TOLERANCE:g}): {checks}")


@app.command()
def evaluate(
    checkpoint: Annotated[str, typer.Argument(
        help="A checkpoint from translate fit, a pretrained model name (scored on its own dataset, horse2zebra "
             "AtoB and zebra2horse BtoA), a .safetensors export or a classic net_G .pth.", show_default=False)],
    dataset: Annotated[Optional[str], typer.Argument(
        help="Dataset name or folder with testA/ testB/ (default: the checkpoint's own when it is a built-in or "
             "catalog name; a folder saved in a checkpoint is never followed).",
        show_default=False)] = None,
    direction: Annotated[Optional[str], typer.Option(
        help=f"{', '.join(DIRECTIONS)} or both (default: both).")] = None,
    features: Annotated[Optional[str], typer.Option(
        help=f"{', '.join(FEATURES)} or package.module:factory; inception: the FID standard, weights fetched "
             "once; classifier: trained on the dataset, offline; pixels: 8x8 thumbnails "
             f"(eval.features; default: {EvalConfig().features}).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for report.json and the grids (default: <checkpoint folder>/eval/<checkpoint name>).")] = None,
    max_images: Annotated[Optional[int], typer.Option(
        help=f"Test images per domain; 0: all (eval.max_images; default: {EvalConfig().max_images}).")] = None,
    data_root: Annotated[Optional[str], typer.Option(
        help=f"Where named datasets live (default: {DataConfig().root}/).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, ... (default: cuda if available).")] = None,
    weights: WeightsOption = None,
) -> None:
    """Translate the test split and score it: FID and KID against the real target test images (report.json,
    grids, a summary table); built-in datasets add offline checks."""
    from rich.console import Console
    from rich.table import Table

    from translate.evaluate import evaluate as run_evaluate

    directions = None if direction is None else DIRECTIONS if direction == "both" else (direction,)
    with user_errors():
        report = run_evaluate(checkpoint, dataset, out_dir=out, root=data_root, device=device,
                              **_given(directions=directions, features=features, max_images=max_images,
                                       weights=weights))
    used = f", {report['weights']} weights" if report.get("weights") else ""
    table = Table(title=f"{report['model']} on {report['dataset']} ({report['protocol']['features']} features, "
                        f"{report['protocol']['image_size']} px{used})")
    for column in ("direction", "images", "FID", "KID x 1000", "FID do-nothing"):  # do-nothing: the inputs
        table.add_column(column, justify="right")
    extra = any("domain_classifier" in m for m in report["directions"].values())
    if extra:
        table.add_column("in target domain (do-nothing)", justify="right")
    for name, m in report["directions"].items():
        row = [name, f"{m['n_inputs']} -> {m['n_targets']}", f"{m['fid']:.2f}",
               f"{1000 * m['kid_mean']:.2f} ± {1000 * m['kid_std']:.2f}", f"{m['do_nothing']['fid']:.2f}"]
        if extra:
            c = m.get("domain_classifier")
            row.append(f"{c['translated']:.0%} ({c['do_nothing']:.0%})" if c else "")
        table.add_row(*row)
    Console().print(table)
    skipped = {path: why for m in report["directions"].values() for path, why in m["skipped"].items()}
    for path, why in skipped.items():
        typer.echo(f"skipped: {path}: {why}", err=True)
    for name, m in report["directions"].items():
        if "paired" in m:
            t, d = m["paired"]["translated"], m["paired"]["do_nothing"]
            typer.echo(f"{name} paired checks (translated / do-nothing): colour error {t['colour_error']:.3f} / "
                       f"{d['colour_error']:.3f}, background error {t['background_error']:.3f} / "
                       f"{d['background_error']:.3f}, position error {t['position_error_px']:.2f} / "
                       f"{d['position_error_px']:.2f} px")
    typer.echo(f"report: {report['path']}")


@app.command()
def swap(
    checkpoint: Annotated[Path, typer.Argument(help="A GeneGAN checkpoint from translate fit.", show_default=False)],
    onto: Annotated[Path, typer.Option("--onto", help="An image without it, or a folder/glob of them.",
                                       show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output image (a folder when --onto is a folder).",
                                      show_default=False)],
    removed: Annotated[Optional[Path], typer.Option(
        help="Where the donor without its object goes (default: OUT-removed.png; single images only).")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Folder form: keep existing outputs.")] = False,
    donor: Annotated[Optional[Path], typer.Option(
        "--from", help="An image with the attribute (the object's donor).", show_default=False)] = None,
    remove: Annotated[bool, typer.Option(
        "--remove", help="Folder form without --from: remove the attribute from every image.")] = False,
    blend: Annotated[Optional[str], typer.Option(
        help=f"{listed(BLENDS)}; footprint: change only where the edit is, keep every other pixel at the input's "
             "size; none: the paper's raw decoder output at the training size (default: footprint).")] = None,
    weights: WeightsOption = None,
) -> None:
    """GeneGAN: put the donor's object (glasses, smile, ...) on an image, and remove it from the donor;
    or (--remove) remove it from every image of a folder."""
    from translate import swap as genegan

    with user_errors():
        if remove == (donor is not None):
            raise TranslateError("give either --from DONOR (swap) or --remove (remove the attribute), not both")
        folder = onto.is_dir() or (not onto.exists() and any(ch in str(onto) for ch in "*?["))
        if folder or remove:
            result = genegan.swap_folder(checkpoint, donor, onto, out, skip_existing=skip_existing,
                                         **_given(blend=blend, weights=weights))
            _finish_batch("removed" if remove else "swapped", result, out / genegan.REPORT_NAME)
            return
        gained, lost = genegan.swap_files(checkpoint, donor, onto, out, removed,
                                          **_given(blend=blend, weights=weights))
    typer.echo(f"with the object: {gained}\nwithout it:      {lost}")


@app.command()
def interpolate(
    checkpoint: Annotated[Path, typer.Argument(help="A GeneGAN checkpoint from translate fit.", show_default=False)],
    onto: Annotated[Path, typer.Option("--onto", help="The image that receives the object.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output PNG.", show_default=False)],
    donor: Annotated[Optional[Path], typer.Option("--from", help="Strip: the object's donor.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Strip: images from strength 0 to 1 (default: 8).")] = None,
    corners: Annotated[Optional[tuple[Path, Path, Path, Path]], typer.Option(
        help="Grid: four donors (top-left, top-right, bottom-left, bottom-right).")] = None,
    grid: Annotated[Optional[int], typer.Option(help="Grid: N x N cells (default: 5).")] = None,
    blend: Annotated[Optional[str], typer.Option(
        help=f"{listed(BLENDS)}; footprint: each cell changes only where its edit is, at the input's size; none: "
             "the raw decoder output (default: footprint).")] = None,
    weights: WeightsOption = None,
) -> None:
    """GeneGAN: the object at increasing strength (--from, a strip) or bilinear mixes of four objects
    (--corners, a grid), on one image."""
    from translate import swap as genegan

    with user_errors():
        path = genegan.interpolate_files(checkpoint, onto, out, donor=donor, corners=corners,
                                         **_given(steps=steps, grid=grid, blend=blend, weights=weights))
    typer.echo(f"wrote {path}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run folder from translate fit (e.g. checkpoints/stripes).",
                                            show_default=False)],
    out: Annotated[Optional[Path], typer.Option(help="PNG to write (default: RUN_DIR/report.png).")] = None,
) -> None:
    """Plot the run's losses and evaluation metrics over training (from its CSV logs) into a PNG."""
    from translate.report import plot_run

    with user_errors():
        path = plot_run(run_dir, out)
    typer.echo(f"plot: {path}")


datasets_app = typer.Typer(help="The dataset catalog: list, download, inspect.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


def _data_root(root: Optional[Path]) -> Path:
    """--root, else the data.root default of the config (where fit and evaluate look too)."""
    return root if root is not None else Path(DataConfig().root)


@datasets_app.command("list")
def datasets_list(
    root: Annotated[Optional[Path], typer.Option(
        help=f"Where datasets live (data.root; default: {DataConfig().root}/).")] = None,
) -> None:
    """Catalog datasets (and built-in ones): model, domains, source, licence, what is on disk."""
    from rich.console import Console
    from rich.table import Table

    from translate.data.builtin import BUILTIN_DATASETS
    from translate.data.catalog import CATALOG, on_disk

    root = _data_root(root)
    table = Table("name", "model", "domains", "source", "on disk (trainA/trainB/testA/testB)", "licence")
    for name, spec in BUILTIN_DATASETS.items():
        table.add_row(name, "any", spec.description, "built-in (generated)", on_disk(root / name), "ours")
    for entry in CATALOG.values():
        source = {"manual": f"place by hand: translate datasets download {entry.name}",
                  "derived": "made from edges2handbags and edges2shoes"}.get(entry.source) or entry.url()
        table.add_row(entry.name, entry.model, entry.domains, source, on_disk(root / entry.name), entry.licence)
    Console(width=200).print(table)


@datasets_app.command("download")
def datasets_download(
    name: Annotated[str, typer.Argument(help="A catalog name (translate datasets list).", show_default=False)],
    root: Annotated[Optional[Path], typer.Option(
        help=f"Where datasets live (data.root; default: {DataConfig().root}/).")] = None,
    url: Annotated[Optional[str], typer.Option(help="Mirror: base URL the archive name is appended to.")] = None,
) -> None:
    """Download (resumable, verified) and unpack a dataset into ROOT/NAME."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from translate.data.catalog import prepare

    with user_errors(), Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                                 transient=True) as bar:
        task = bar.add_task(name, total=None)
        folder = prepare(name, _data_root(root), mirror=url,
                         progress=lambda done, total: bar.update(task, completed=done, total=total),
                         log=lambda msg: bar.console.print(msg))
    typer.echo(f"{name}: {folder}")


@datasets_app.command("inspect")
def datasets_inspect(
    folder: Annotated[Path, typer.Argument(help="A dataset folder (trainA/ trainB/ ...).", show_default=False)],
) -> None:
    """Counts, size distribution, colour modes and unreadable files of each split, before a long run."""
    from translate.data.catalog import inspect

    with user_errors():
        reports = inspect(folder)
    for r in reports:
        line = f"{r.split}: {r.count} images"
        if r.sizes:
            (w0, h0), (w1, h1), (wm, hm) = r.sizes[0], r.sizes[-1], r.sizes[len(r.sizes) // 2]
            line += (f"; sizes {w0}x{h0} .. {w1}x{h1} (median {wm}x{hm}); "
                     f"modes {', '.join(f'{m} {n}' for m, n in r.modes.items())}")
        typer.echo(line)
        for name, why in r.unreadable.items():
            typer.echo(f"  unreadable: {r.split}/{name}: {why}")
    bad = sum(len(r.unreadable) for r in reports)
    if bad:
        typer.echo(f"{bad} unreadable files will be skipped in training")


models_app = typer.Typer(
    help="Pretrained CycleGAN generators of the classic repository (junyanz/pytorch-CycleGAN-and-pix2pix): list, "
         "download, forget. Cached in $TRANSLATE_MODELS_DIR, else $XDG_CACHE_HOME/translate/models, else "
         "~/.cache/translate/models; mirror: TRANSLATE_MODELS_URL or --url.",
    no_args_is_help=True)
app.add_typer(models_app, name="models")


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@models_app.command("list")
def models_list(
    cache: Annotated[Optional[Path], typer.Option(
        help="Model cache folder (default: $TRANSLATE_MODELS_DIR, else $XDG_CACHE_HOME/translate/models, else "
             "~/.cache/translate/models).")] = None,
) -> None:
    """All pretrained models: direction, architecture, source URL (mirror-aware), whether cached."""
    from rich.console import Console
    from rich.table import Table

    from translate import zoo

    folder = cache if cache is not None else zoo.cache_dir()
    table = Table()
    table.add_column("name", no_wrap=True)  # the name users type: never wrapped
    table.add_column("direction")
    table.add_column("architecture")
    table.add_column("source", no_wrap=True, overflow="fold")  # a cut URL is useless: the others wrap first
    table.add_column("cached", no_wrap=True)
    for model in zoo.ZOO.values():
        path = folder / model.file
        table.add_row(model.name, model.direction, model.arch, model.url(),
                      f"yes ({_size(path.stat().st_size)})" if path.is_file() else "no")
    Console(width=200).print(table)
    typer.echo(f"cache: {folder}")


@models_app.command("download")
def models_download(
    name: Annotated[str, typer.Argument(help="A model name (translate models list).", show_default=False)],
    url: Annotated[Optional[str], typer.Option(help="Mirror: base URL the file name NAME.pth is appended to.")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Model cache folder (default: see translate models list).")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Download again even if cached; the copy is replaced only if it matches the recorded "
                        "sha256.")] = False,
) -> None:
    """Download (resumable, checked against the sha256 recorded at first download) a model into the cache."""
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    from translate.zoo import fetch

    with user_errors(), Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                                 transient=True) as bar:
        task = bar.add_task(name, total=None)
        path = fetch(name, mirror=url, cache=cache, force=force,
                     progress=lambda done, total: bar.update(task, completed=done, total=total),
                     log=lambda msg: bar.console.print(msg))
    typer.echo(f"{name}: {path}")


@models_app.command("forget")
def models_forget(
    name: Annotated[str, typer.Argument(help="A model name (translate models list).", show_default=False)],
    cache: Annotated[Optional[Path], typer.Option(help="Model cache folder (default: see translate models list).")] = None,
) -> None:
    """Remove a model's recorded sha256 (after an expected change on the server); the next download records anew."""
    from translate.zoo import forget

    with user_errors():
        removed = forget(name, cache)
    typer.echo(f"{name}: sha256 record removed" if removed else f"{name}: no sha256 was recorded")


@app.command()
def demo(
    models: Annotated[Optional[list[str]], typer.Argument(
        help="Models to offer first (checkpoints, .safetensors exports, pretrained names); checkpoints and exports "
             "under checkpoints/ and the pretrained names are offered too.", show_default=False)] = None,
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default: 127.0.0.1, this machine only).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port (default: the first free one from 7860).")] = None,
    share: Annotated[bool, typer.Option("--share", help="Also open a public Gradio share link.")] = False,
    concurrency: Annotated[Optional[int], typer.Option(
        help="Requests run at once; the others wait in the queue (default: 1).")] = None,
    device: Annotated[Optional[str], typer.Option(help="cpu, cuda, cuda:1 (default: cuda when there is one).")] = None,
) -> None:
    """A local web app: translate uploaded images, move a face attribute (GeneGAN), read a model's card.
    Needs the demo extra: pip install "translate[demo]"."""
    from translate import demo as web

    with user_errors():
        web.serve(models, **_given(host=host, port=port, concurrency=concurrency, device=device), share=share)


if __name__ == "__main__":
    app()

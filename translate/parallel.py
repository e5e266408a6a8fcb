"""``translate convert`` over several processes: ``--devices N`` spawned here, or torchrun's and srun's ranks.

:func:`convert` is what the CLI hands off to. One process (the default) is plain infer.convert. Under
torchrun or srun this process is one rank: it converts its share (see shard.py), and rank 0 then waits for
the others and merges the reports. With ``--devices N`` this process checks and plans the job first (the
same one-line errors as one process, a pretrained model downloaded once, temporary files of killed runs
removed before anyone writes), spawns N workers (rank r on cuda:r; on a CPU each with cores // N torch
threads), shows their progress, and merges. A worker that dies is noticed at once; the others finish their
shares first, so that ``--skip-existing`` has the least left to do.

``--backend onnxruntime`` works with ``--devices N`` on a CPU: the export is made once, here, and each
worker runs its own session with cores // N threads.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from translate.errors import TranslateError
from translate.shard import (Launch, RankReport, job_id, launch_from_env, merge, read_partial, remove_partials,
                             wait_for_ranks)

Progress = Callable[[int, int], None]
GRACE_SECONDS = 10.0  # how long a stopping job waits for a worker to stop by itself before it is terminated


def convert(checkpoint: str, source: str, output: str | Path, *, devices: int | None = None,
            progress: Progress | None = None, log: Callable[[str], None] | None = None, **options: Any):
    """infer.convert(checkpoint, source, output, **options) in this process, as a rank of a torchrun/srun
    job, or over `devices` processes spawned here. Returns the (merged) ConvertReport; None on ranks other
    than 0, which leave reporting to rank 0."""
    from translate import infer

    if devices is not None and devices < 1:
        raise TranslateError(f"--devices must be at least 1, got {devices}")
    launch = launch_from_env()
    if launch.distributed:
        if devices is not None and devices > 1:
            raise TranslateError(f"--devices {devices}: under {launch.launcher} each of its {launch.world_size} "
                                 "processes converts its share already; leave out --devices")
        return _as_rank(launch, checkpoint, source, output, progress, log, options)
    if devices is None or devices == 1:
        return infer.convert(checkpoint, source, output, progress=progress, log=log, **options)
    return _spawned(devices, checkpoint, source, output, progress, log, options)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _merged(parts: list[dict], out_root: Path, started: float):
    from translate.data.io import remove_stale_temporaries
    from translate.infer import REPORT_NAME, ConvertReport

    report = ConvertReport(**merge(parts), seconds=time.perf_counter() - started)
    report.write(out_root / REPORT_NAME)
    remove_partials(out_root)
    remove_stale_temporaries(out_root)  # every rank has finished: what is left, killed writers left
    return report


# ----------------------------------------------------------------------------- torchrun and srun

def _rank_device(device: str | None, backend: str, local_rank: int) -> str | None:
    """A rank's device: cuda:LOCAL_RANK (modulo the GPUs it sees) unless --device names another."""
    import torch

    if backend != "torch" or device not in (None, "cuda") or not torch.cuda.is_available():
        return device
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def _job_progress(state: RankReport, progress: Progress | None, out_root: Path, job: str,
                  launch: Launch) -> Progress:
    """Rank 0's progress callback: its own counts beat, and the bar shows the whole job's (the other ranks'
    counts read from their partial reports, at most once a second)."""
    seen: dict[str, Any] = {"at": 0.0, "done": 0, "total": 0}

    def report(done: int, total: int) -> None:
        state.progress(done, total)
        if progress is None:
            return
        now = time.monotonic()
        if now - seen["at"] >= 1.0:
            parts = [read_partial(out_root, r, launch.world_size, job) for r in range(1, launch.world_size)]
            known = [p for p in parts if p and p.get("total") is not None]
            seen.update(at=now, done=sum(p["done"] for p in known), total=sum(p["total"] for p in known))
        progress(done + seen["done"], total + seen["total"])

    return report


def _as_rank(launch: Launch, checkpoint: str, source: str, output: str | Path, progress: Progress | None,
             log, options: dict):
    from translate import infer

    started = time.perf_counter()
    job = job_id(launch)
    out_root = Path(output).resolve()  # what plan_batch's output_root returns once it has checked it
    device = _rank_device(options.pop("device", None), options.get("backend", "torch"), launch.local_rank)
    state = RankReport(out_root, job, launch.rank, launch.world_size, device or "cpu")
    main = launch.rank == 0
    callback = _job_progress(state, progress, out_root, job, launch) if main else state.progress
    try:
        report = infer.convert(checkpoint, source, output, rank=launch.rank, world_size=launch.world_size,
                               progress=callback, log=log if main else None, device=device, **options)
    except BaseException as exc:
        state.fail(str(exc) or type(exc).__name__)
        raise
    state.finish(asdict(report))
    if not main:
        return None
    return _merged(wait_for_ranks(out_root, job, launch.world_size, progress=progress), out_root, started)


# ----------------------------------------------------------------------------- --devices N

def _spawn_devices(n: int, device: str | None, backend: str) -> tuple[list[str | None], int | None]:
    """(each worker's --device, each worker's torch threads or None) for --devices N, or a one-line error."""
    import torch

    from translate.infer import resolve_device

    dev = resolve_device(device)
    if backend != "torch" or dev.type == "cpu":  # onnxruntime runs on the CPU
        cores = _cores()
        if n > cores:
            raise TranslateError(f"--devices {n}: this machine has {cores} CPU core{'s' if cores > 1 else ''} "
                                 f"for the processes to share; use --devices {cores} or fewer")
        return [device] * n, max(1, cores // n)
    if dev.type != "cuda":
        raise TranslateError(f"--devices {n}: {dev.type} is one device; use --devices 1")
    if dev.index is not None:
        raise TranslateError(f"--devices {n} uses cuda:0 .. cuda:{n - 1}; leave out the index of --device "
                             f"{device} (choose the GPUs with CUDA_VISIBLE_DEVICES)")
    count = torch.cuda.device_count()
    if n > count:
        raise TranslateError(f"--devices {n}: this machine has {count} CUDA GPU{'s' if count > 1 else ''}; use "
                             f"--devices {count} or fewer (or --device cpu)")
    return [f"cuda:{r}" for r in range(n)], None


def _spawned(n: int, checkpoint: str, source: str, output: str | Path, progress: Progress | None, log,
             options: dict):
    import inspect
    import multiprocessing

    from translate import infer

    started = time.perf_counter()
    backend = options.get("backend", "torch")
    devices, threads = _spawn_devices(n, options.get("device"), backend)
    checks = {k: v for k, v in options.items() if k in inspect.signature(infer.prepare).parameters}
    prepared = infer.prepare(checkpoint, source, output, log=log, **checks)
    out_root = prepared.plan.out_root
    if backend == "onnxruntime":  # exported once, here: the workers find it in the model cache
        from translate.onnx_runtime import onnx_generator_for
        from translate.zoo import cache_dir

        onnx_generator_for(prepared.generator.net, cache=cache_dir() / "onnx")
    del prepared
    job = uuid.uuid4().hex
    context = multiprocessing.get_context("spawn")  # CUDA cannot run in a forked child
    start_method = multiprocessing.get_start_method()  # the workers' DataLoaders start theirs as this one would
    workers = [context.Process(target=_worker, name=f"translate-convert-{rank}",
                               args=(rank, n, job, devices[rank], threads, start_method, checkpoint, source,
                                     str(out_root), options)) for rank in range(n)]
    try:
        for worker in workers:
            worker.start()
        parts = wait_for_ranks(out_root, job, n, exited=lambda rank: workers[rank].exitcode, progress=progress)
        for worker in workers:
            worker.join()
    finally:  # interrupted (Ctrl-C reaches the workers too) or failed: no worker outlives the command
        for worker in workers:
            if worker.pid is not None:
                worker.join(timeout=GRACE_SECONDS)  # time to finish the file in hand and say why it stops
                if worker.is_alive():
                    worker.terminate()
                    worker.join()
    return _merged(parts, out_root, started)


def _worker(rank: int, world_size: int, job: str, device: str | None, threads: int | None, start_method: str,
            checkpoint: str, source: str, out_root: str, options: dict) -> None:
    """One spawned process of --devices N: its share, its partial report beating from the start (the parent
    has checked the output folder)."""
    import multiprocessing

    # A spawned child would start its DataLoader's decoding workers by spawning too: each importing torch
    # again (seconds). They only decode, so they start as one process's do (fork on Linux).
    multiprocessing.set_start_method(start_method, force=True)
    state = RankReport(Path(out_root), job, rank, world_size, device or "cpu")
    state.start()
    try:
        import torch

        from translate import infer

        if threads:
            torch.set_num_threads(threads)
        report = infer.convert(checkpoint, source, out_root, rank=rank, world_size=world_size,
                               progress=state.progress, **{**options, "device": device})
    except KeyboardInterrupt:
        state.fail("interrupted")
        sys.exit(130)
    except TranslateError as exc:
        state.fail(str(exc))
        sys.exit(exc.exit_code)
    except BaseException as exc:
        state.fail(f"{type(exc).__name__}: {exc}")
        raise
    state.finish(asdict(report))

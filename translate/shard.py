"""One conversion job shared by several processes (ranks): who takes which file, which job a process belongs
to, and how the ranks' reports become one. parallel.py runs the processes.

* A file belongs to rank ``crc32(its relative posix path) % world_size`` (:func:`share_of`): the shares are
  disjoint, cover the folder, are the same in every process and on every run, and a file added later moves
  no other file to another rank.
* Each rank converts its share exactly as one process would (infer.convert: the same output paths, atomic
  writes and ``--skip-existing``) and keeps its partial report ``OUT/.convert-report.rank-R-of-W.json`` up
  to date (:class:`RankReport`): a heartbeat every few seconds with its progress, then its report. The
  files that could not be planned and the ignored ones are rank 0's, so the merged report counts each once.
* The merger waits for every rank's report (:func:`wait_for_ranks`), merges them into ``convert-report.json``
  (:func:`merge`; with one line per rank) and removes the partial ones. A rank that stopped (exited, failed,
  or silent for :data:`WAIT_SECONDS`) is named in a one-line error once the others have finished; what the
  ranks wrote is kept, so the same command with ``--skip-existing`` finishes the job.
* Each partial report carries its job's id (:func:`job_id`), so one left by an earlier, interrupted job is
  never taken for this job's: ``--devices N`` draws one; under srun it is SLURM_JOB_ID.SLURM_STEP_ID and the
  requeue count; under torchrun rank 0 draws one and sends it to the others through torch.distributed (gloo,
  at the launcher's MASTER_ADDR:MASTER_PORT); ``TRANSLATE_JOB_ID``, one value for every rank, overrides them.
* Temporary files left by killed runs are removed by the merger once every rank has finished: a process
  cannot tell whether a temporary file written from another machine still has a live writer.

Torch is imported only where needed (torchrun's rendezvous), so the CLI can read the launch cheaply.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from translate.data.io import atomic_write
from translate.errors import TranslateError

JOB_ENV = "TRANSLATE_JOB_ID"
HEARTBEAT_SECONDS = 2.0  # how often a working rank rewrites its partial report
WAIT_SECONDS = 600.0  # a rank whose partial report has not changed for this long is taken for dead
PARTIAL_GLOB = ".convert-report.rank-*-of-*.json"


# ----------------------------------------------------------------------------- who takes which file

def share_of(key: str | PurePath, world_size: int) -> int:
    """The rank that converts the file whose path relative to the input root is `key`."""
    text = key.as_posix() if isinstance(key, PurePath) else str(key)
    return zlib.crc32(text.encode("utf-8", "surrogateescape")) % world_size


def in_share(key: str | PurePath, rank: int, world_size: int) -> bool:
    return world_size <= 1 or share_of(key, world_size) == rank


# ----------------------------------------------------------------------------- the launch environment

@dataclass(frozen=True)
class Launch:
    """This process's place in a job: rank `rank` of `world_size`, `local_rank` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launcher: str = ""  # "torchrun" (WORLD_SIZE and RANK in the environment), "srun", or "" for one process

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_from_env(env: Mapping[str, str] | None = None) -> Launch:
    """The launch torchrun (WORLD_SIZE, RANK, LOCAL_RANK) or srun (SLURM_STEP_NUM_TASKS, SLURM_PROCID,
    SLURM_LOCALID) describes in the environment. srun is recognised by its step's task count: inside an
    sbatch script but outside srun, SLURM_NTASKS is set while one process runs."""
    env = os.environ if env is None else env

    def number(name: str, default: int) -> int:
        try:
            return int(env.get(name) or default)
        except ValueError:
            raise TranslateError(f"{name}={env[name]!r} in the environment is not a number") from None

    if "WORLD_SIZE" in env:
        launcher, world, rank = "torchrun", number("WORLD_SIZE", 1), number("RANK", 0)
        local = number("LOCAL_RANK", rank)
    elif "SLURM_STEP_NUM_TASKS" in env:
        launcher, world, rank = "srun", number("SLURM_STEP_NUM_TASKS", 1), number("SLURM_PROCID", 0)
        local = number("SLURM_LOCALID", 0)
    else:
        return Launch()
    if world <= 1:
        return Launch()
    if not 0 <= rank < world:
        raise TranslateError(f"{launcher}: rank {rank} is not one of 0 .. {world - 1}")
    return Launch(rank, world, local, launcher)


def job_id(launch: Launch, env: Mapping[str, str] | None = None) -> str:
    """The id every rank of this job shares (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get(JOB_ENV):
        return env[JOB_ENV]
    if launch.launcher == "srun" and env.get("SLURM_JOB_ID"):
        return f"slurm-{env['SLURM_JOB_ID']}.{env.get('SLURM_STEP_ID', '')}.{env.get('SLURM_RESTART_COUNT', '0')}"
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT"):
        return _draw_job_id(launch)
    raise TranslateError(f"this is rank {launch.rank} of {launch.world_size}, but neither torchrun (MASTER_ADDR, "
                         f"MASTER_PORT) nor srun (SLURM_JOB_ID) says which job: set {JOB_ENV} to one value for every "
                         "rank")


def _draw_job_id(launch: Launch) -> str:
    """Rank 0's random id, sent to every rank through the launcher's rendezvous (torch.distributed, gloo)."""
    from datetime import timedelta

    import torch.distributed as dist

    dist.init_process_group("gloo", rank=launch.rank, world_size=launch.world_size,
                            timeout=timedelta(seconds=WAIT_SECONDS))
    try:
        box = [uuid.uuid4().hex if launch.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])
    finally:
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- partial reports

def partial_path(out_root: Path, rank: int, world_size: int) -> Path:
    return Path(out_root) / f".convert-report.rank-{rank}-of-{world_size}.json"


class RankReport:
    """One rank's partial report: rewritten every HEARTBEAT_SECONDS while the rank works (its progress, and a
    beat counter that tells the merger it is alive), then once with its report, or with why it failed."""

    def __init__(self, out_root: Path, job: str, rank: int, world_size: int, device: str = "") -> None:
        self.path = partial_path(out_root, rank, world_size)
        self._state: dict[str, Any] = {"job": job, "rank": rank, "world_size": world_size, "state": "running",
                                       "beat": 0, "done": 0, "total": None, "host": socket.gethostname(),
                                       "pid": os.getpid(), "device": device}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Write the report now and keep it beating (once the output folder is known to be the right one)."""
        if self._thread is None:
            self._write()
            self._thread = threading.Thread(target=self._beat, name="translate-heartbeat", daemon=True)
            self._thread.start()

    def progress(self, done: int, total: int) -> None:
        """infer.convert's progress callback; its first call (after planning) starts the heartbeat."""
        with self._lock:
            self._state.update(done=done, total=total)
        self.start()

    def finish(self, report: dict) -> None:
        self._close(state="finished", report=report)

    def fail(self, why: str) -> None:
        """Say why this rank stops (only once it has started: before that the folder may be the wrong one)."""
        if self._thread is not None:
            self._close(state="failed", error=why)

    def _close(self, **final: Any) -> None:
        self.start()
        self._stop.set()
        self._write(**final)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._write()

    def _write(self, **final: Any) -> None:
        with self._lock:  # the last word is the final one: no beat after it
            if self._closed:
                return
            self._closed = bool(final)
            self._state["beat"] += 1
            self._state.update(final)
            text = json.dumps(self._state)
            try:
                atomic_write(self.path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
            except OSError:
                if final:
                    raise  # a beat may miss (a full disk, NFS hiccup); the final report may not


def read_partial(out_root: Path, rank: int, world_size: int, job: str) -> dict | None:
    """Rank `rank`'s partial report of job `job`, or None (not written yet, or left by another job)."""
    try:
        data = json.loads(partial_path(out_root, rank, world_size).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("job") == job else None


def wait_for_ranks(out_root: Path, job: str, world_size: int, *, timeout: float | None = None,
                   exited: Callable[[int], int | None] | None = None,
                   progress: Callable[[int, int], None] | None = None, poll: float = 0.2) -> list[dict]:
    """Every rank's final partial report, in rank order, once all have finished; a TranslateError naming the
    ranks that stopped instead (`exited(rank)`: its exit code once the process has ended, for ranks this
    process started), after the others have finished. `progress(done, total)` gets the whole job's counts."""
    timeout = WAIT_SECONDS if timeout is None else timeout
    since = time.monotonic()
    last_beat: dict[int, tuple[int, float]] = {}  # rank -> (beat, when it changed)
    latest: dict[int, dict] = {}
    finished: dict[int, dict] = {}
    stopped: dict[int, str] = {}
    while True:
        now = time.monotonic()
        for rank in range(world_size):
            if rank in finished or rank in stopped:
                continue
            code = exited(rank) if exited else None  # asked first: a process that ended wrote its last word
            part = read_partial(out_root, rank, world_size, job)
            if part is not None:
                latest[rank] = part
                if part.get("state") == "finished":
                    finished[rank] = part
                    continue
                if part.get("state") == "failed":
                    stopped[rank] = f"failed: {part.get('error')}"
                    continue
                if last_beat.get(rank, (None,))[0] != part.get("beat"):
                    last_beat[rank] = (part.get("beat"), now)
            where = f" after {part.get('done')} of {part.get('total')} files" if part else " before it wrote a report"
            if code is not None:
                stopped[rank] = f"exited with code {code}{where}"
            elif now - last_beat.get(rank, (None, since))[1] > timeout:
                stopped[rank] = (f"silent for {timeout:.0f} s{where} (is it running, and does it write to "
                                 f"this same folder {out_root}?)")
        if progress:
            known = [p for p in latest.values() if p.get("total") is not None]
            progress(sum(p["done"] for p in known), sum(p["total"] for p in known))
        if len(finished) + len(stopped) == world_size:
            break
        time.sleep(poll)
    if stopped:
        which = "; ".join(f"rank {rank}: {why}" for rank, why in sorted(stopped.items()))
        raise TranslateError(f"{len(stopped)} of {world_size} ranks did not finish ({which}). The files written "
                             "are kept: run the same command again with --skip-existing to finish the job")
    return [finished[rank] for rank in range(world_size)]


def merge(parts: list[dict]) -> dict:
    """The fields of one ConvertReport from every rank's final partial report (rank order); `seconds` is
    left to the merger, which measured the whole job."""
    reports = [part["report"] for part in parts]
    first = reports[0]
    failed: dict[str, str] = {}
    notes: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for report in reports:
        failed.update(report["failed"])
        notes.update(report["notes"])
        ignored.update(report["ignored"])
    ranks = [{"rank": part["rank"], "host": part["host"], "device": part["device"],
              "written": len(report["written"]), "skipped_existing": len(report["skipped_existing"]),
              "failed": len(report["failed"]), "seconds": round(report["seconds"], 3)}
             for part, report in zip(parts, reports)]
    return {"written": sorted(p for r in reports for p in r["written"]),
            "skipped_existing": sorted(p for r in reports for p in r["skipped_existing"]),
            "failed": dict(sorted(failed.items())), "ignored": ignored, "notes": dict(sorted(notes.items())),
            "generator": first["generator"], "precision": first["precision"], "backend": first["backend"],
            "ranks": ranks}


def remove_partials(out_root: Path) -> None:
    for path in Path(out_root).glob(PARTIAL_GLOB):
        path.unlink(missing_ok=True)

"""Standalone generator files: ``NAME.safetensors`` (weights + constructor arguments) and ``NAME.pt2``.

* ``.safetensors`` holds only tensors plus a JSON header (``__metadata__["translate"]``: model, direction,
  net kind, architecture and its keyword arguments), so loading it executes nothing; ``translate convert``
  accepts it in place of a checkpoint and rebuilds the net from our registry.
* ``.pt2`` is a ``torch.export`` program (the successor of TorchScript, which PyTorch has deprecated) with
  dynamic batch, height and width (multiples of the generator's size multiple, at least two of them), for
  serving without this package: ``torch.export.load("NAME.pt2").module()(x)`` with ``x`` in [-1, 1].

* ``.onnx`` (``--format onnx``, in place of the ``.pt2``; needs the extra ``translate[onnx]``) is the same
  generator for onnxruntime and other ONNX runtimes, with the same dynamic sizes and the JSON header in its
  ``metadata_props`` (see :mod:`translate.onnx_runtime`).

Each is checked against the checkpoint's own generator before the files are kept.

This module owns the export format (its header, :data:`EXPORT_VERSION`, :func:`read_exported`); which net
translates which way (:data:`~translate.checkpoint.DIRECTIONS`) and loading the generator to export
(:func:`~translate.checkpoint.load_generator`) belong to checkpoint.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.checkpoint import DIRECTIONS, build_from_spec, load_generator, spec_problem
from translate.data.files import guard_outputs
from translate.data.io import atomic_write
from translate.errors import CheckpointError, ConfigError

EXPORT_VERSION = 1
SUFFIX = ".safetensors"
PROGRAM_SUFFIX = ".pt2"
ONNX_SUFFIX = ".onnx"
FORMATS = ("pt2", "onnx")  # the program written beside the .safetensors
TOLERANCE = 1e-4


@dataclass
class ExportResult:
    weights: Path
    program: Path | None
    max_error: dict[str, float]  # "safetensors"/"program"/"onnx" -> max |difference| against the checkpoint
    onnx: Path | None = None


def load_exported(path: str | Path, direction: str | None = None) -> nn.Module:
    """Rebuild the generator of a ``.safetensors`` export (no code is executed while loading)."""
    return read_exported(path, direction)[0]


def read_exported(path: str | Path, direction: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(the generator, its ``translate`` header) of a ``.safetensors`` export, from one read of the file.

    The JSON header is checked before anything is built: an integer ``format_version`` this translate
    supports, a known generator architecture, and keyword arguments its constructor takes (plain values);
    anything else is a :class:`CheckpointError`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"generator file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:  # one read: header and tensors
            meta = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()}
        info = json.loads(meta["translate"])
        kind, arch, kwargs = info["kind"], info["arch"], info["kwargs"]
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a translate generator file ({str(exc)[:200]})") from None
    version = info.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        what = "no format_version" if version is None else f"a malformed format_version {version!r}"
        raise CheckpointError(f"{path}: generator file with {what} (expected an integer from 1 to {EXPORT_VERSION})")
    if version > EXPORT_VERSION:
        raise CheckpointError(f"{path}: export format {version} is newer than this translate supports "
                              f"({EXPORT_VERSION}); upgrade translate")
    saved_direction = info.get("direction")
    if saved_direction is not None and saved_direction not in DIRECTIONS:
        raise CheckpointError(f"{path}: malformed generator file: unknown direction {saved_direction!r}")
    if direction is not None and saved_direction not in (None, direction):
        raise CheckpointError(f"{path} holds the {saved_direction} generator, not {direction}; "
                              f"use --direction {saved_direction}")
    if kind != "generator":
        raise CheckpointError(f"{path}: holds a {kind!r} net, not a generator")
    spec = {"kind": kind, "arch": arch, "kwargs": kwargs}
    problem = spec_problem("generator", spec)
    if problem:
        raise CheckpointError(f"{path}: malformed generator file: {problem}")
    try:
        net = build_from_spec("generator", spec)
    except ValueError as exc:
        raise CheckpointError(f"{path}: malformed generator file: {exc}") from None
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not match '{arch}': {str(exc).splitlines()[0]}") from None
    return net.eval(), info


def _probe(net: nn.Module, batch: int, extra: int) -> torch.Tensor:
    """A seeded input in [-1, 1], non-square, sides multiples of the net's size multiple."""
    m = int(getattr(net, "size_multiple", 1))
    side = m * max(2, -(-64 // m))
    g = torch.Generator().manual_seed(extra)
    return torch.rand(batch, 3, side + extra * m, side, generator=g) * 2 - 1


def generator_header(net: nn.Module, arch: str, kwargs: dict[str, Any], model: str = "cyclegan",
                     direction: str = "AtoB") -> dict[str, Any]:
    """The ``translate`` JSON header of an exported generator (``.safetensors`` and ``.onnx`` alike)."""
    return {"format_version": EXPORT_VERSION, "model": model, "direction": direction, "net": DIRECTIONS[direction],
            "kind": "generator", "arch": arch, "kwargs": kwargs,
            "size_multiple": int(getattr(net, "size_multiple", 1)), "input_range": [-1, 1]}


def save_generator(net: nn.Module, arch: str, kwargs: dict[str, Any], path: str | Path, model: str = "cyclegan",
                   direction: str = "AtoB") -> Path:
    """Write `net` (built as GENERATORS[arch](**kwargs)) as a ``.safetensors`` generator file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    meta = generator_header(net, arch, kwargs, model=model, direction=direction)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"translate": json.dumps(meta)}))
    return path


def export(checkpoint: str | Path, out: str | Path, direction: str = "AtoB", program: bool = True,
           force: bool = False, fmt: str = "pt2", weights: str = "auto") -> ExportResult:
    """Write OUT.safetensors and, unless `program` is False, a program beside it: OUT.pt2 (`fmt` "pt2") or
    OUT.onnx (`fmt` "onnx"); check each reproduces the checkpoint's generator (its moving average when it
    has one, unless `weights` is "raw")."""
    found = load_generator(checkpoint, direction, weights=weights)  # a checkpoint, an export, a classic .pth, a name
    net, spec, block = found.net, {"arch": found.arch, "kwargs": found.kwargs}, {"model": found.model}
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if fmt == "onnx" and not program:
        raise ConfigError("--format onnx writes a program (.onnx); it cannot be combined with --no-program")
    if fmt == "onnx":
        from translate.onnx_runtime import export_onnx, require_onnx

        require_onnx()  # before anything is written
    base = Path(out)
    if base.suffix in (SUFFIX, PROGRAM_SUFFIX, ONNX_SUFFIX):
        base = base.with_suffix("")
    weights, prog = base.with_name(base.name + SUFFIX), base.with_name(base.name + PROGRAM_SUFFIX)
    onnx_path = base.with_name(base.name + ONNX_SUFFIX) if fmt == "onnx" else None
    program = program and fmt == "pt2"
    targets = [weights] + ([prog] if program else []) + ([onnx_path] if onnx_path else [])
    guard_outputs(targets, [found.path])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise CheckpointError(f"{' and '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; choose another name or pass --force")
    base.parent.mkdir(parents=True, exist_ok=True)
    save_generator(net, spec["arch"], spec["kwargs"], weights, model=block["model"], direction=direction)

    x = _probe(net, batch=2, extra=1)
    with torch.no_grad():
        expected = net(x)
        errors = {"safetensors": (load_exported(weights, direction)(x) - expected).abs().max().item()}
    if program:
        m = int(getattr(net, "size_multiple", 1))
        dims = {"x": {0: torch.export.Dim("batch", min=1, max=4096),
                      2: m * torch.export.Dim("h", min=2, max=65536 // m),
                      3: m * torch.export.Dim("w", min=2, max=65536 // m)}}
        exported = torch.export.export(net, (x,), dynamic_shapes=dims)
        atomic_write(prog, lambda tmp: torch.export.save(exported, tmp))
        with torch.no_grad():
            y = _probe(net, batch=1, extra=3)  # another shape: the program's sizes are dynamic
            errors["program"] = (torch.export.load(prog).module()(y) - net(y)).abs().max().item()
    if onnx_path is not None:
        header = generator_header(net, spec["arch"], spec["kwargs"], model=block["model"], direction=direction)
        try:  # checked in onnxruntime on another shape than the traced one; raises above TOLERANCE
            errors["onnx"] = export_onnx(net, onnx_path, header=header)
        except CheckpointError:
            for p in targets:
                p.unlink(missing_ok=True)
            raise
    bad = {k: v for k, v in errors.items() if not v <= TOLERANCE}
    if bad:
        for p in targets:
            p.unlink(missing_ok=True)
        raise CheckpointError(f"exported generator does not reproduce the checkpoint: {bad}; nothing written")
    return ExportResult(weights, prog if program else None, errors, onnx=onnx_path)

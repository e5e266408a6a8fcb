"""ONNX export of a generator, and an onnxruntime-backed generator with the interface of the PyTorch one.

* Exporter: ``torch.onnx.export(..., dynamo=True)``, the documented current one (the default since torch 2.9;
  it goes through ``torch.export`` and onnxscript). The TorchScript exporter (``dynamo=False``) rides on
  TorchScript, which PyTorch has deprecated, so it is not used. Batch, height and width are dynamic
  (``torch.export.Dim``; height and width as multiples of the net's ``size_multiple``, at least two of them,
  as in the ``.pt2`` export), which holds through ReflectionPad2d, ConvTranspose2d and InstanceNorm2d.
* The file is self-contained (weights inside, no external data file) and carries two ``metadata_props``:
  ``size_multiple`` and ``translate``, the JSON header of the ``.safetensors`` export (model, direction,
  arch, kwargs, ...).
* Every export is checked with onnxruntime against the PyTorch net on an input of another shape than the one
  traced (batch 2 against 1, non-square) before the file is put in place; above ``export.TOLERANCE`` nothing
  is kept and a :class:`CheckpointError` is raised.
* :class:`OnnxGenerator` runs on the CPU only (the ``CPUExecutionProvider``): ``.to("cuda")`` refuses.

Everything here needs the optional extra ``translate[onnx]`` (onnxruntime; the exporter also onnx and
onnxscript); :func:`require_onnx` says so in one line when it is missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from translate.data.io import atomic_write
from translate.errors import CheckpointError, TranslateError

INSTALL_HINT = "ONNX needs the optional extra: pip install 'translate[onnx]'"
SUFFIX = ".onnx"
_CHATTY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "torch.fx",
                   "torch._subclasses", "onnxscript", "onnx_ir")


class OnnxUnavailable(TranslateError):
    """The optional ONNX packages are not installed."""


def require_onnx(exporter: bool = True) -> ModuleType:
    """The onnxruntime module; with `exporter`, also check what ``torch.onnx.export(dynamo=True)`` imports
    (onnx, onnxscript). A one-line :class:`OnnxUnavailable` naming the extra when something is missing."""
    names = ("onnxruntime", "onnx", "onnxscript") if exporter else ("onnxruntime",)
    modules = {}
    for name in names:
        try:
            modules[name] = __import__(name)
        except ImportError:
            raise OnnxUnavailable(f"{INSTALL_HINT} ({name} is not installed)") from None
    return modules["onnxruntime"]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Mute the exporter: its progress lines go to stdout, torch.export and onnxscript warn and log a lot."""
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _cpu_fp32(net: nn.Module) -> nn.Module:
    """`net` itself when it is already fp32 on the CPU, else a CPU fp32 copy (the caller's net is left alone)."""
    tensors = list(net.parameters()) + list(net.buffers())
    if all(t.device.type == "cpu" and (t.dtype == torch.float32 or not t.is_floating_point()) for t in tensors):
        return net
    import copy

    return copy.deepcopy(net).cpu().float()


class OnnxGenerator(nn.Module):
    """A generator exported to ONNX, run by onnxruntime on the CPU: ``net(x)`` with `x` float [N,C,H,W] in
    [-1, 1], H and W multiples of ``size_multiple``; returns float32 on `x`'s device.

    `model` is a ``.onnx`` path or its bytes. `threads`: onnxruntime's intra-op threads (default: torch's).
    ``header`` is the ``translate`` JSON header stored at export ({} when the file has none)."""

    def __init__(self, model: str | Path | bytes, threads: int | None = None) -> None:
        super().__init__()
        ort = require_onnx(exporter=False)
        if not isinstance(model, (bytes, bytearray)):
            model = Path(model)
            if not model.is_file():
                raise CheckpointError(f"ONNX model not found: {model}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only
        source = bytes(model) if isinstance(model, (bytes, bytearray)) else str(model)
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (pybind) exception types
            where = "ONNX bytes" if isinstance(model, (bytes, bytearray)) else str(model)
            raise CheckpointError(f"{where}: not a usable ONNX model ({str(exc).strip()[:200]})") from None
        self.threads = options.intra_op_num_threads
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.size_multiple: int = int(meta.get("size_multiple", 1))
            self.header: dict[str, Any] = json.loads(meta["translate"]) if "translate" in meta else {}
        except ValueError as exc:
            raise CheckpointError(f"malformed translate metadata in the ONNX model: {exc}") from None
        self._input = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise TranslateError(f"the generator takes [N,C,H,W] images, got shape {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise TranslateError(f"input height and width must be multiples of {m}, got {h}x{w}")
        batch = x.detach().float().cpu().contiguous().numpy()  # [N,C,H,W] fp32, C order
        (out,) = self.session.run(None, {self._input: batch})
        return torch.from_numpy(out).to(x.device)

    def to(self, *args: Any, **kwargs: Any) -> OnnxGenerator:
        device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
        if device is not None and torch.device(device).type != "cpu":
            raise TranslateError(f"the onnxruntime backend runs on the CPU here, not on {device}; "
                                 "use the PyTorch backend for a GPU")
        if dtype is not None and dtype != torch.float32:
            raise TranslateError(f"the onnxruntime backend computes in float32, not {dtype}")
        return self  # memory_format and non_blocking mean nothing here: inputs are made contiguous

    def cuda(self, device: Any = None) -> OnnxGenerator:
        return self.to("cuda" if device is None else torch.device("cuda", device) if isinstance(device, int)
                       else device)

    def extra_repr(self) -> str:
        return f"size_multiple={self.size_multiple}, threads={self.threads}"


def _probes(net: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(traced, checked): a square batch of 1 to trace, a non-square batch of 2 to check the dynamic sizes."""
    from translate.export import _probe

    return _probe(net, batch=1, extra=0), _probe(net, batch=2, extra=1)


def _export_checked(net: nn.Module, path: Path, opset: int | None, header: dict[str, Any] | None,
                    threads: int | None = None) -> tuple[float, OnnxGenerator]:
    from translate.export import TOLERANCE

    require_onnx()
    model = _cpu_fp32(net)
    was_training = model.training
    model.eval()
    m = int(getattr(model, "size_multiple", 1))
    traced, checked = _probes(model)
    dims = ({0: torch.export.Dim("batch", min=1, max=4096),
             2: m * torch.export.Dim("h", min=2, max=65536 // m),
             3: m * torch.export.Dim("w", min=2, max=65536 // m)},)
    meta = {"size_multiple": str(m)}
    if header is not None:
        meta["translate"] = json.dumps(header)
    result: dict[str, Any] = {}

    def write(tmp: str) -> None:
        try:
            with _quiet(), torch.no_grad():
                program = torch.onnx.export(model, (traced,), dynamo=True, dynamic_shapes=dims, opset_version=opset,
                                            input_names=["x"], output_names=["y"], external_data=False,
                                            verbose=False)
                for key, value in meta.items():
                    program.model.metadata_props[key] = value
                program.save(tmp, external_data=False)
        except TranslateError:
            raise
        except Exception as exc:  # the exporter's own error types vary between releases
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            raise CheckpointError(f"ONNX export failed ({type(exc).__name__}: {first})") from exc
        runtime = OnnxGenerator(tmp, threads=threads)
        with torch.no_grad():
            error = (runtime(checked) - model(checked)).abs().max().item()
        if not error <= TOLERANCE:  # NaN fails too
            raise CheckpointError(f"the ONNX model does not reproduce the generator (max |difference| {error:.2e} "
                                  f"> {TOLERANCE:g} at shape {tuple(checked.shape)}); nothing written")
        result.update(error=error, runtime=runtime)

    try:
        atomic_write(path, write)  # a failed check raises inside: the temporary file goes, `path` is untouched
    finally:
        model.train(was_training)
    return result["error"], result["runtime"]


def export_onnx(net: nn.Module, path: str | Path, opset: int | None = None, *,
                header: dict[str, Any] | None = None) -> float:
    """Write `net` (eval mode, fp32, CPU) to `path` as ONNX with dynamic batch, height and width, atomically,
    after checking it in onnxruntime against `net` on a batch of another shape. Returns max |difference|.

    `opset`: the ai.onnx opset (default: the exporter's recommended one). `header`: the ``translate`` JSON
    header to store (see :func:`translate.export.generator_header`). Raises :class:`CheckpointError` (and
    writes nothing) when the export fails or the check exceeds ``export.TOLERANCE``."""
    error, _ = _export_checked(net, Path(path), opset, header)
    return error


def _weights_key(net: nn.Module, opset: int | None) -> str:
    """A digest of the net's tensors (names, shapes, values) and of the exporter and runtime versions."""
    import onnxruntime

    digest = hashlib.sha256(f"{torch.__version__}|{onnxruntime.__version__}|{opset}|{type(net).__name__}".encode())
    for name, value in net.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:32]


def onnx_generator_for(net: nn.Module, opset: int | None = None, *, header: dict[str, Any] | None = None,
                       threads: int | None = None, cache: str | Path | None = None) -> OnnxGenerator:
    """`net` exported to ONNX, checked as in :func:`export_onnx`, and loaded as an :class:`OnnxGenerator`
    (the session holds the whole model in memory).

    With `cache` (a folder), the export is kept there under a digest of the weights and of the torch and
    onnxruntime versions, so the next run of the same generator skips the export (seconds for a ResNet-9);
    a cached file is checked against `net` again before it is used, and replaced when it does not match."""
    from translate.export import TOLERANCE

    if cache is None:
        with tempfile.TemporaryDirectory(prefix="translate-onnx-") as folder:
            _, runtime = _export_checked(net, Path(folder) / f"generator{SUFFIX}", opset, header, threads=threads)
        return runtime
    require_onnx(exporter=False)
    path = Path(cache) / f"{_weights_key(net, opset)}{SUFFIX}"
    if path.is_file():
        try:
            runtime = OnnxGenerator(path, threads=threads)
            model = _cpu_fp32(net).eval()
            probe = _probes(model)[1]
            with torch.no_grad():
                error = (runtime(probe) - model(probe)).abs().max().item()
            if error <= TOLERANCE:
                return runtime
        except TranslateError:
            pass  # unreadable or wrong: exported again below
    path.parent.mkdir(parents=True, exist_ok=True)
    _, runtime = _export_checked(net, path, opset, header, threads=threads)
    return runtime

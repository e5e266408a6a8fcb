"""Checkpoint reading with safety checks: ``weights_only=True``, model kind, format version and shape.

A checkpoint is Lightning's dict (state_dict, optimizer states, loops) plus our ``translate`` block:
``{"format_version", "model", "config", "nets": {attr: {"kind", "arch", "kwargs"}}, "state"}``. Everything
in it is tensors and primitives, so untrusted files load without unpickling code, and a generator can be
rebuilt from the block alone (no architecture flags repeated at test time).

Loading never runs code and never tells a user to: the file is sniffed first (an image, a text file, a
``torch.export`` program or a ``.safetensors`` export is named as such), a pickle global the safe loader
refuses is reported as refused, and every field the block and the state dict must have is checked before
anything is built from it, so a malformed file is a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import inspect
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.errors import CheckpointError

FORMAT_VERSION = 2  # 2: the config holds only the model's own keys (config.from_saved upgrades 1)

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode: the first byte of a legacy (non-zip) torch.save file
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
_USE_INSTEAD = "give the .ckpt from translate fit or the .safetensors from translate export"
_PRIMITIVES = (bool, int, float, str, type(None))
# Lines of PyTorch's weights_only messages that advise loading with weights_only=False: never shown.
_UNSAFE_ADVICE = ("weights_only", "Weights only", "Re-running", "arbitrary code", "trusted source",
                  "Please file an issue", "Check the documentation", "torch.serialization", "safe_globals")


def _sniff(path: Path) -> str | None:
    """Why `path` is not a checkpoint, judged from its first bytes; None when torch.load should try it."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not head:
        return "an empty file, not a checkpoint"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return "a damaged or incomplete zip archive, not a readable checkpoint (was the copy cut short?)"
        if any(name.rsplit("/", 1)[-1] in ("archive_format", "model.json") for name in names):
            return f"a torch.export program (.pt2) for serving without translate; {_USE_INSTEAD}"
        if any(name.endswith("constants.pkl") or "/code/" in name for name in names):
            return f"a TorchScript program, not a checkpoint; {_USE_INSTEAD}"
        if not any(name.endswith("data.pkl") for name in names):
            return "a zip archive that is not a PyTorch checkpoint (it has no data.pkl)"
        return None
    if head[0] == _PICKLE_MAGIC:
        return None
    for magic, what in _IMAGE_MAGIC.items():
        if head.startswith(magic):
            return f"{what}, not a checkpoint"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image, not a checkpoint"
    if head.startswith(b"BM") and head[6:10] == b"\x00\x00\x00\x00":  # BMP: reserved header bytes are zero
        return "a BMP image, not a checkpoint"
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if head[8:9] == b"{" and 0 < header_len < 100_000_000:
            return ("a .safetensors file: translate convert takes a generator exported by translate export; "
                    "other commands need the .ckpt from translate fit")
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            text = True
        except UnicodeDecodeError as exc:
            text = exc.start >= len(head) - 3  # a multi-byte character cut by the 512-byte read
        if text:
            return "a text file (YAML?), not a checkpoint"
    return "not a readable checkpoint (neither a PyTorch zip archive nor a pickle)"


def _safe_message(exc: BaseException) -> str:
    """A one-line reason for a failed safe load, without PyTorch's advice to load with weights_only=False."""
    text = str(exc)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:
        return (f"not a readable checkpoint: refused because loading it would run code (GLOBAL {refused.group(1)}); "
                "translate never runs code from a file")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not any(marker in line for marker in _UNSAFE_ADVICE)]
    if "Weights only load failed" in text:
        detail = f" ({useful[0][:200]})" if useful else ""
        return (f"not a readable checkpoint: refused because it holds data a safe load does not accept{detail}; "
                "translate never runs code from a file")
    detail = useful[0][:200] if useful else type(exc).__name__
    return f"not a readable checkpoint ({detail})"


def read_torch_file(path: str | Path) -> Any:
    """What a ``torch.save`` file holds, loaded on the CPU with ``weights_only=True`` (never runs code), after
    the file was sniffed; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the .ckpt file (for example {path / 'last.ckpt'})")
    why = _sniff(path)
    if why is not None:
        raise CheckpointError(f"{path}: {why}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the safe loader on a user's file is their file's fault
        raise CheckpointError(f"{path}: {_safe_message(exc)}") from None


def is_translate_checkpoint(loaded: Any) -> bool:
    """Whether a loaded file carries our ``translate`` block (as opposed to, e.g., a bare state dict)."""
    return isinstance(loaded, dict) and "translate" in loaded


def load_checkpoint(path: str | Path, expect_model: str | None = None) -> dict[str, Any]:
    """Load a checkpoint on the CPU without executing code; check it is ours (and of `expect_model`)."""
    checkpoint = read_torch_file(path)
    check_block(checkpoint, expect_model=expect_model, path=path)
    return checkpoint


def _malformed(path: str | Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: malformed translate checkpoint: {what}")


def spec_problem(name: str, spec: Any) -> str | None:
    """What is wrong with a saved net spec ``{"kind", "arch", "kwargs"}`` (None if nothing): a known kind and
    architecture, keyword arguments that its constructor takes and that are plain values."""
    from translate.nets import NETS

    if not isinstance(spec, dict):
        return f"net '{name}' is {type(spec).__name__}, not a mapping"
    missing = [key for key in ("kind", "arch", "kwargs") if key not in spec]
    if missing:
        return f"net '{name}' has no {', '.join(repr(k) for k in missing)}"
    kind, arch, kwargs = spec["kind"], spec["arch"], spec["kwargs"]
    if not isinstance(kind, str) or kind not in NETS:
        return f"net '{name}' has unknown kind {kind!r} (known: {', '.join(NETS)})"
    if not isinstance(arch, str) or arch not in NETS[kind]:
        return f"net '{name}' has unknown {kind} architecture {arch!r} (known: {', '.join(NETS[kind])})"
    if not isinstance(kwargs, dict):
        return f"kwargs of net '{name}' are {type(kwargs).__name__}, not a mapping"
    params = inspect.signature(NETS[kind][arch].__init__).parameters
    unknown = [str(k) for k in kwargs if not isinstance(k, str) or k == "self" or k not in params]
    if unknown:
        return f"net '{name}' ({arch} {kind}) does not take {', '.join(unknown)}"
    odd = [k for k, v in kwargs.items() if not isinstance(v, _PRIMITIVES)]
    if odd:
        return f"kwargs of net '{name}' are not plain values: {', '.join(odd)}"
    return None


def build_from_spec(name: str, spec: dict[str, Any]) -> nn.Module:
    """``NETS[kind][arch](**kwargs)`` for a spec that passed :func:`spec_problem`; a constructor that refuses
    its values (a negative size, a wrong type) gives a ValueError naming the net."""
    from translate.nets import NETS

    try:
        return NETS[spec["kind"]][spec["arch"]](**spec["kwargs"])
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"net '{name}' cannot be built from its kwargs ({first[:200]})") from None


def check_block(checkpoint: Any, expect_model: str | None = None, path: str | Path = "checkpoint") -> dict[str, Any]:
    """The ``translate`` block of a loaded checkpoint, after version, kind and structure checks.

    Checks that the block has a model name, a config and a state mapping, that every net spec names a
    known kind and architecture with keyword arguments its constructor takes, and that ``state_dict`` maps
    names to tensors; anything else is a :class:`CheckpointError` naming what is wrong."""
    block = checkpoint.get("translate") if isinstance(checkpoint, dict) else None
    if not isinstance(block, dict) or "model" not in block:
        from translate.upstream import is_state_dict

        hint = ("; it is a bare state dict (a classic CycleGAN generator file?), which convert, export, evaluate "
                "and fit --init take" if is_state_dict(checkpoint) else "")
        raise CheckpointError(f"{path}: not a translate checkpoint (no 'translate' block){hint}")
    version = block.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        what = "no format_version" if version is None else f"a malformed format_version {version!r}"
        raise CheckpointError(f"{path}: checkpoint with {what} (expected an integer from 1 to {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this translate supports ({FORMAT_VERSION}); "
            "upgrade translate")
    if not isinstance(block["model"], str):
        raise _malformed(path, f"model {block['model']!r} is not a name")
    if expect_model is not None and block["model"] != expect_model:
        raise CheckpointError(f"{path}: checkpoint of a {block['model']} model, expected {expect_model}")
    for key in ("config", "nets", "state"):
        if key not in block:
            raise _malformed(path, f"the translate block has no '{key}'")
        if not isinstance(block[key], dict):
            raise _malformed(path, f"'{key}' is {type(block[key]).__name__}, not a mapping")
    for attr, spec in block["nets"].items():
        if not isinstance(attr, str):
            raise _malformed(path, f"net name {attr!r} is not a string")
        problem = spec_problem(attr, spec)
        if problem:
            raise _malformed(path, problem)
    state = checkpoint.get("state_dict")
    if state is None:
        raise _malformed(path, "no 'state_dict' (the weights)")
    if not isinstance(state, dict):
        raise _malformed(path, f"'state_dict' is {type(state).__name__}, not a mapping")
    for name, value in state.items():
        if not isinstance(name, str):
            raise _malformed(path, f"state_dict key {name!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise _malformed(path, f"state_dict entry '{name}' is {type(value).__name__}, not a tensor")
    return block


def load_net(checkpoint: dict[str, Any], attr: str, path: str | Path = "checkpoint") -> nn.Module:
    """Rebuild one net (e.g. ``"g_ab"``) from a loaded checkpoint and load its weights (eval mode)."""
    block = check_block(checkpoint, path=path)
    spec = block["nets"].get(attr)
    if spec is None:
        raise CheckpointError(f"a {block['model']} checkpoint has no net '{attr}' "
                              f"(it has: {', '.join(block['nets'])})")
    try:
        net = build_from_spec(attr, spec)
    except ValueError as exc:
        raise _malformed(path, str(exc)) from None
    prefix = f"{attr}."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights of '{attr}' do not match its architecture: {str(exc).splitlines()[0]}")
    return net.eval()

"""Checkpoint reading with safety checks: ``weights_only=True``, model kind and format version.

A checkpoint is Lightning's dict (state_dict, optimizer states, loops) plus our ``translate`` block:
``{"format_version", "model", "config", "nets": {attr: {"arch", "kwargs"}}, "state"}``. Everything in it is
tensors and primitives, so untrusted files load without unpickling code, and a generator can be rebuilt
from the block alone (no architecture flags repeated at test time).
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.errors import CheckpointError

FORMAT_VERSION = 1


def load_checkpoint(path: str | Path, expect_model: str | None = None) -> dict[str, Any]:
    """Load a checkpoint on the CPU without executing code; check it is ours (and of `expect_model`)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the .ckpt file (for example {path / 'last.ckpt'})")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({first[:200]})") from None
    check_block(checkpoint, expect_model=expect_model, path=path)
    return checkpoint


def check_block(checkpoint: Any, expect_model: str | None = None, path: str | Path = "checkpoint") -> dict[str, Any]:
    """The ``translate`` block of a loaded checkpoint, after kind and version checks."""
    block = checkpoint.get("translate") if isinstance(checkpoint, dict) else None
    if not isinstance(block, dict) or "model" not in block:
        raise CheckpointError(f"{path}: not a translate checkpoint (no 'translate' block)")
    version = block.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version!r} is newer than this translate supports ({FORMAT_VERSION}); "
            "upgrade translate")
    if expect_model is not None and block["model"] != expect_model:
        raise CheckpointError(f"{path}: checkpoint of a {block['model']} model, expected {expect_model}")
    return block


def load_net(checkpoint: dict[str, Any], attr: str) -> nn.Module:
    """Rebuild one net (e.g. ``"g_ab"``) from a loaded checkpoint and load its weights (eval mode)."""
    from translate.nets import NETS

    block = check_block(checkpoint)
    spec = block["nets"].get(attr)
    if spec is None:
        raise CheckpointError(f"a {block['model']} checkpoint has no net '{attr}' "
                              f"(it has: {', '.join(block['nets'])})")
    net = NETS[spec["kind"]][spec["arch"]](**spec["kwargs"])
    prefix = f"{attr}."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"weights of '{attr}' do not match its architecture: {str(exc).splitlines()[0]}")
    return net.eval()

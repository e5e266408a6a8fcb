"""Generators saved by the classic CycleGAN code: bare state dicts such as ``latest_net_G_A.pth`` or the
official pretrained models (``translate models``).

Reference: junyanz/pytorch-CycleGAN-and-pix2pix, models/networks.py (`ResnetGenerator`, `UnetGenerator`)
and models/base_model.py (`load_networks`, `__patch_instance_norm_state_dict`).

Such a file holds only tensors, no architecture. The architecture is read from the tensors:

- **ResNet** (``model.1.weight`` is the 7x7 stem ``[ngf, in, 7, 7]``): the number of residual blocks is the
  number of distinct ``model.N.conv_block`` indices; the output channels come from the last 7x7 conv; the
  dropout variant has its second block conv at ``conv_block.6`` (``conv_block.5`` without dropout;
  ``conv_block.0``/``.3`` or ``.4`` for zero padding); batch norm shows as 1-D ``weight`` tensors and convs
  without bias.
- **U-Net** (``model.model.0.weight`` is the outermost 4x4 down-conv ``[ngf, in, 4, 4]``): the depth is how
  deeply ``model`` modules nest; our U-Net has the classic's module indices, so the keys are the same. Its
  dropout leaves no trace in the tensors and does nothing at test time, so it is not inferred.

Candidates are then built with our own classes and must match every key and shape, so a wrong guess is
impossible: a file that matches none is a one-line error saying what was found. Before that, the keys are
cleaned as the classic loader does: ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes
are stripped, and the ``running_mean``/``running_var``/``num_batches_tracked`` entries that files saved in
2018 carry for instance-norm layers (which keep no statistics) are dropped. Half-precision weights are
loaded as float32. Files are read with ``weights_only=True`` (see checkpoint.read_torch_file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.checkpoint import is_translate_checkpoint, read_torch_file
from translate.errors import CheckpointError

PREFIXES = ("module.", "_orig_mod.")
_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")
# ResNet block: indices of the two convs in conv_block -> (padding, dropout)
_BLOCK_CONVS = {(1, 5): ("reflect", False), (1, 6): ("reflect", True), (0, 3): ("zero", False),
                (0, 4): ("zero", True)}


@dataclass
class Layout:
    """What a classic generator file holds: our architecture name and constructor arguments."""

    arch: str  # "resnet" | "unet"
    kwargs: dict[str, Any]
    dropped: list[str] = field(default_factory=list)  # keys left out (instance-norm running stats)

    def full_kwargs(self) -> dict[str, Any]:
        """Every constructor argument, defaults included (two layouts are the same net iff these are equal)."""
        from translate.nets import full_kwargs

        return full_kwargs("generator", self.arch, self.kwargs)

    def settings(self) -> str:
        """The --set flags that make a run build this generator."""
        k = self.full_kwargs()
        keys = ["n_blocks", "ngf", "norm", "dropout"] if self.arch == "resnet" else ["num_downs", "ngf", "norm"]
        flags = [f"--set model.generator.{key}={str(k[key]).lower() if isinstance(k[key], bool) else k[key]}"
                 for key in keys]
        return f"--set model.generator.arch={self.arch} " + " ".join(flags)

    def describe(self) -> str:
        k = self.full_kwargs()
        if self.arch == "resnet":
            shape = f"resnet_{k['n_blocks']}blocks"
        else:
            shape = f"unet_{2 ** k['num_downs']}"
        extra = "" if k.get("norm", "instance") == "instance" else f", {k['norm']} norm"
        extra += ", dropout" if k.get("dropout") else ""
        extra += ", antialiased" if k.get("antialias") or k.get("antialias_up") else ""
        return f"{shape}, ngf {k['ngf']}, {k['in_channels']} -> {k['out_channels']} channels{extra}"


def is_state_dict(loaded: Any) -> bool:
    """A mapping of names to tensors (what the classic code saves), as opposed to our checkpoints."""
    return (isinstance(loaded, dict) and bool(loaded) and not is_translate_checkpoint(loaded)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()))


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without DataParallel's ``module.`` and torch.compile's ``_orig_mod.`` prefixes (at any depth)."""
    out = {}
    for key, value in state.items():
        parts = [p for p in key.split(".") if p not in ("module", "_orig_mod")]
        out[".".join(parts)] = value
    return out


def _found(state: dict[str, torch.Tensor], limit: int = 4) -> str:
    shown = ", ".join(f"{k} {list(v.shape)}" for k, v in list(state.items())[:limit])
    more = f", ... ({len(state)} tensors)" if len(state) > limit else ""
    return shown + more


def _norm(state: dict[str, torch.Tensor]) -> str:
    """batch when any 1-D 'weight' (an affine norm) is present, else instance (whose layers hold nothing)."""
    affine = any(k.endswith(".weight") and v.dim() == 1 for k, v in state.items())
    return "batch" if affine else "instance"


def _without_instance_stats(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    dropped = [k for k in state if k.rsplit(".", 1)[-1] in _RUNNING_STATS]
    return {k: v for k, v in state.items() if k not in dropped}, dropped


def _resnet_candidate(state: dict[str, torch.Tensor], norm: str) -> dict[str, Any] | None:
    stem = state.get("model.1.weight")
    if stem is None or stem.dim() != 4 or tuple(stem.shape[2:]) != (7, 7):
        return None
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    convs = tuple(sorted({int(m.group(1)) for k, v in state.items() if v.dim() == 4
                          and (m := re.match(rf"model\.{blocks[0]}\.conv_block\.(\d+)\.weight$", k))})) if blocks else ()
    padding, dropout = _BLOCK_CONVS.get(convs, ("reflect", False))
    heads = [(int(m.group(1)), v) for k, v in state.items()
             if (m := re.match(r"model\.(\d+)\.weight$", k)) and v.dim() == 4 and tuple(v.shape[2:]) == (7, 7)]
    out_conv = max(heads, key=lambda item: item[0])[1]
    return {"in_channels": int(stem.shape[1]), "out_channels": int(out_conv.shape[0]), "ngf": int(stem.shape[0]),
            "n_blocks": len(blocks), "norm": norm, "dropout": dropout, "padding": padding}


def _unet_candidate(state: dict[str, torch.Tensor], norm: str) -> dict[str, Any] | None:
    down = state.get("model.model.0.weight")
    up = state.get("model.model.3.weight")
    if down is None or up is None or down.dim() != 4 or up.dim() != 4:
        return None
    depth = max(k.split(".").count("model") for k in state) - 1
    return {"in_channels": int(down.shape[1]), "out_channels": int(up.shape[1]), "num_downs": depth,
            "ngf": int(down.shape[0]), "norm": norm}


def _matches(net: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """Why `state` does not fit `net` exactly (None when every key and shape matches)."""
    ours = net.state_dict()
    missing = [k for k in ours if k not in state]
    extra = [k for k in state if k not in ours]
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}"] if extra else [])
        return "; ".join(parts)
    wrong = [f"{k} {list(state[k].shape)} (expected {list(v.shape)})" for k, v in ours.items()
             if state[k].shape != v.shape]
    return f"shape of {', '.join(wrong[:2])}" if wrong else None


def _discriminator_hint(state: dict[str, torch.Tensor]) -> str:
    first = state.get("model.0.weight")
    convs = [v for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]
    if first is not None and first.dim() == 4 and tuple(first.shape[2:]) == (4, 4) and convs and convs[-1].shape[0] == 1:
        return " It looks like a PatchGAN discriminator (a net_D file); give the generator (net_G) file."
    return ""


def infer_layout(state: dict[str, torch.Tensor], path: str | Path = "file") -> tuple[Layout, dict[str, torch.Tensor]]:
    """The architecture of a classic generator state dict and the cleaned state to load into it.

    Raises a one-line :class:`CheckpointError` saying what was found when no known layout fits."""
    from translate.nets import GENERATORS

    state = {k: (v.float() if v.is_floating_point() else v) for k, v in strip_prefixes(state).items()}
    norm = _norm(state)
    cleaned, dropped = (state, []) if norm == "batch" else _without_instance_stats(state)
    problems = []
    for arch, guess in (("resnet", _resnet_candidate), ("unet", _unet_candidate)):
        kwargs = guess(cleaned, norm)
        if kwargs is None:
            continue
        try:
            net = GENERATORS[arch](**kwargs)
        except (ValueError, TypeError) as exc:
            problems.append(f"{arch}: {exc}")
            continue
        if norm == "batch":  # batch norm saved before PyTorch 0.4.1 has no counter: it starts at 0
            cleaned = {**{k: v for k, v in net.state_dict().items() if k.endswith(".num_batches_tracked")},
                       **cleaned}
        why = _matches(net, cleaned)
        if why is None:
            return Layout(arch, kwargs, dropped), cleaned
        problems.append(f"{Layout(arch, kwargs).describe()} does not fit ({why})")
    detail = f" ({'; '.join(problems)})" if problems else ""
    raise CheckpointError(
        f"{path}: matches no known generator layout (a classic CycleGAN ResNet or U-Net generator){detail}; "
        f"found {_found(state)}.{_discriminator_hint(state)}")


def load_state(path: str | Path, loaded: Any = None) -> tuple[nn.Module, Layout]:
    """Our generator (eval mode) with the weights of a classic generator file, and its layout."""
    from translate.nets import GENERATORS

    loaded = read_torch_file(path) if loaded is None else loaded
    if not is_state_dict(loaded):
        what = "an empty mapping" if isinstance(loaded, dict) and not loaded else (
            "a mapping with entries that are not tensors" if isinstance(loaded, dict) else type(loaded).__name__)
        raise CheckpointError(f"{path}: not a generator's state dict ({what}); give a translate checkpoint, "
                              "a .safetensors export, or a classic CycleGAN net_G .pth file")
    layout, state = infer_layout(loaded, path)
    net = GENERATORS[layout.arch](**layout.kwargs)
    net.load_state_dict(state, strict=True)
    return net.eval(), layout


def to_upstream(net: nn.Module) -> dict[str, torch.Tensor]:
    """`net`'s state dict as the classic code saves it (our keys are the classic keys): for tests and tools."""
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}

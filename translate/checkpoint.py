"""The checkpoint format, and its one reader: this module owns both.

A checkpoint is Lightning's dict (state_dict, optimizer states, loops) plus our ``translate`` block:
``{"format_version", "model", "config", "nets": {attr: {"kind", "arch", "kwargs"}}, "state"}``, built by
:func:`write_block` (called by the models' ``on_save_checkpoint``) and checked by :func:`check_block` (the
models' ``on_load_checkpoint``, and every command that reads one). Everything in it is tensors and
primitives, so untrusted files load without unpickling code, and a net can be rebuilt from the block alone
(no architecture flags repeated at test time). :data:`DIRECTIONS` maps a direction to the net translating
that way (``g_ab``, ``g_ba``; GeneGAN's :data:`SWAP_NET` ``g`` has none).

:func:`load_generator` is the one way in for every command that needs a generator (convert, export,
evaluate, swap, the demo, fit --init): a pretrained model name, a ``.safetensors`` export (format: export.py), a
translate checkpoint or a classic CycleGAN state dict (layout: upstream.py).

Loading never runs code and never tells a user to: the file is sniffed first (sniff.py: an image, a text
file, a ``torch.export`` program or a ``.safetensors`` export is named as such), a pickle global the safe loader
refuses is reported as refused, and every field the block and the state dict must have is checked before
anything is built from it, so a malformed file is a one-line :class:`CheckpointError`.

A run with ``train.ema`` also saves each generator's moving average, ``ema.<net>.module.*`` beside the raw
``<net>.*`` in the same state dict (format 2 still: older files simply have none). Every reader takes the
average when there is one, or the raw weights when asked (``weights="raw"``, the commands' ``--weights``).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from translate.config import from_saved
from translate.errors import CheckpointError
from translate.sniff import safe_message, sniff

FORMAT_VERSION = 2  # 2: the config holds only the model's own keys (config.from_saved upgrades 1)
DIRECTIONS = {"AtoB": "g_ab", "BtoA": "g_ba"}  # direction -> the net that translates that way
SWAP_NET = "g"  # GeneGAN's encoder-decoder: it has no direction; swap and interpolate load it
EMA_PREFIX = "ema"  # state_dict "ema.<net>.module.*": the net's moving average (train.ema, models/ema.py)
WEIGHTS = ("ema", "raw")  # which weights of a checkpoint a command uses (--weights; default: ema when there)

_PRIMITIVES = (bool, int, float, str, type(None))


def read_torch_file(path: str | Path) -> Any:
    """What a ``torch.save`` file holds, loaded on the CPU with ``weights_only=True`` (never runs code), after
    the file was sniffed; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the .ckpt file (for example {path / 'last.ckpt'})")
    why = sniff(path)
    if why is not None:
        raise CheckpointError(f"{path}: {why}")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure of the safe loader on a user's file is their file's fault
        raise CheckpointError(f"{path}: {safe_message(exc)}") from None


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


def write_block(model: str, config: dict[str, Any], net_specs: dict[str, dict[str, Any]],
                state: dict[str, Any]) -> dict[str, Any]:
    """The ``translate`` block of a checkpoint: the format version, the model's name, its config (plain
    values), each net's ``{"kind", "arch", "kwargs"}`` and the recipe's extra state (tensors and primitives)."""
    return {"format_version": FORMAT_VERSION, "model": model, "config": config, "nets": dict(net_specs),
            "state": state}


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


def has_ema(checkpoint: dict[str, Any], attr: str) -> bool:
    """Whether a loaded checkpoint holds a moving average of net `attr` (train.ema)."""
    return f"{EMA_PREFIX}.{attr}.n_averaged" in checkpoint.get("state_dict", {})


def check_weights(weights: str) -> str:
    if weights not in ("auto", *WEIGHTS):
        raise CheckpointError(f"--weights must be one of {', '.join(WEIGHTS)}, got '{weights}'")
    return weights


def chosen_weights(checkpoint: dict[str, Any], attr: str, weights: str = "auto",
                   path: str | Path = "checkpoint") -> str:
    """"ema" or "raw": `weights` for net `attr` of a loaded checkpoint ("auto": the average when saved)."""
    check_weights(weights)
    if weights == "ema" and not has_ema(checkpoint, attr):
        raise CheckpointError(f"{path} has no EMA weights of '{attr}' (trained without train.ema); "
                              "leave out --weights or give --weights raw")
    return "ema" if weights == "ema" or (weights == "auto" and has_ema(checkpoint, attr)) else "raw"


def load_net(checkpoint: dict[str, Any], attr: str, path: str | Path = "checkpoint",
             weights: str = "auto") -> nn.Module:
    """Rebuild one net (e.g. ``"g_ab"``) from a loaded checkpoint and load its weights (eval mode): its
    moving average when the checkpoint has one and `weights` is "auto" or "ema", else the raw weights."""
    block = check_block(checkpoint, path=path)
    spec = block["nets"].get(attr)
    if spec is None:
        raise CheckpointError(f"a {block['model']} checkpoint has no net '{attr}' "
                              f"(it has: {', '.join(block['nets'])})")
    try:
        net = build_from_spec(attr, spec)
    except ValueError as exc:
        raise _malformed(path, str(exc)) from None
    ema = chosen_weights(checkpoint, attr, weights, path) == "ema"
    prefix = f"{EMA_PREFIX}.{attr}.module." if ema else f"{attr}."
    state = {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{'EMA ' if ema else ''}weights of '{attr}' do not match its architecture: "
                              f"{str(exc).splitlines()[0]}")
    return net.eval()


def check_direction(direction: str) -> str:
    """The net attribute for `direction` ("AtoB" -> "g_ab"); a one-line error for anything else."""
    if direction not in DIRECTIONS:
        raise CheckpointError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
    return DIRECTIONS[direction]


def net_attr(block: dict[str, Any], direction: str) -> str:
    """The net of a checked block that translates `direction`; a one-line error when the model has none."""
    attr = check_direction(direction)
    if attr not in block["nets"]:
        hint = "; GeneGAN swaps objects: use translate swap / interpolate" if block["model"] == "genegan" else ""
        others = [d for d, net in DIRECTIONS.items() if net in block["nets"]]
        if others:  # CUT and FastCUT: one generator
            hint = f"; {block['model']} is one-directional: it translates {' and '.join(others)} only"
        raise CheckpointError(f"a {block['model']} checkpoint has no {direction} generator "
                              f"(it has: {', '.join(block['nets'])}){hint}")
    return attr


# ----------------------------------------------------------------- one generator from whatever a user has

Log = Callable[[str], None]


@dataclass
class Generator:
    """What :func:`load_generator` returns: the net and where it came from (``describe()`` says it in words)."""

    net: nn.Module  # eval mode, CPU
    arch: str
    kwargs: dict[str, Any]
    model: str  # "cyclegan", ... (classic files and the zoo: "cyclegan")
    path: Path  # the file the weights came from
    origin: str  # "checkpoint" | "export" | "classic" | "pretrained"
    name: str | None = None  # the pretrained model's name
    direction: str | None = "AtoB"  # the way it translates (an export says; else the one asked for; None: SWAP_NET)
    notes: list[str] = field(default_factory=list)
    config: dict[str, Any] | None = None  # a translate checkpoint's saved config (plain values)
    weights: str | None = None  # a translate checkpoint's: "ema" (the moving average) or "raw"

    def describe(self) -> str:
        from translate.upstream import Layout

        shape = Layout(self.arch, self.kwargs).describe() if self.arch in ("resnet", "unet") else self.arch
        if self.origin == "pretrained":
            return f"pretrained {self.name} ({shape})"
        what = {"checkpoint": "translate checkpoint", "export": "exported generator",
                "classic": "classic CycleGAN generator"}[self.origin]
        ema = ", EMA weights" if self.weights == "ema" else ""
        return f"{what} {self.path} ({shape}{ema})"


def zoo_name(source: str | Path) -> str | None:
    """`source` as a pretrained model name, or None when it is (or names) a file."""
    from translate import zoo

    text = str(source)
    if Path(text).is_file() or "/" in text or "\\" in text:
        return None
    return text if zoo.is_model_name(text) else None


def not_found(source: str | Path, what: str = "checkpoint") -> CheckpointError:
    """A missing file that may be a misspelt model name: the error says which names are close."""
    import difflib

    from translate import zoo

    close = difflib.get_close_matches(Path(source).name, list(zoo.ZOO), n=3, cutoff=0.6)
    hint = (f"; did you mean the pretrained {' or '.join(close)}?" if close
            else " (nor a pretrained model name: translate models list)")
    return CheckpointError(f"{what} not found: {source}{hint}")


def load_generator(source: str | Path, direction: str | None = "AtoB", *, net: str | None = None,
                   log: Log | None = None, mirror: str | None = None, weights: str = "auto") -> Generator:
    """The generator `source` names, in eval mode on the CPU; every file is read with ``weights_only=True``.

    `source` is, in this order: a **pretrained model name** (``horse2zebra``; ``translate models list``) when
    no file of that name exists, fetched into the model cache on first use (``direction="BtoA"`` gives the
    model that translates back, ``zebra2horse``, where the zoo has one); a ``.safetensors`` generator from
    ``translate export``; a **translate checkpoint** (its generator for `direction`, see :data:`DIRECTIONS`);
    a **classic CycleGAN generator file**, a bare state dict such as ``latest_net_G_A.pth`` (architecture read
    from its tensors, see upstream.py), which translates one way only, so `direction` must be AtoB.

    `direction` None takes the one generator of a file that holds one (an export: its saved direction; a
    classic file: AtoB); a translate checkpoint needs a direction. `net` asks for a net of a translate
    checkpoint by name instead (swap and interpolate: :data:`SWAP_NET`); then nothing else is accepted.

    `weights` chooses a translate checkpoint's weights: "auto" its moving average when it has one (train.ema)
    or else the raw weights, "ema" or "raw"; files that hold one set of weights take only "auto"."""
    check_weights(weights)
    if net is not None:
        return checkpoint_generator(load_checkpoint(source), None, net=net, path=Path(source), weights=weights)
    if direction is not None:
        check_direction(direction)
    name = zoo_name(source)
    if name is None:
        return _from_file(Path(source), direction, weights=weights)
    one_set(source, weights)
    from translate import zoo

    chosen = name if direction in (None, "AtoB") else zoo.ZOO[name].partner
    if chosen is None:
        raise CheckpointError(f"the pretrained {name} translates one way only ({zoo.ZOO[name].direction}); "
                              "there is no BtoA model for it")
    found = _from_file(zoo.fetch(chosen, mirror=mirror, log=log), "AtoB", what="pretrained model file")
    found.origin, found.name = "pretrained", chosen
    return found


def one_set(source: str | Path, weights: str) -> None:
    """Refuse `weights` "ema"/"raw" for a source that holds one set of weights (not a translate checkpoint)."""
    if weights != "auto":
        raise CheckpointError(f"--weights {weights}: {source} holds one set of weights (only translate "
                              "checkpoints hold raw and EMA weights); leave out --weights")


def _from_file(path: Path, direction: str | None, what: str = "checkpoint", weights: str = "auto") -> Generator:
    """An export, a translate checkpoint or a classic state dict (see :func:`load_generator`)."""
    from translate.export import SUFFIX, read_exported
    from translate.upstream import is_state_dict, load_state

    if not path.exists():
        raise not_found(path, what)
    if path.suffix == SUFFIX:
        one_set(path, weights)
        gen, info = read_exported(path, direction)
        return Generator(gen, info["arch"], info["kwargs"], info.get("model", "cyclegan"), path, "export",
                         direction=info.get("direction") or direction or "AtoB")
    loaded = read_torch_file(path)
    if is_translate_checkpoint(loaded):
        if direction is None:
            raise CheckpointError(f"{path} is a translate checkpoint: give a direction ({', '.join(DIRECTIONS)})")
        return checkpoint_generator(loaded, direction, path=path, weights=weights)
    one_set(path, weights)
    if is_state_dict(loaded):
        if direction not in (None, "AtoB"):
            raise CheckpointError(f"{path} is a classic CycleGAN generator file, which translates one way only: "
                                  "leave out --direction (for the other way give its net_G_B file)")
        gen, layout = load_state(path, loaded)
        notes = [f"left out {len(layout.dropped)} instance-norm running-statistics entries (as the classic "
                 "loader does)"] if layout.dropped else []
        return Generator(gen, layout.arch, layout.kwargs, "cyclegan", path, "classic", notes=notes)
    raise CheckpointError(f"{path}: neither a translate checkpoint nor a generator's state dict")


def checkpoint_generator(loaded: dict[str, Any], direction: str | None = "AtoB", *, net: str | None = None,
                         path: str | Path = "checkpoint", weights: str = "auto") -> Generator:
    """What :func:`load_generator` gives for a translate checkpoint, from one already read (evaluate reads
    it once for both directions): the generator for `direction`, or the net called `net`."""
    block = check_block(loaded, path=path)
    if net is None:
        attr = net_attr(block, direction)
    elif net in block["nets"]:
        attr = net
    elif net == SWAP_NET:
        raise CheckpointError(f"{path}: a {block['model']} checkpoint; swap and interpolate need a genegan "
                              "checkpoint (for other models use translate convert)")
    else:
        raise CheckpointError(f"{path}: a {block['model']} checkpoint has no net '{net}' "
                              f"(it has: {', '.join(block['nets'])})")
    spec = block["nets"][attr]
    chosen = chosen_weights(loaded, attr, weights, path)
    return Generator(load_net(loaded, attr, path=path, weights=chosen), spec["arch"], spec["kwargs"],
                     block["model"], Path(path), "checkpoint", direction=direction,
                     config=from_saved(block["config"], block["format_version"]), weights=chosen)

"""One generator from whatever a user has: a name or a file, for convert, export and evaluate.

Accepted, in this order:

- a **pretrained model name** (``horse2zebra``; ``translate models list``) when no file of that name exists:
  fetched into the model cache on first use. ``direction="BtoA"`` gives the model that translates back
  (``zebra2horse``), where the zoo has one;
- a ``.safetensors`` generator from ``translate export``;
- a **translate checkpoint** from ``translate fit`` (its generator for `direction`);
- a **classic CycleGAN generator file**, a bare state dict such as ``latest_net_G_A.pth`` (architecture read
  from its tensors, see upstream.py). It translates one way only, so `direction` must be AtoB.

Every file is read with ``weights_only=True``; nothing in it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from translate.errors import CheckpointError

Log = Callable[[str], None]


@dataclass
class Generator:
    net: nn.Module  # eval mode, CPU
    arch: str
    kwargs: dict[str, Any]
    model: str  # "cyclegan", ... (classic files and the zoo: "cyclegan")
    path: Path  # the file the weights came from
    origin: str  # "checkpoint" | "export" | "classic" | "pretrained"
    name: str | None = None  # the pretrained model's name
    direction: str = "AtoB"  # the way it translates (an export says; otherwise the one asked for)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        from translate.upstream import Layout

        shape = Layout(self.arch, self.kwargs).describe() if self.arch in ("resnet", "unet") else self.arch
        if self.origin == "pretrained":
            return f"pretrained {self.name} ({shape})"
        what = {"checkpoint": "translate checkpoint", "export": "exported generator",
                "classic": "classic CycleGAN generator"}[self.origin]
        return f"{what} {self.path} ({shape})"


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


def pretrained_for(name: str, direction: str) -> str:
    """The zoo model for `direction` of `name`: itself for AtoB, its partner for BtoA."""
    from translate import zoo

    if direction == "AtoB":
        return name
    partner = zoo.ZOO[name].partner
    if partner is None:
        raise CheckpointError(f"the pretrained {name} translates one way only ({zoo.ZOO[name].direction}); "
                              "there is no BtoA model for it")
    return partner


def from_file(path: str | Path, direction: str = "AtoB", what: str = "checkpoint") -> Generator:
    """A generator from a file: an export, a translate checkpoint or a classic state dict."""
    from translate.checkpoint import check_block, is_translate_checkpoint, load_net, read_torch_file
    from translate.export import SUFFIX, check_direction, net_attr
    from translate.upstream import is_state_dict, load_state

    check_direction(direction)
    path = Path(path)
    if not path.exists():
        raise not_found(path, what)
    if path.suffix == SUFFIX:
        return from_export(path, direction)
    loaded = read_torch_file(path)
    if is_translate_checkpoint(loaded):
        block = check_block(loaded, path=path)
        attr = net_attr(block, direction)
        spec = block["nets"][attr]
        return Generator(load_net(loaded, attr, path=path), spec["arch"], spec["kwargs"], block["model"], path,
                         "checkpoint", direction=direction)
    if is_state_dict(loaded):
        if direction != "AtoB":
            raise CheckpointError(f"{path} is a classic CycleGAN generator file, which translates one way only: "
                                  "leave out --direction (for the other way give its net_G_B file)")
        net, layout = load_state(path, loaded)
        notes = [f"left out {len(layout.dropped)} instance-norm running-statistics entries (as the classic "
                 "loader does)"] if layout.dropped else []
        return Generator(net, layout.arch, layout.kwargs, "cyclegan", path, "classic", notes=notes)
    raise CheckpointError(f"{path}: neither a translate checkpoint nor a generator's state dict")


def from_export(path: str | Path, direction: str | None = None) -> Generator:
    """The generator of a ``.safetensors`` export; `direction` None takes whichever it holds."""
    from translate.export import read_exported

    net, info = read_exported(path, direction)
    return Generator(net, info["arch"], info["kwargs"], info.get("model", "cyclegan"), Path(path), "export",
                     direction=info.get("direction") or direction or "AtoB")


def open_generator(source: str | Path, direction: str = "AtoB", log: Log | None = None,
                   mirror: str | None = None) -> Generator:
    """The generator `source` names (see the module docstring); downloads a pretrained model on first use."""
    from translate import zoo
    from translate.export import check_direction

    check_direction(direction)
    name = zoo_name(source)
    if name is None:
        return from_file(source, direction)
    chosen = pretrained_for(name, direction)
    path = zoo.fetch(chosen, mirror=mirror, log=log)
    found = from_file(path, "AtoB", what="pretrained model file")
    found.origin, found.name = "pretrained", chosen
    return found

"""Strict dict -> frozen dataclass building, shared by the run-level config (config.py) and the models'
settings (recipes/): unknown keys are errors with close-match suggestions, values are type-checked, and a
section type may build itself (``from_config``, used by net settings whose fields depend on ``arch``).
Torch-free, like everything a config is validated with."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Iterable
from typing import Any, Union

import yaml

from translate.errors import ConfigError


def check_value(value: Any, hint: Any, key: str) -> Any:
    """`value` as the type `hint` names (int, float, str, bool, unions, None); ConfigError naming `key`."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return check_value(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {hint}, got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: expected null, got {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                number = math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 5e-5 (no dot) as a string; users mean a number
            try:
                number = float(value)
            except ValueError:
                pass
        if number is not None:
            if not math.isfinite(number):  # .nan, .inf, 1e999: every later comparison would be meaningless
                raise ConfigError(f"{key}: expected a finite number, got {value!r}")
            return number
    elif hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r}")


def suggest(name: str, options: Iterable[str]) -> str:
    options = list(options)
    close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return f"{hint} (valid: {', '.join(options)})"


def choice(key: str, value: str, valid: Iterable[str]) -> None:
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"{key}: unknown value '{value}'{suggest(value, valid)}")


def positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key} must be positive, got {value}")


def non_negative(key: str, value: float) -> None:
    if value < 0:
        raise ConfigError(f"{key} must be >= 0, got {value}")


def build(cls: type, data: Any, prefix: str, default: Any = None) -> Any:
    """`cls(**data)` after checking every key and value; missing keys keep `default`'s values (or the class
    defaults). A field whose type has a ``from_config(data, prefix, default)`` classmethod builds itself."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    base = default if default is not None else cls()
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{path}'{suggest(str(key), names)}")
        hint = hints[key]
        if hasattr(hint, "from_config"):
            kwargs[key] = hint.from_config(value, f"{path}.", getattr(base, key))
        elif dataclasses.is_dataclass(hint):
            kwargs[key] = build(hint, value, f"{path}.", getattr(base, key))
        else:
            kwargs[key] = check_value(value, hint, path)
    return dataclasses.replace(base, **kwargs)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins. Neither input is modified."""
    out = dict(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}``; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (for example losses.lambda_cycle=5), got '{item}'")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out

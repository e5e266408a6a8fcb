"""Errors a user can cause. The CLI turns each into a one-line message and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path


class TranslateError(Exception):
    """Base class: a mistake in the user's input, not a bug. `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(TranslateError):
    """An unknown key, a wrong type or an inconsistent combination of settings."""

    exit_code = 2


class DataError(TranslateError):
    """A file or folder that cannot be used as image data; names the path and why."""

    def __init__(self, path: str | Path, why: str) -> None:
        self.path = Path(path)
        self.why = why
        super().__init__(f"{self.path}: {why}")


class CheckpointError(TranslateError):
    """A checkpoint that is missing, corrupt, of another model or of an unknown format version."""


class NonFiniteLoss(TranslateError):
    """A loss became NaN or infinite; training stopped before a checkpoint could store the broken weights."""

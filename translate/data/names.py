"""What a dataset name means, decided here only: ``translate fit TARGET`` (train.py), the data module, and
``evaluate`` all ask :func:`dataset_kind` or :func:`resolve_dataset`.

A name is, in this order: a built-in dataset (generated on first use, data/builtin.py), a folder (as given,
or under ``data.root``), or a catalog name (``horse2zebra``, ``celeba-ATTRIBUTE``: downloaded and unpacked
on first use, data/catalog.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from translate.errors import DataError

log = logging.getLogger(__name__)


def dataset_kind(name: str, root: str | Path | None = None) -> str | None:
    """``"builtin"``, ``"folder"`` (as given, or under `root`) or ``"catalog"`` for a name a run can train on;
    None when it is none of them."""
    from translate.data.builtin import is_builtin

    if is_builtin(name):
        return "builtin"
    path = Path(name).expanduser()
    if path.is_dir() or (root is not None and not path.is_absolute() and (Path(root) / name).is_dir()):
        return "folder"
    return "catalog" if is_catalog(name) else None


def is_dataset_name(name: str) -> bool:
    """True for a name the tool knows (built-in or catalog), as opposed to a folder path."""
    from translate.data.builtin import is_builtin

    return is_builtin(name) or is_catalog(name)


def resolve_dataset(dataset: str, root: str | Path) -> Path:
    """The folder with trainA/ and trainB/ that `dataset` names: a built-in one generated on first use, a
    folder, a dataset under `root`, or a catalog one downloaded and unpacked on first use."""
    from translate.data.builtin import BUILTIN_DATASETS, ensure_builtin
    from translate.data.catalog import prepare

    kind = dataset_kind(dataset, root)
    if kind == "builtin":
        return ensure_builtin(dataset, root)
    path = Path(dataset).expanduser()
    if not path.exists() and not path.is_absolute() and (Path(root) / dataset).exists():
        path = Path(root) / dataset
    if is_catalog(dataset) and not (path / "trainA").is_dir():  # not yet downloaded (or half unpacked)
        return prepare(dataset, root, log=log.info)
    if not path.exists():
        raise DataError(path, f"dataset not found: give a built-in name ({', '.join(BUILTIN_DATASETS)}), a "
                              f"catalog name (translate datasets list) or a folder with trainA/ and trainB/")
    if not path.is_dir():
        raise DataError(path, "is not a folder")
    missing = [d for d in ("trainA", "trainB") if not (path / d).is_dir()]
    if missing:
        raise DataError(path, f"missing {' and '.join(missing)}/ (expected trainA/ trainB/ [testA/ testB/])")
    return path


def is_catalog(name: str) -> bool:
    """A catalog name: downloaded and unpacked on first use (data/catalog.py)."""
    from translate.data.catalog import CATALOG, CELEBA_PREFIX

    return name in CATALOG or name.startswith(CELEBA_PREFIX)

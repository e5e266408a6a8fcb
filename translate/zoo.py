"""The pretrained model zoo of the classic CycleGAN: what `translate models list` shows and `download` fetches.

The classic repository (junyanz/pytorch-CycleGAN-and-pix2pix) publishes 18 CycleGAN generators as bare
PyTorch state_dicts of its ``ResnetGenerator`` (resnet_9blocks, ngf 64, instance norm, no dropout, 3 -> 3
channels, about 45 MB each) at ``http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth``.
Each file is one direction; `Model.partner` names the model translating the other way, and `Model.dataset`
with `Model.dataset_direction` the catalog dataset (``translate datasets list``) it translates and which way,
where that is certain.

Mirror: ``TRANSLATE_MODELS_URL`` (or ``--url``, the `mirror` argument) replaces the server part; the file name
``NAME.pth`` is appended, as ``TRANSLATE_DATASETS_URL`` does for datasets.

Cache: ``$TRANSLATE_MODELS_DIR`` if set, else ``$XDG_CACHE_HOME/translate/models``, else
``~/.cache/translate/models`` (or ``--cache DIR``). A model lives at ``CACHE/NAME.pth``; a download in progress
at ``CACHE/.incoming/NAME.pth.part`` (resumed by the next attempt) and is moved into place only once checked.

Integrity: the server publishes no checksums, so the sha256 of the first copy is recorded in
``CACHE/NAME.pth.sha256`` (hex and a newline) and every later use compares against it (45 MB hash in well
under a second):

- a cached file that no longer matches its record changed on disk: it is refused;
  ``translate models download NAME --force`` fetches a fresh copy (still compared against the record);
- a download that differs from the record means the file on the server changed since the first download: it
  is refused and moved aside to ``CACHE/NAME.pth.changed``, the cached copy (if any) is left as it was;
  ``translate models forget NAME`` removes the record when the change is expected;
- a download that does not start like a torch file (zip or pickle), such as an HTML error page, or a torch zip
  cut short, is refused and deleted;
- a file placed by hand at ``CACHE/NAME.pth`` (offline machines) is accepted and its sha256 recorded on first
  use.
"""

from __future__ import annotations

import difflib
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from translate.data.download import (DiskSpaceError, DownloadError, NetworkError, Progress, archive_problem,
                                     download, file_sha256)
from translate.errors import TranslateError

MIRROR_ENV = "TRANSLATE_MODELS_URL"
CACHE_ENV = "TRANSLATE_MODELS_DIR"
SERVER = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"
ARCH = "resnet_9blocks, ngf 64"
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")  # torch.save: a zip archive (torch >= 1.6) or a bare pickle (older)

_logger = logging.getLogger(__name__)


class UnknownModelError(TranslateError):
    """A model name that is not in the zoo; the message lists close matches."""

    exit_code = 2


class ModelChangedError(DownloadError):
    """A model file whose sha256 differs from the one recorded at its first download."""


@dataclass(frozen=True)
class Model:
    name: str
    direction: str  # human text: "horses -> zebras"
    arch: str = ARCH
    partner: str | None = None  # the model translating the other way
    dataset: str | None = None  # the catalog dataset it translates, where certain
    dataset_direction: str | None = None  # "AtoB" or "BtoA" on that dataset

    @property
    def file(self) -> str:
        return f"{self.name}.pth"

    def url(self, mirror: str | None = None) -> str:
        base = mirror or os.environ.get(MIRROR_ENV) or SERVER
        return f"{base.rstrip('/')}/{self.file}"


def _m(name: str, direction: str, partner: str | None = None, dataset: str | None = None,
       dataset_direction: str | None = None) -> Model:
    return Model(name, direction, ARCH, partner, dataset, dataset_direction)


ZOO: dict[str, Model] = {m.name: m for m in [
    _m("apple2orange", "apples -> oranges", "orange2apple", "apple2orange", "AtoB"),
    _m("orange2apple", "oranges -> apples", "apple2orange", "apple2orange", "BtoA"),
    _m("summer2winter_yosemite", "Yosemite in summer -> in winter", "winter2summer_yosemite",
       "summer2winter_yosemite", "AtoB"),
    _m("winter2summer_yosemite", "Yosemite in winter -> in summer", "summer2winter_yosemite",
       "summer2winter_yosemite", "BtoA"),
    _m("horse2zebra", "horses -> zebras", "zebra2horse", "horse2zebra", "AtoB"),
    _m("zebra2horse", "zebras -> horses", "horse2zebra", "horse2zebra", "BtoA"),
    _m("monet2photo", "Monet paintings -> photos", "style_monet", "monet2photo", "AtoB"),
    _m("style_monet", "photos -> Monet paintings", "monet2photo", "monet2photo", "BtoA"),
    _m("style_cezanne", "photos -> Cezanne paintings", None, "cezanne2photo", "BtoA"),
    _m("style_ukiyoe", "photos -> Ukiyo-e prints", None, "ukiyoe2photo", "BtoA"),
    _m("style_vangogh", "photos -> Van Gogh paintings", None, "vangogh2photo", "BtoA"),
    _m("sat2map", "satellite photos -> maps", "map2sat", "maps", "AtoB"),
    _m("map2sat", "maps -> satellite photos", "sat2map", "maps", "BtoA"),
    _m("cityscapes_photo2label", "street photos -> semantic labels", "cityscapes_label2photo", "cityscapes", "AtoB"),
    _m("cityscapes_label2photo", "semantic labels -> street photos", "cityscapes_photo2label", "cityscapes", "BtoA"),
    # the domain order of the facades zip is not certain: no dataset direction is claimed
    _m("facades_photo2label", "facade photos -> labels", "facades_label2photo"),
    _m("facades_label2photo", "facade labels -> photos", "facades_photo2label"),
    _m("iphone2dslr_flower", "iPhone flower photos -> DSLR (shallow depth of field)", None, "iphone2dslr_flower",
       "AtoB"),
]}


def is_model_name(name: str) -> bool:
    return name in ZOO


def get_model(name: str) -> Model:
    """The zoo entry `name`; `UnknownModelError` naming close matches otherwise."""
    model = ZOO.get(name)
    if model is not None:
        return model
    close = difflib.get_close_matches(name, list(ZOO), n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else "see translate models list"
    raise UnknownModelError(f"unknown pretrained model '{name}'; {hint}")


def cache_dir() -> Path:
    """$TRANSLATE_MODELS_DIR, else $XDG_CACHE_HOME/translate/models, else ~/.cache/translate/models."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: a relative value is invalid and ignored
        return Path(xdg) / "translate" / "models"
    return Path.home() / ".cache" / "translate" / "models"


def model_path(name: str, cache: str | Path | None = None) -> Path:
    """Where model `name` is (or would be) cached."""
    return (Path(cache) if cache is not None else cache_dir()) / get_model(name).file


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def cached(name: str, cache: str | Path | None = None) -> bool:
    """Whether a file is cached for `name` (not checked against its record: `fetch` does that)."""
    return model_path(name, cache).is_file()


def forget(name: str, cache: str | Path | None = None) -> bool:
    """Remove the recorded sha256 of `name`; the next download or use records a new one. False if none was kept."""
    record = _record_path(model_path(name, cache))
    try:
        record.unlink()
    except FileNotFoundError:
        return False
    return True


def _read_record(record: Path, name: str) -> str | None:
    try:
        text = record.read_text(encoding="ascii").strip().lower()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DownloadError(f"cannot read {record} ({exc}); remove it with: translate models forget {name}") from None
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise DownloadError(f"{record} does not hold a sha256; remove it with: translate models forget {name}")
    return text


def _write_record(record: Path, digest: str) -> None:
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(tmp, record)  # never a half-written record


def _not_weights(path: Path) -> str | None:
    """Why `path` is not a torch.save file (an HTML page, a cut zip), or None when it looks like one."""
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head.startswith(TORCH_MAGIC):
        if head.lstrip().startswith(b"<"):
            return "an HTML page, not PyTorch weights"
        return f"not PyTorch weights (it starts with {head[:16]!r})" if head else "an empty file"
    if head.startswith(b"PK"):  # zip: the central directory sits at the very end, so a cut file is seen
        why = archive_problem(path)
        if why:
            return f"an incomplete PyTorch file ({why})"
    return None


def fetch(name: str, mirror: str | None = None, cache: str | Path | None = None, progress: Progress | None = None,
          log: Callable[[str], None] | None = None, *, force: bool = False, retries: int = 4, backoff: float = 1.0,
          timeout: float = 30.0) -> Path:
    """The checked local copy of model `name`, downloading it (resumably) on first use.

    `force` downloads again even if a copy is cached; it replaces the copy only once the download passed the
    same checks (its sha256 against the record). `retries`, `backoff` and `timeout` go to the download."""
    log = log or _logger.info
    model = get_model(name)
    path = model_path(name, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One fetch of a model at a time (DDP ranks re-run the same command): the others wait, then find it cached.
    with (path.parent / f".{model.file}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _fetch_locked(model, path, mirror, progress, log, force, retries, backoff, timeout)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _fetch_locked(model: Model, path: Path, mirror: str | None, progress: Progress | None,
                  log: Callable[[str], None], force: bool, retries: int, backoff: float, timeout: float) -> Path:
    name = model.name
    record = _record_path(path)
    recorded = _read_record(record, name)
    if path.is_file() and not force:
        digest = file_sha256(path)
        if recorded is None:
            why = _not_weights(path)
            if why:
                raise DownloadError(f"{path} is {why}; replace it, or download it: translate models download "
                                    f"{name} --force")
            _write_record(record, digest)
            log(f"{path}: no sha256 recorded yet (placed by hand?): accepted, recorded {digest} in {record}")
            return path
        if digest != recorded:
            raise ModelChangedError(f"{path} changed on disk since it was downloaded (sha256 {digest}, recorded "
                                    f"{recorded}); get a fresh copy with: translate models download {name} --force "
                                    f"(or, if you replaced it on purpose: translate models forget {name})")
        return path
    url = model.url(mirror)
    staged = path.parent / ".incoming" / model.file  # its .part beside it; renamed to `path` once checked
    if force:
        staged.unlink(missing_ok=True)  # a complete but unchecked leftover: downloading again was asked for
    log(f"downloading {name} from {url}")
    try:
        download(url, staged, progress=progress, retries=retries, backoff=backoff, timeout=timeout)
    except NetworkError as exc:
        raise NetworkError(f"{exc}. Offline or server down? Download {url} by hand and put it at {path}, or use "
                           f"a mirror: {MIRROR_ENV}=https://mirror/path (or translate models download {name} "
                           "--url https://mirror/path)") from None
    except DiskSpaceError as exc:
        raise DiskSpaceError(f"{exc}. Free some space, or keep models on another disk: --cache DIR or "
                             f"{CACHE_ENV}=DIR") from None
    why = _not_weights(staged)
    if why:
        staged.unlink()
        raise DownloadError(f"{url} sent {why}; deleted it. A wrong mirror, a proxy or login page, or a server "
                            f"error: check the address, or use another mirror (--url or {MIRROR_ENV})")
    digest = file_sha256(staged)
    if recorded is not None and digest != recorded:
        changed = path.with_name(path.name + ".changed")
        os.replace(staged, changed)
        kept = f"; the cached copy {path} is left as it was" if path.is_file() else ""
        raise ModelChangedError(f"{url} changed since the first download (sha256 now {digest}, recorded "
                                f"{recorded}): refused, moved it to {changed}{kept}. If the change is expected: "
                                f"translate models forget {name}, then translate models download {name} --force")
    if recorded is None:
        _write_record(record, digest)  # before the rename: a copy in place always has its record
        log(f"recorded sha256 {digest} of {name} in {record}")
    os.replace(staged, path)
    try:
        staged.parent.rmdir()
    except OSError:  # other downloads in progress
        pass
    return path

"""What a file given as a checkpoint is, judged from its first bytes, and why PyTorch's safe loader refused
one: the one-line reasons :func:`translate.checkpoint.read_torch_file` gives. They name the file for what it
is (an image, a text file, a ``torch.export`` or TorchScript program, a ``.safetensors`` export, a cut zip)
and never repeat PyTorch's advice to load with ``weights_only=False``: translate never runs code from a file.
"""

from __future__ import annotations

import re
import struct
import zipfile
from pathlib import Path

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = 0x80  # PROTO opcode: the first byte of a legacy (non-zip) torch.save file
_IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image"}
_USE_INSTEAD = "give the .ckpt from translate fit or the .safetensors from translate export"
# Lines of PyTorch's weights_only messages that advise loading with weights_only=False: never shown.
_UNSAFE_ADVICE = ("weights_only", "Weights only", "Re-running", "arbitrary code", "trusted source",
                  "Please file an issue", "Check the documentation", "torch.serialization", "safe_globals")


def sniff(path: Path) -> str | None:
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


def safe_message(exc: BaseException) -> str:
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

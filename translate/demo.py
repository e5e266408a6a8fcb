"""``translate demo``: a local web app (Gradio) over the same inference functions as the CLI.

- **Translate**: one or several uploaded images through a generator (a checkpoint under ``checkpoints/``, an
  exported ``.safetensors``, a pretrained model name), at the image's own size, resized, or in tiles;
  input and output side by side, and a zip of all outputs.
- **Attribute** (GeneGAN checkpoints): swap both ways, a strength slider, and four donors on a grid, with
  the edit-footprint blending of ``translate swap`` (``--blend footprint|none``).
- **Model card**: model, dataset, training batches and image size, from the checkpoint's ``translate`` block.

Safe defaults: bound to 127.0.0.1, no share link, Gradio's analytics off, an upload size limit, and every
upload decoded by ``data.io.read_image`` (a corrupt, empty, huge or non-image file is a message in the
page; the app keeps serving). Requests are queued; ``concurrency`` run at once (one by default: the nets
share one device). Gradio is an optional extra (``pip install "translate[demo]"``).
"""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from translate.errors import TranslateError

INSTALL = 'translate demo needs the demo extra: pip install "translate[demo]"'
MODES = ("native", "resize", "tile")
MAX_FILE_SIZE = "50mb"  # per upload; read_image also refuses images of more pixels than it decodes


def require_gradio() -> Any:
    try:
        import gradio
    except ImportError:
        raise TranslateError(INSTALL) from None
    return gradio


def model_of(source: str) -> str | None:
    """The model name in a translate checkpoint's block ("genegan", ...), None for anything else. Read with
    weights_only=True and memory-mapped, so a menu of large checkpoints opens fast; never runs code."""
    if not source.endswith(".ckpt") or not Path(source).is_file():
        return None
    import torch

    try:
        loaded = torch.load(source, map_location="cpu", weights_only=True, mmap=True)
        return str(loaded["translate"]["model"])
    except Exception:  # noqa: BLE001 - not one of ours, or unreadable: the Translate tab reports why on use
        return None


def find_models(given: list[str] | None = None, roots: tuple[str | Path, ...] = ("checkpoints",)) -> list[str]:
    """What the model menu offers: the given sources, then checkpoints and exports under `roots`, then the
    pretrained names."""
    from translate import zoo

    found: list[str] = list(given or [])
    for root in roots:
        root = Path(root)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.suffix in (".ckpt", ".safetensors") and path.is_file() and not path.name.startswith("."):
                    found.append(str(path))
    found += [name for name in zoo.ZOO if name not in found]
    return list(dict.fromkeys(found))


@dataclass
class Engine:
    """Loads each generator once (checkpoint.load_generator) and runs it on the chosen device."""

    device: str | None = None
    _cache: dict[tuple[str, str | None], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def generator(self, source: str, direction: str | None = "AtoB", net: str | None = None) -> Any:
        from translate.checkpoint import load_generator
        from translate.infer import resolve_device

        key = (source, net or direction)
        with self._lock:
            if key not in self._cache:
                found = load_generator(source, direction, net=net) if net else load_generator(source, direction)
                found.net.to(resolve_device(self.device))
                self._cache[key] = found
            return self._cache[key]

    def translate(self, source: str, direction: str, path: str, mode: str = "native", size: int = 256,
                  tile: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(the image as read, its translation), uint8 [H,W,3]: the image file through the generator at its own
        size, resized (shorter side `size`) or in tiles, by convert's own translate_tensor."""
        import torch

        from translate.data.io import read_image, resize_bicubic
        from translate.data.transforms import to_model_range, to_tensor, to_uint8
        from translate.infer import resized_shape, translate_tensor

        if mode not in MODES:
            raise TranslateError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
        found = self.generator(source, direction)
        image = read_image(path)
        if mode == "resize":
            image = resize_bicubic(image, resized_shape(*image.shape[:2], size))
        device = next(found.net.parameters()).device
        x = to_model_range(to_tensor(image)[None].to(device))
        with torch.no_grad():
            out = translate_tensor(found.net, x, tile=tile if mode == "tile" else None)
        return image, to_uint8(out)[0].permute(1, 2, 0).cpu().numpy()

    def card(self, source: str) -> str:
        """Markdown: what a model is, from its translate block (or what a file or name says about itself)."""
        from translate import zoo
        from translate.checkpoint import is_translate_checkpoint, read_torch_file

        if source in zoo.ZOO:
            entry = zoo.ZOO[source]
            return (f"**pretrained {source}** (CycleGAN, {entry.direction}), dataset "
                    f"{entry.dataset or 'not in the catalog'}; downloaded on first use")
        path = Path(source)
        if path.suffix == ".safetensors":
            found = self.generator(source, None)
            return f"**exported generator** {path.name}: {found.describe()}, direction {found.direction}"
        loaded = read_torch_file(path)
        if not is_translate_checkpoint(loaded):
            return f"**classic generator file** {path.name}"
        block, cfg = loaded["translate"], loaded["translate"]["config"]
        data = cfg.get("data", {})
        batches = loaded.get("loops", {}).get("fit_loop", {}).get("epoch_loop.batch_progress", {}) \
            .get("total", {}).get("completed", "?")
        return (f"**{block['model']}** checkpoint {path.name}: dataset {data.get('dataset') or data.get('dir_a')}, "
                f"{batches} training batches ({loaded.get('epoch', '?')} epochs), image size {data.get('crop_size')}")

    # ----------------------------------------------------------------- GeneGAN

    def _faces(self, source: str, *paths: str) -> tuple[Any, int, list[tuple[Any, Any]]]:
        from translate.checkpoint import SWAP_NET
        from translate.swap import read_full

        found = self.generator(source, None, net=SWAP_NET)
        size = int(found.config["data"]["crop_size"])
        return found.net, size, [read_full(p, size) for p in paths]

    def attribute(self, source: str, target: str, donor: str, strength: float = 1.0,
                  blend: str = "footprint") -> tuple[np.ndarray, np.ndarray]:
        """(the target with the donor's object at `strength`, the donor without it). With footprint blending
        each is at its own size; with none, the paper's decoder output at the training size."""
        from translate.swap import blend_into, check_blend, interpolate, reconstruct, swap

        check_blend(blend)
        g, _, [(t_full, t), (d_full, d)] = self._faces(source, target, donor)
        moved = interpolate(g, d, t, [float(strength)])
        _, removed = swap(g, d, t)
        if blend == "footprint":
            moved = blend_into(t_full, moved, reconstruct(g, t))
            removed = blend_into(d_full, removed, reconstruct(g, d))
        return _image(moved), _image(removed)

    def grid(self, source: str, target: str, donors: list[str], rows: int = 4, cols: int = 4,
             blend: str = "footprint") -> np.ndarray:
        """The target with bilinear mixes of four donors' objects (top-left, top-right, bottom-left,
        bottom-right), one cell per mix."""
        import torch
        from torchvision.utils import make_grid

        from translate.swap import blend_into, check_blend, matrix, reconstruct

        check_blend(blend)
        if len(donors) != 4:
            raise TranslateError(f"the grid needs four donors, got {len(donors)}")
        g, _, faces = self._faces(source, target, *donors)
        (_, t), corners = faces[0], torch.cat([small for _, small in faces[1:]])
        cells = matrix(g, corners, t, rows, cols)
        if blend == "footprint":
            cells = torch.cat([blend_into(t, cell[None], reconstruct(g, t)) for cell in cells])
        return _image(make_grid(cells, nrow=cols, padding=2, pad_value=1.0)[None])


def _image(batch: Any) -> np.ndarray:
    """The first image of a [-1, 1] batch as uint8 [H,W,3]."""
    from translate.data.transforms import to_uint8

    return to_uint8(batch.clamp(-1, 1))[0].permute(1, 2, 0).cpu().numpy()


def zip_images(images: list[tuple[str, np.ndarray]]) -> bytes:
    """PNG files in a zip archive, in memory."""
    from PIL import Image

    buffer, used = io.BytesIO(), set()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, image in images:
            png = io.BytesIO()
            Image.fromarray(image).save(png, format="png")
            stem = Path(name).stem
            entry = f"{stem}.png" if f"{stem}.png" not in used else f"{Path(name).name}.png"  # a.jpg beside a.png
            used.add(entry)
            archive.writestr(entry, png.getvalue())
    return buffer.getvalue()


def _error_text(exc: BaseException) -> str:
    return f"error: {exc}"


def build_app(models: list[str], engine: Engine) -> Any:
    """The Blocks app. Every handler returns a readable message instead of raising for a user's mistake."""
    gr = require_gradio()
    from translate.choices import BLENDS, DIRECTIONS

    kinds = {m: model_of(m) for m in models}
    genegan = [m for m in models if kinds[m] == "genegan"]
    models = [m for m in models if kinds[m] != "genegan"]  # GeneGAN swaps objects; it does not translate
    with gr.Blocks(title="translate", analytics_enabled=False) as app:
        gr.Markdown("# translate\nUnpaired image-to-image translation: pick a model, upload images, translate.")
        with gr.Tab("Translate"):
            with gr.Row():
                model = gr.Dropdown(models, value=models[0] if models else None, label="Model", elem_id="model")
                direction = gr.Radio(list(DIRECTIONS), value="AtoB", label="Direction", elem_id="direction")
                mode = gr.Radio(list(MODES), value="native", label="Size", elem_id="mode")
            card = gr.Markdown(elem_id="card")
            files = gr.File(file_count="multiple", label="Images", elem_id="images")
            run = gr.Button("Translate", variant="primary", elem_id="translate")
            status = gr.Markdown(elem_id="status")
            with gr.Row():
                shown_in = gr.Image(label="Input", type="numpy", interactive=False, format="png", height=300, elem_id="input")
                shown_out = gr.Image(label="Output", type="numpy", interactive=False, format="png", height=300, elem_id="output")
            download = gr.File(label="Download (zip of every output)", elem_id="download")

            def translate_files(source, way, how, uploads):
                if not uploads:
                    return None, None, None, "error: upload at least one image"
                outputs, problems, first = [], [], None
                for upload in uploads:
                    path = upload if isinstance(upload, str) else upload.name
                    try:
                        image, out = engine.translate(source, way, path, how)
                    except TranslateError as exc:
                        problems.append(f"{Path(path).name}: {getattr(exc, 'why', exc)}")  # not the upload's temp path
                        continue
                    outputs.append((path, out))
                    first = first or (image, out)
                if not outputs:
                    return None, None, None, "error: " + "; ".join(problems)
                # a folder per request: identical uploads share one cached path, and requests run concurrently
                archive = Path(tempfile.mkdtemp(prefix="translate-demo-")) / "translated.zip"
                archive.write_bytes(zip_images(outputs))
                note = f"translated {len(outputs)} image(s)" + (f"; not converted: {'; '.join(problems)}" if problems
                                                                else "")
                return first[0], first[1], str(archive), note

            def describe(source):
                try:
                    return engine.card(source)
                except TranslateError as exc:
                    return _error_text(exc)

            run.click(translate_files, [model, direction, mode, files], [shown_in, shown_out, download, status],
                      api_name="translate")
            model.change(describe, model, card, api_name="card")
        with gr.Tab("Attribute"):
            face_model = gr.Dropdown(genegan, value=genegan[0] if genegan else None, label="GeneGAN checkpoint",
                                     elem_id="face_model")
            blend = gr.Radio(list(BLENDS), value="footprint", label="Blend", elem_id="blend")
            with gr.Row():
                target = gr.File(label="Target face", elem_id="target")
                donor = gr.File(label="Donor (has the attribute)", elem_id="donor")
            strength = gr.Slider(0, 1, value=1, step=0.05, label="Strength", elem_id="strength")
            face_status = gr.Markdown(elem_id="face_status")
            with gr.Row():
                moved = gr.Image(label="Target with the donor's attribute", interactive=False, format="png", height=300, elem_id="moved")
                removed = gr.Image(label="Donor without it", interactive=False, format="png", height=300, elem_id="removed")
            donors = gr.File(file_count="multiple", label="Four donors for the grid", elem_id="donors")
            grid_button = gr.Button("Grid", elem_id="grid_button")
            grid = gr.Image(label="Bilinear grid of four donors", interactive=False, format="png", height=300, elem_id="grid")

            def _path(upload):
                return upload if isinstance(upload, str) or upload is None else upload.name

            def do_swap(source, t, d, s, how):
                if not (source and t and d):
                    return None, None, "error: choose a checkpoint, a target and a donor"
                try:
                    return (*engine.attribute(source, _path(t), _path(d), s, how), "")
                except TranslateError as exc:
                    return None, None, _error_text(exc)

            def do_grid(source, t, four, how):
                if not (source and t and four):
                    return None, "error: choose a checkpoint, a target and four donors"
                try:
                    return engine.grid(source, _path(t), [_path(f) for f in four], blend=how), ""
                except TranslateError as exc:
                    return None, _error_text(exc)

            inputs = [face_model, target, donor, strength, blend]
            for trigger in (target.change, donor.change, strength.change, blend.change):
                trigger(do_swap, inputs, [moved, removed, face_status])
            gr.Button("Swap", elem_id="swap").click(do_swap, inputs, [moved, removed, face_status], api_name="swap")
            grid_button.click(do_grid, [face_model, target, donors, blend], [grid, face_status], api_name="grid")
        app.load(describe, model, card)
    return app


def serve(models: list[str] | None = None, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
          concurrency: int = 1, device: str | None = None, block: bool = True) -> Any:
    """Start the app; returns it (with ``block=False`` the server runs in a thread until ``app.close()``)."""
    require_gradio()
    import os

    if concurrency < 1:
        raise TranslateError(f"--concurrency must be at least 1, got {concurrency}")

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    choices = find_models(models)
    app = build_app(choices, Engine(device))
    app.queue(default_concurrency_limit=concurrency)
    app.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_FILE_SIZE,
               prevent_thread_lock=not block, show_error=False, quiet=not block)
    return app

"""translate demo through its API (gradio_client): the same inference as the CLI, bad uploads as messages,
concurrent requests queued."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app as cli

gradio = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def served(demo_models):
    from translate import demo

    root, ckpt, faces = demo_models
    app = demo.serve([ckpt, faces], port=None, block=False, device="cpu")
    client = gradio_client.Client(app.local_url, verbose=False)
    yield root, ckpt, client, faces
    app.close()


def _image(path: Path, size=(40, 36), seed: int = 0) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return str(path)


def test_translate_returns_the_output_at_the_input_size_and_the_same_as_the_cli(served, tmp_path: Path):
    root, ckpt, client, _ = served
    (tmp_path / "src").mkdir()
    source = _image(tmp_path / "src" / "in.png")
    shown_in, shown_out, archive, status = client.predict(ckpt, "AtoB", "native",
                                                          [gradio_client.handle_file(source)], api_name="/translate")
    assert "translated 1 image" in status
    out = np.asarray(Image.open(shown_out).convert("RGB"))
    assert out.shape == (36, 40, 3) and not np.array_equal(out, np.asarray(Image.open(source)))
    result = CliRunner().invoke(cli, ["convert", ckpt, source, str(tmp_path / "cli"), "--precision", "32"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert np.abs(out.astype(int) - np.asarray(Image.open(tmp_path / "cli" / "in.png")).astype(int)).max() <= 1
    assert Path(archive).suffix == ".zip"


def test_a_corrupt_upload_is_a_message_and_the_app_keeps_serving(served, tmp_path: Path):
    _, ckpt, client, _ = served
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    *_, status = client.predict(ckpt, "AtoB", "native", [gradio_client.handle_file(str(bad))], api_name="/translate")
    assert status.startswith("error:") and "broken.png" in status
    *_, status = client.predict(ckpt, "AtoB", "native", [gradio_client.handle_file(_image(tmp_path / "ok.png"))],
                                api_name="/translate")
    assert "translated 1 image" in status


def test_eight_concurrent_requests_all_succeed(served, tmp_path: Path):
    _, ckpt, client, _ = served
    # eight different images: Gradio caches outputs under their content hash, and concurrent requests with
    # byte-identical outputs can rewrite the cached file while it is being served (gradio-app/gradio#8878,
    # "Too little data for declared Content-Length"); that race is Gradio's, not the demo's
    paths = [_image(tmp_path / f"{i}.png", seed=i) for i in range(8)]

    def one(path):
        return client.predict(ckpt, "BtoA", "tile", [gradio_client.handle_file(path)], api_name="/translate")[-1]

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, paths))
    assert all("translated 1 image" in s for s in statuses), statuses


def test_the_model_card_reads_the_checkpoint(served):
    _, ckpt, client, _ = served
    card = client.predict(ckpt, api_name="/card")
    assert "cyclegan" in card and "image size 32" in card


def test_attribute_swap_strength_and_grid(served, tmp_path: Path):
    """The strength slider changes the face; footprint blending returns the target at its own size and keeps
    it where nothing changed; none is the paper's decoder output at the training size."""
    _, _, client, faces = served
    target, donor = _image(tmp_path / "t.png", (48, 40)), _image(tmp_path / "d.png", (32, 32))
    f = gradio_client.handle_file

    def face(strength: float, blend: str) -> np.ndarray:
        moved, removed, status = client.predict(faces, f(target), f(donor), strength, blend, api_name="/swap")
        assert status == "" and removed
        return np.asarray(Image.open(moved).convert("RGB")).astype(int)

    raw_full, raw_none = face(1.0, "none"), face(0.0, "none")
    assert raw_full.shape == (32, 32, 3) and np.abs(raw_full - raw_none).max() > 0  # the slider moves the output
    blended = face(0.0, "footprint")
    original = np.asarray(Image.open(target).convert("RGB")).astype(int)
    assert blended.shape == original.shape == (40, 48, 3)
    assert np.abs(blended - original).mean() < 10  # strength 0: the input where the edit leaves no footprint
    grid, status = client.predict(faces, f(target), [f(donor)] * 4, "none", api_name="/grid")
    assert status == "" and np.asarray(Image.open(grid)).shape[:2] == (4 * 34 + 2, 4 * 34 + 2)
    _, status = client.predict(faces, f(target), [f(donor)] * 3, "none", api_name="/grid")
    assert status == "error: the grid needs four donors, got 3"


def test_each_tab_offers_the_checkpoints_it_can_use(served, tmp_path: Path):
    from translate import demo
    from translate.errors import TranslateError

    root, ckpt, _, faces = served
    assert (demo.model_of(ckpt), demo.model_of(faces), demo.model_of(str(tmp_path))) == ("cyclegan", "genegan", None)
    image = _image(tmp_path / "x.png")
    with pytest.raises(TranslateError, match="genegan"):
        demo.Engine("cpu").attribute(ckpt, image, image)
    offered = demo.find_models([ckpt, faces], roots=(root / "runs",))
    assert offered[:2] == [ckpt, faces] and "horse2zebra" in offered and len(offered) == len(set(offered))

"""translate demo through its API (gradio_client): the same inference as the CLI, bad uploads as messages,
concurrent requests queued."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app as cli

gradio = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed")
gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from conftest import make_unpaired, tiny, write_tiny_config
    from translate import demo

    root = tmp_path_factory.mktemp("demo")
    config = write_tiny_config(root, make_unpaired(root / "data"))
    result = CliRunner().invoke(cli, ["fit", str(config), "--name", "c", "--max-steps", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ckpt = str(root / "runs" / "c" / "last.ckpt")
    cfg = yaml.safe_load(config.read_text())
    gene = {**tiny("genegan"), "losses": {"critic_burst": 0},
            "data": {**cfg["data"], "load_size": 32, "crop_size": 32, "batch_size": 2}, "train": cfg["train"]}
    (root / "gene.yaml").write_text(yaml.safe_dump(gene))
    result = CliRunner().invoke(cli, ["fit", str(root / "gene.yaml"), "--name", "g", "--max-steps", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    faces = str(root / "runs" / "g" / "last.ckpt")
    app = demo.serve([ckpt, faces], port=None, block=False, device="cpu")
    client = gradio_client.Client(app.local_url, verbose=False)
    yield root, ckpt, client, faces
    app.close()


def _image(path: Path, size=(40, 36)) -> str:
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
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
    paths = [_image(tmp_path / f"{i}.png") for i in range(8)]

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


def test_a_cyclegan_checkpoint_on_the_attribute_tab_is_a_message(served, tmp_path: Path):
    _, ckpt, client, _ = served
    image = gradio_client.handle_file(_image(tmp_path / "x.png"))
    *_, status = client.predict(ckpt, image, image, 1.0, "none", api_name="/swap")
    assert status.startswith("error:") and "genegan" in status

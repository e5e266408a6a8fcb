"""translate convert: native size, mirrored paths, atomic and safe writes, reports, wrong checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from translate.cli import app
from translate.infer import REPORT_NAME, convert, load_generator

runner = CliRunner()


@pytest.fixture
def checkpoint(tiny_config: Path, tmp_path: Path) -> Path:
    result = runner.invoke(app, ["fit", str(tiny_config), "--name", "c", "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "c" / "last.ckpt"


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(root / "odd.png")  # not a multiple of 4
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "sub" / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "sub" / "b.jpg")
    (root / "broken.png").write_bytes(b"\x89PNG broken")
    return root


def test_convert_keeps_size_mirrors_paths_and_reports_failures(checkpoint: Path, photos: Path, tmp_path: Path):
    before = {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(out)])
    assert result.exit_code == 3  # some files failed
    assert Image.open(out / "odd.png").size == (53, 37)  # native size, padded and cropped back
    assert Image.open(out / "sub" / "a.jpg").format == "JPEG"
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["written"] == 3 and list(report["failed"]) == [str(photos / "broken.png")]
    assert {p: p.read_bytes() for p in photos.rglob("*") if p.is_file()} == before  # inputs untouched
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_output_matches_the_generator_and_batches_do_not_change_results(checkpoint: Path, photos: Path, tmp_path: Path):
    (photos / "broken.png").unlink()
    one = convert(checkpoint, photos, tmp_path / "one", batch_size=1, fmt="png")
    many = convert(checkpoint, photos, tmp_path / "many", batch_size=8, fmt="png")
    assert len(one.written) == len(many.written) == 3 and not one.failed
    for name in ("sub/a.png", "sub/b.png", "odd.png"):
        a = np.asarray(Image.open(tmp_path / "one" / name)).astype(int)
        b = np.asarray(Image.open(tmp_path / "many" / name)).astype(int)
        assert np.abs(a - b).max() <= 1
    net = load_generator(checkpoint, "AtoB")
    x = torch.from_numpy(np.asarray(Image.open(photos / "sub" / "a.jpg").convert("RGB"))).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = ((net(x.float() / 127.5 - 1) + 1) * 127.5).round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(Image.open(tmp_path / "one" / "sub" / "a.png")).astype(int) - y).max() <= 1


def test_skip_existing_and_refusal_to_write_into_the_input(checkpoint: Path, photos: Path, tmp_path: Path):
    out = tmp_path / "out"
    convert(checkpoint, photos, out)
    (out / "odd.png").write_bytes(b"keep me")
    again = convert(checkpoint, photos, out, skip_existing=True)
    assert (out / "odd.png").read_bytes() == b"keep me" and len(again.skipped_existing) == 3
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(photos / "out")])
    assert result.exit_code != 0 and "inside the input folder" in result.output


@pytest.mark.parametrize("args, match", [
    (["missing.ckpt", "IN", "OUT"], "checkpoint not found"),
    (["CKPT", "nowhere", "OUT"], "input not found"),
    (["CKPT", "EMPTY", "OUT"], "no images to convert"),
    (["CKPT", "IN", "OUT", "--direction", "sideways"], "direction must be one of"),
])
def test_convert_errors_are_one_line(checkpoint: Path, photos: Path, tmp_path: Path, args, match):
    (tmp_path / "empty").mkdir()
    subst = {"CKPT": str(checkpoint), "IN": str(photos), "OUT": str(tmp_path / "o"), "EMPTY": str(tmp_path / "empty")}
    result = runner.invoke(app, ["convert", *[subst.get(a, a) for a in args]])
    assert result.exit_code != 0 and match in result.output and "Traceback" not in result.output

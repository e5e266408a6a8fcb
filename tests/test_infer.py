"""translate convert: native size, mirrored paths, atomic and safe writes, reports, wrong checkpoints."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import train_tiny_run
from translate.checkpoint import load_generator
from translate.cli import app
from translate.errors import TranslateError
from translate.infer import REPORT_NAME, convert

runner = CliRunner()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CycleGAN run folder (one batch), trained once for the module."""
    return train_tiny_run(tmp_path_factory.mktemp("infer"))


@pytest.fixture
def checkpoint(trained_run: Path, tmp_path: Path) -> Path:
    """last.ckpt in a fresh copy of that run folder per test (tests write next to it)."""
    shutil.copytree(trained_run, tmp_path / "runs" / "c", ignore=shutil.ignore_patterns(".lock"))
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
    one = convert(checkpoint, photos, tmp_path / "one", batch_size=1, fmt="png", precision="32")  # fp32: compared with the fp32 net
    many = convert(checkpoint, photos, tmp_path / "many", batch_size=8, fmt="png", precision="32")
    assert len(one.written) == len(many.written) == 3 and not one.failed
    for name in ("sub/a.png", "sub/b.png", "odd.png"):
        a = np.asarray(Image.open(tmp_path / "one" / name)).astype(int)
        b = np.asarray(Image.open(tmp_path / "many" / name)).astype(int)
        assert np.abs(a - b).max() <= 1
    net = load_generator(checkpoint, "AtoB").net
    x = torch.from_numpy(np.array(Image.open(photos / "sub" / "a.jpg").convert("RGB"))).permute(2, 0, 1)[None]
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


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int]], set[str]]:
    """The issue's acceptance folder: (root, valid file -> (W, H), names of the bad files)."""
    root = tmp_path / "messy"
    (root / "nested" / "deeper").mkdir(parents=True)
    rng = np.random.default_rng(1)

    def rgb(h, w):
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)

    Image.fromarray(rgb(199, 301)).save(root / "odd.png")
    Image.fromarray(rgb(1100, 1500)).save(root / "large.jpg", quality=80)
    Image.fromarray(rgb(23, 17)).save(root / "nested" / "tiny.png")
    Image.fromarray(rng.integers(0, 256, (40, 30), dtype=np.uint8), "L").save(root / "gray.png")
    rgba = np.dstack([rgb(32, 48), rng.integers(0, 256, (32, 48), dtype=np.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "nested" / "alpha.png")
    Image.fromarray(rng.integers(0, 65536, (36, 28), dtype=np.uint16)).save(root / "sixteen.png")
    Image.fromarray(rgb(44, 52)).convert("CMYK").save(root / "nested" / "deeper" / "cmyk.jpg")
    full = root / "truncated.jpg"
    Image.fromarray(rgb(64, 64)).save(full, quality=90)
    full.write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.jpg").write_text("this is not a picture")
    # issue 21's additions: GIFs (one still, one animated), an animated WebP, a phone's HEIC, same-stem files,
    # a dangling symbolic link and a name with glob characters
    Image.fromarray(rgb(20, 24)).convert("P").save(root / "still.gif")
    frames = [Image.fromarray(rgb(16, 20)).convert("P") for _ in range(3)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    webp = [Image.fromarray(rgb(18, 22)) for _ in range(2)]
    webp[0].save(root / "nested" / "moving.webp", save_all=True, append_images=webp[1:], duration=50)
    (root / "IMG_0001.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    for suffix in (".png", ".bmp", ".tif"):
        Image.fromarray(rgb(12, 14)).save(root / f"same{suffix}")
    (root / "gone.png").symlink_to(root / "was-deleted.png")
    Image.fromarray(rgb(10, 11)).save(root / "img[1].png")
    (root / "readme.txt").write_text("not an image, not an input")
    valid = {"odd.png": (301, 199), "large.jpg": (1500, 1100), "nested/tiny.png": (17, 23), "gray.png": (30, 40),
             "nested/alpha.png": (48, 32), "sixteen.png": (28, 36), "nested/deeper/cmyk.jpg": (52, 44),
             "still.png": (24, 20), "animated.png": (20, 16), "nested/moving.webp": (22, 18),
             "same.png": (14, 12), "same.bmp.png": (14, 12), "same.tif.png": (14, 12), "img[1].png": (11, 10)}
    return root, valid, {"truncated.jpg", "empty.png", "notes.jpg", "IMG_0001.heic", "gone.png"}


def test_acceptance_folder_converts_every_valid_image_at_its_own_size(checkpoint: Path, messy, tmp_path: Path):
    root, valid, bad = messy
    before = {p: p.read_bytes() for p in root.rglob("*")if p.is_file()}
    out = tmp_path / "out"
    seen = []
    report = convert(checkpoint, root, out, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert sorted(Path(p).relative_to(out).as_posix() for p in report.written) == sorted(valid)
    for name, size in valid.items():
        assert Image.open(out / name).size == size, name
    assert {Path(p).name for p in report.failed} == bad
    assert "empty" in report.failed[str(root / "empty.png")]
    assert "truncated" in report.failed[str(root / "truncated.jpg")]
    assert "not an image" in report.failed[str(root / "notes.jpg")]
    if importlib.util.find_spec("pillow_heif"):  # the plugin reads HEIC: this file is just not a real one
        assert "not an image" in report.failed[str(root / "IMG_0001.heic")]
    else:
        assert "unsupported format" in report.failed[str(root / "IMG_0001.heic")]
        assert "pillow-heif" in report.failed[str(root / "IMG_0001.heic")]
    assert "broken symbolic link" in report.failed[str(root / "gone.png")]
    assert report.ignored == {str(root / "readme.txt"): "not an image file"}
    assert set(report.notes) == {str(root / "animated.gif"), str(root / "nested" / "moving.webp")}
    assert "first frame" in report.notes[str(root / "animated.gif")]
    saved = json.loads((out / REPORT_NAME).read_text())
    assert saved["inputs"] == len(valid) + len(bad) and saved["ignored"] == report.ignored
    assert Image.open(out / "nested" / "alpha.png").mode == "RGBA"  # alpha carried over
    assert np.array_equal(np.asarray(Image.open(out / "nested" / "alpha.png"))[..., 3],
                          np.asarray(Image.open(root / "nested" / "alpha.png"))[..., 3])
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before
    total = len(valid) + len(bad)
    assert seen[-1] == (total, total) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix != ".json"}
    again = convert(checkpoint, root, out, skip_existing=True)
    assert not again.written and len(again.skipped_existing) == len(valid)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.suffix != ".json"} == stamps
    assert json.loads((out / REPORT_NAME).read_text())["skipped_existing"] == len(valid)


class Pointwise(torch.nn.Module):
    """A per-pixel net: tiled and whole-image outputs must agree exactly."""

    size_multiple = 4

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.tanh(self.conv(x))


def test_tiles_blend_back_to_the_whole_image():
    from translate.infer import translate_tensor

    torch.manual_seed(0)
    net, x = Pointwise(), torch.rand(2, 3, 70, 101) * 2 - 1
    whole = translate_tensor(net, x)
    for tile, overlap in ((32, 8), (48, 0), (40, None)):
        tiled = translate_tensor(net, x, tile=tile, overlap=overlap, batch_size=3)
        assert tiled.shape == x.shape
        assert torch.allclose(tiled, whole, atol=1e-6), (tile, overlap)
    with pytest.raises(TranslateError, match="overlap"):
        translate_tensor(net, x, tile=32, overlap=32)


def test_tile_and_size_options(checkpoint: Path, tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(src / "x.png")
    result = runner.invoke(app, ["convert", str(checkpoint), str(src), str(tmp_path / "tiled"), "--tile", "24", "-q"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "tiled" / "x.png").size == (60, 40)
    whole = np.asarray(Image.open(convert(checkpoint, src, tmp_path / "whole").written[0])).astype(float)
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "x.png")).astype(float)
    assert np.abs(whole - tiled).mean() < 40  # same translation up to per-tile normalisation
    resized = convert(checkpoint, src, tmp_path / "small", size=32)
    assert Image.open(resized.written[0]).size == (48, 32)  # shorter side 32, aspect kept


def test_export_reproduces_the_checkpoint_and_converts(checkpoint: Path, photos: Path, tmp_path: Path):
    (photos / "broken.png").unlink()
    result = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "gen"), "--direction", "BtoA"])
    assert result.exit_code == 0, result.output
    assert "parity" in result.output
    weights, program = tmp_path / "gen.safetensors", tmp_path / "gen.pt2"
    assert weights.is_file() and program.is_file()
    x = torch.rand(1, 3, 36, 44) * 2 - 1
    with torch.no_grad():
        expected = load_generator(checkpoint, "BtoA").net(x)
        assert torch.allclose(torch.export.load(program).module()(x), expected, atol=1e-5)
        assert torch.allclose(load_generator(weights, "BtoA").net(x), expected, atol=1e-6)
    a = convert(checkpoint, photos, tmp_path / "from_ckpt", direction="BtoA", fmt="png")
    b = convert(weights, photos, tmp_path / "from_export", direction="BtoA", fmt="png")
    for x_path, y_path in zip(sorted(a.written), sorted(b.written)):
        assert np.array_equal(np.asarray(Image.open(x_path)), np.asarray(Image.open(y_path)))
    again = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "gen")])
    assert again.exit_code != 0 and "already exist" in again.output  # no silent overwrite
    wrong = runner.invoke(app, ["convert", str(weights), str(photos), str(tmp_path / "o")])
    assert wrong.exit_code != 0 and "holds the BtoA generator" in wrong.output


def test_bad_generator_files_are_refused_clearly(checkpoint: Path, photos: Path, tmp_path: Path):
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x00" * 64)
    result = runner.invoke(app, ["convert", str(fake), str(photos), str(tmp_path / "o")])
    assert result.exit_code != 0 and "not a translate generator file" in result.output
    ckpt = torch.load(checkpoint, weights_only=True)
    del ckpt["translate"]["nets"]["g_ab"]  # e.g. a model kind without an A->B generator
    odd = tmp_path / "odd.ckpt"
    torch.save(ckpt, odd)
    result = runner.invoke(app, ["convert", str(odd), str(photos), str(tmp_path / "o")])
    assert result.exit_code != 0 and "has no AtoB generator" in result.output and "Traceback" not in result.output


def test_outputs_keep_the_input_suffix_unless_the_format_changes(checkpoint: Path, tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src / "photo.JPEG", format="JPEG")
    Image.fromarray(rgb).save(src / "scan.bmp")
    kept = convert(checkpoint, src, tmp_path / "kept")
    assert sorted(Path(p).name for p in kept.written) == ["photo.JPEG", "scan.png"]  # bmp has no writer: png
    assert Image.open(tmp_path / "kept" / "photo.JPEG").format == "JPEG"
    changed = convert(checkpoint, src, tmp_path / "changed", fmt="webp")
    assert sorted(Path(p).name for p in changed.written) == ["photo.webp", "scan.webp"]


# ---------------------------------------------------------------- issue 21: hostile and careless use


def _snapshot(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.is_symlink()}


def test_no_output_may_be_an_input_whatever_the_folders_relation(checkpoint: Path, tmp_path: Path):
    x = tmp_path / "x"
    (x / "photos" / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for folder in (x / "photos", x / "photos" / "photos"):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / "a.png")
    before = _snapshot(x)
    # the output is a parent of the input: x/photos/photos/a.png would be written to x/photos/a.png
    result = runner.invoke(app, ["convert", str(checkpoint), str(x / "photos"), str(x)])
    assert result.exit_code != 0 and "refusing to write" in result.output and "Traceback" not in result.output
    assert _snapshot(x) == before and not (x / REPORT_NAME).exists()
    # a hard link to an input under the output name is the input too
    other = tmp_path / "other"
    (other / "photos").mkdir(parents=True)
    (other / "photos" / "a.png").hardlink_to(x / "photos" / "a.png")
    with pytest.raises(TranslateError, match="refusing to write"):
        convert(checkpoint, x / "photos" / "a.png", other / "photos")
    assert _snapshot(x) == before
    # a folder of the same tree that holds no input is a fine output
    report = convert(checkpoint, x / "photos" / "photos", tmp_path / "fine")
    assert len(report.written) == 1 and _snapshot(x) == before


def test_a_path_with_glob_characters_is_taken_literally_when_it_exists(checkpoint: Path, tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(src / "img[1].png")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(src / "img1.png")  # what the pattern would match
    report = convert(checkpoint, src / "img[1].png", tmp_path / "out")
    assert [Path(p).name for p in report.written] == ["img[1].png"]
    pattern = convert(checkpoint, str(src / "img[0-9].png"), tmp_path / "pattern")  # a pattern still works
    assert [Path(p).name for p in pattern.written] == ["img1.png"]


def test_unreadable_subfolders_and_link_loops_are_reported_not_fatal(checkpoint: Path, tmp_path: Path, monkeypatch):
    import os

    src = tmp_path / "in"
    (src / "locked").mkdir(parents=True)
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(src / "ok.png")
    Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(src / "locked" / "hidden.png")
    (src / "loop").symlink_to(src, target_is_directory=True)  # a link back to the top folder
    (src / "self.png").symlink_to(src / "self.png")  # a link to itself
    real_scandir = os.scandir

    def scandir(path="."):  # as root, permissions can't lock a folder: simulate what the OS says
        if Path(path) == src / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = convert(checkpoint, src, tmp_path / "out")
    assert [Path(p).name for p in report.written] == ["ok.png"]  # once, not again through the loop
    assert "cannot be read" in report.failed[str(src / "locked")]
    assert report.failed[str(src / "self.png")] == "symbolic link loop"
    assert "loop" in report.ignored[str(src / "loop")]


class OutOfMemoryAbove(torch.nn.Module):
    """Raises the CPU allocator's error for inputs larger than `limit` pixels, like a big image would, and for
    8-px-wide inputs (an image no tile of which fits)."""

    size_multiple = 4

    def __init__(self, limit: int):
        super().__init__()
        self.limit, self.calls = limit, []
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if x.shape[0] * x.shape[-2] * x.shape[-1] > self.limit or x.shape[-1] == 8:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return torch.tanh(self.conv(x))


def test_out_of_memory_is_retried_alone_then_tiled_then_reported(tmp_path: Path, monkeypatch):
    import translate.infer as infer

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):  # one batch of two 32 x 32 images: too big together, fine alone
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(src / f"{name}.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(src / "big.png")  # fits only in tiles
    Image.fromarray(rng.integers(0, 256, (200, 8, 3), dtype=np.uint8)).save(src / "never.png")  # never fits
    net = OutOfMemoryAbove(limit=1500)
    from translate.checkpoint import Generator

    monkeypatch.setattr(infer, "load_generator", lambda *a, **k: Generator(net, "test", {}, "cyclegan", Path("x"), "export"))
    report = convert("unused.ckpt", src, tmp_path / "out", batch_size=2, precision="32")
    assert sorted(Path(p).name for p in report.written) == ["a.png", "b.png", "big.png"]
    assert list(report.failed) == [str(src / "never.png")] and "out of memory" in report.failed[str(src / "never.png")]
    assert (2, 3, 32, 32) in net.calls and (1, 3, 32, 32) in net.calls  # the pair, then each alone
    assert Image.open(tmp_path / "out" / "big.png").size == (64, 64)
    # the tiles of a per-pixel net reproduce the whole image (up to rounding): tiling is not a degraded answer
    x = torch.from_numpy(np.array(Image.open(src / "big.png"))).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        whole = ((torch.tanh(net.conv(x)) + 1) * 127.5).round()[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(Image.open(tmp_path / "out" / "big.png")).astype(float) - whole).max() <= 1
    assert json.loads((tmp_path / "out" / REPORT_NAME).read_text())["failed"] == report.failed


@pytest.mark.parametrize("args, match", [
    (["--quality", "-5"], "--quality must be in 0..100"),
    (["--quality", "101"], "--quality must be in 0..100"),
    (["--workers", "-1"], "--workers must be at least 0"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--device", "toaster"], "not a device"),
])
def test_invalid_option_values_are_refused_before_any_work(checkpoint: Path, photos: Path, tmp_path: Path, args,
                                                           match):
    out = tmp_path / "o"
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(out), *args])
    assert result.exit_code != 0 and match in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_an_unwritable_output_is_found_before_translating(checkpoint: Path, photos: Path, tmp_path: Path, monkeypatch):
    import translate.infer as infer

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    calls = []
    monkeypatch.setattr(infer, "translate_tensor", lambda *a, **k: calls.append(1))
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(blocker / "out")])
    assert result.exit_code != 0 and "cannot write in the output folder" in result.output
    assert "Traceback" not in result.output and not calls


def test_stale_temporary_files_of_a_killed_run_are_removed(checkpoint: Path, photos: Path, tmp_path: Path):
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that no longer runs
    stale = out / "sub" / f".a.{dead}.abcd1234.tmp.jpg"
    live = out / f".odd.{os.getpid()}.abcd1234.tmp.png"  # this process: live, kept
    stale.write_bytes(b"half"), live.write_bytes(b"half")
    convert(checkpoint, photos, out)
    assert not stale.exists() and live.exists()


def test_written_files_respect_the_umask(checkpoint: Path, photos: Path, tmp_path: Path):
    import os

    old = os.umask(0o022)
    try:
        convert(checkpoint, photos, tmp_path / "open")
        os.umask(0o077)
        convert(checkpoint, photos, tmp_path / "private")
    finally:
        os.umask(old)
    assert (tmp_path / "open" / "odd.png").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "open" / REPORT_NAME).stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private" / "odd.png").stat().st_mode & 0o777 == 0o600


def test_heic_photos_are_converted_when_the_plugin_is_installed(checkpoint: Path, tmp_path: Path):
    import subprocess
    import sys

    pytest.importorskip("pillow_heif")
    src = tmp_path / "phone"
    src.mkdir()
    # written by another process, so that this one registers the plugin itself, on meeting the file
    subprocess.run([sys.executable, "-c", "import numpy as np, pillow_heif; from PIL import Image; "
                    "pillow_heif.register_heif_opener(); "
                    f"Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save({str(src / 'IMG_1.HEIC')!r})"],
                   check=True)
    report = convert(checkpoint, src, tmp_path / "out")
    assert not report.failed and [Path(p).name for p in report.written] == ["IMG_1.png"]
    assert Image.open(tmp_path / "out" / "IMG_1.png").size == (24, 20)


def test_export_never_writes_over_its_checkpoint(checkpoint: Path, tmp_path: Path):
    weights = tmp_path / "g.safetensors"
    weights.hardlink_to(checkpoint)  # the name export would write is the checkpoint itself
    before = checkpoint.read_bytes()
    result = runner.invoke(app, ["export", str(checkpoint), str(tmp_path / "g"), "--force"])
    assert result.exit_code != 0 and "refusing to write" in result.output and checkpoint.read_bytes() == before


def test_bf16_on_a_cpu_runs_bf16_weights_that_give_autocasts_output(checkpoint: Path, photos: Path, tmp_path: Path):
    from translate.infer import _forward_padded
    from translate.precision import InDtype, choose_precision

    assert choose_precision(torch.device("cpu"), "32")[0] == "32"
    assert choose_precision(torch.device("cpu"), "bf16")[0] == "bf16"
    report = convert(checkpoint, photos / "odd.png", tmp_path / "out", precision="bf16")
    assert report.written and "bf16" in report.precision
    net = load_generator(checkpoint, "AtoB").net
    x = torch.from_numpy(np.asarray(Image.open(photos / "odd.png").convert("RGB")).copy()).permute(2, 0, 1)[None]
    x = x.float() / 127.5 - 1
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = _forward_padded(net, x).float()
        cast = _forward_padded(InDtype(load_generator(checkpoint, "AtoB").net, torch.bfloat16), x)
    assert cast.dtype == torch.float32 and (cast - autocast).abs().max().item() < 2 / 127.5
    written = np.asarray(Image.open(tmp_path / "out" / "odd.png").convert("RGB"), dtype=float)
    expected = ((autocast + 1) * 127.5).round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    assert written.shape == expected.shape and np.abs(written - expected).max() <= 2


def test_auto_precision_follows_the_cpus_native_bf16(monkeypatch):
    import translate.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["AVX-512 BF16"])
    chosen, why = precision.choose_precision(torch.device("cpu"), "auto")
    assert chosen == "bf16" and "AVX-512 BF16" in why
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    chosen, why = precision.choose_precision(torch.device("cpu"), "auto")
    assert chosen == "32" and "no native bf16" in why
    assert precision.choose_precision(torch.device("cpu"), "auto", backend="onnxruntime")[0] == "32"


def test_forced_bf16_on_a_cpu_without_native_bf16_says_it_is_emulated(monkeypatch):
    import translate.precision as precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: [])
    assert "emulated" in precision.choose_precision(torch.device("cpu"), "bf16")[1]
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ["AMX BF16"])
    assert "emulated" not in precision.choose_precision(torch.device("cpu"), "bf16")[1]


def test_onnxruntime_backend_without_the_extra_is_one_line_and_creates_nothing(checkpoint: Path, photos: Path,
                                                                              tmp_path: Path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    result = runner.invoke(app, ["convert", str(checkpoint), str(photos), str(tmp_path / "out"), "--backend",
                                 "onnxruntime"])
    assert result.exit_code != 0 and "pip install 'translate[onnx]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()

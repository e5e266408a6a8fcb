"""Dataset downloads against a local HTTP server on 127.0.0.1: resume, retries, checksums, hostile archives."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import Handler
from translate.data.download import DownloadError, download, extract


def make_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


DATASET = {"mini/trainA/a.png": b"A" * 5000, "mini/trainB/b.png": b"B" * 7000, "mini/testA/c.png": b"C" * 300}


def test_normal_download_verifies_and_extracts(server, tmp_path: Path):
    root, url = server
    archive = make_zip(root / "mini.zip", DATASET)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    seen = []
    got = download(f"{url}/mini.zip", tmp_path / "dl" / "mini.zip", size=archive.stat().st_size, sha256=digest,
                   progress=lambda done, total: seen.append((done, total)))
    assert got.read_bytes() == archive.read_bytes() and seen[-1] == (archive.stat().st_size,) * 2
    out = extract(got, tmp_path / "datasets" / "mini")
    assert (out / "trainA" / "a.png").read_bytes() == b"A" * 5000  # the single top folder is unwrapped
    assert sorted(p.name for p in out.iterdir()) == ["testA", "trainA", "trainB"]
    assert [p.name for p in (tmp_path / "datasets").iterdir()] == ["mini"]  # no staging folder left


def test_cut_download_is_resumed_with_range(server, tmp_path: Path):
    root, url = server
    archive = make_zip(root / "mini.zip", {**DATASET, "mini/trainA/big.png": bytes(range(256)) * 4000})
    Handler.cut_once, Handler.ranges = {"/mini.zip"}, []
    got = download(f"{url}/mini.zip", tmp_path / "mini.zip", sha256=hashlib.sha256(archive.read_bytes()).hexdigest(),
                   backoff=0.01)
    assert got.read_bytes() == archive.read_bytes()
    assert Handler.ranges == [f"bytes={archive.stat().st_size // 2}-"]  # the retry asked only for the rest
    assert not (tmp_path / "mini.zip.part").exists()


def test_interrupted_part_file_is_continued_not_restarted(server, tmp_path: Path):
    root, url = server
    archive = make_zip(root / "mini.zip", DATASET)
    data = archive.read_bytes()
    (tmp_path / "mini.zip.part").write_bytes(data[:1000])  # what an earlier, killed run left
    fetched = []
    download(f"{url}/mini.zip", tmp_path / "mini.zip", progress=lambda done, total: fetched.append(done))
    assert (tmp_path / "mini.zip").read_bytes() == data and fetched[0] > 1000


def test_checksum_mismatch_is_rejected_and_nothing_is_left(server, tmp_path: Path):
    root, url = server
    make_zip(root / "mini.zip", DATASET)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(f"{url}/mini.zip", tmp_path / "mini.zip", sha256="0" * 64)
    assert not list(tmp_path.glob("mini.zip*"))
    with pytest.raises(DownloadError, match="expected 5 bytes"):
        download(f"{url}/mini.zip", tmp_path / "mini.zip", size=5)
    assert not list(tmp_path.glob("mini.zip*"))


def test_missing_file_and_server_down_give_clear_errors(server, tmp_path: Path):
    _, url = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{url}/nope.zip", tmp_path / "nope.zip")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot download .* after 2 attempts"):
        download(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", retries=1, backoff=0.01, timeout=2)


def hostile_tar(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w") as tf:
        good = tarfile.TarInfo("mini/trainA/ok.png")
        good.size = 3
        tf.addfile(good, io.BytesIO(b"abc"))
        if kind == "dotdot":
            bad = tarfile.TarInfo("mini/../../evil.txt")
            bad.size = 4
            tf.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "absolute":
            bad = tarfile.TarInfo("/tmp/evil.txt")
            bad.size = 4
            tf.addfile(bad, io.BytesIO(b"evil"))
        elif kind == "symlink":
            bad = tarfile.TarInfo("mini/trainA/link.png")
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tf.addfile(bad)
    return path


@pytest.mark.parametrize("kind, match", [("dotdot", "leaving the target"), ("absolute", "absolute path"),
                                         ("symlink", "is a link")])
def test_hostile_tar_members_are_refused_and_nothing_is_extracted(tmp_path: Path, kind, match):
    archive = hostile_tar(tmp_path / "evil.tar", kind)
    (tmp_path / "datasets").mkdir()
    with pytest.raises(DownloadError, match=match):
        extract(archive, tmp_path / "datasets" / "mini")
    assert not list((tmp_path / "datasets").iterdir())  # no half-extracted folder, no staging left
    assert not (tmp_path / "evil.txt").exists()


def test_hostile_zip_members_are_refused(tmp_path: Path):
    for name, match in (("../evil.txt", "leaving the target"), ("/abs/evil.txt", "absolute path")):
        archive = make_zip(tmp_path / "evil.zip", {"mini/trainA/ok.png": b"ok", name: b"evil"})
        with pytest.raises(DownloadError, match=match):
            extract(archive, tmp_path / "out")
        assert not (tmp_path / "out").exists()
    link = zipfile.ZipInfo("mini/trainA/link.png")
    link.external_attr = (0o120777 << 16)  # a symlink entry, as `zip --symlinks` writes it
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DownloadError, match="symbolic link"):
        extract(tmp_path / "link.zip", tmp_path / "out")


def test_not_an_archive(tmp_path: Path):
    page = tmp_path / "mini.zip"
    page.write_text("<html>Service Unavailable</html>")
    with pytest.raises(DownloadError, match="not a zip or tar archive"):
        extract(page, tmp_path / "out")


# ------------------------------------------------------------------ catalog: prepare, mirrors, CLI

def png_bytes(width: int, height: int, seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_catalog_prepare_downloads_from_a_mirror_and_splits_paired_images(server, tmp_path: Path, monkeypatch):
    from translate.data.catalog import MIRROR_ENV, prepare

    www, url = server
    make_zip(www / "horse2zebra.zip", {f"horse2zebra/{s}/{i}.png": png_bytes(8, 8, i)
                                       for s in ("trainA", "trainB", "testA") for i in range(2)})
    for pairs in ("edges2shoes", "edges2handbags"):
        with tarfile.open(www / f"{pairs}.tar.gz", "w:gz") as tf:
            for split, n in (("train", 3), ("val", 1)):
                for i in range(n):
                    data = png_bytes(16, 8, i)  # [edges | photo], 8x8 each
                    info = tarfile.TarInfo(f"{pairs}/{split}/{i}_AB.jpg")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
            data = png_bytes(16, 8, 9)  # same stem as 0_AB.jpg: both must survive the split (issue 21)
            info = tarfile.TarInfo(f"{pairs}/train/0_AB.png")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    monkeypatch.setenv(MIRROR_ENV, url)
    root = tmp_path / "datasets"
    folder = prepare("horse2zebra", root, log=lambda msg: None)
    assert sorted(p.name for p in folder.iterdir()) == ["testA", "trainA", "trainB"]
    assert sorted(p.name for p in root.iterdir()) == [".downloads", "horse2zebra"]
    assert not list((root / ".downloads").iterdir())  # the archive is removed once unpacked
    shoes = prepare("edges2shoes", root, log=lambda msg: None)
    from PIL import Image

    assert len(list((shoes / "trainA").iterdir())) == 4 and len(list((shoes / "testB").iterdir())) == 1
    assert Image.open(shoes / "trainA" / "0_AB.png").size == (8, 8)  # the left half
    # 0_AB.png keeps its name, 0_AB.jpg keeps its suffix in its name: neither overwrites the other
    assert (shoes / "trainA" / "0_AB.jpg.png").read_bytes() != (shoes / "trainA" / "0_AB.png").read_bytes()
    both = prepare("handbags2shoes", root, log=lambda msg: None)  # DiscoGAN's photo <-> photo pair
    assert (both / "trainA" / "0_AB.png").resolve() == (root / "edges2handbags" / "trainB" / "0_AB.png").resolve()
    assert (both / "testB" / "0_AB.png").resolve() == (shoes / "testB" / "0_AB.png").resolve()


def test_fit_downloads_a_catalog_dataset_and_offline_explains(server, tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from translate.cli import app
    from translate.data.catalog import MIRROR_ENV

    www, url = server
    make_zip(www / "apple2orange.zip", {f"apple2orange/{s}/{i}.png": png_bytes(40, 40, i)
                                        for s in ("trainA", "trainB") for i in range(2)})
    monkeypatch.setenv(MIRROR_ENV, url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    args = ["--max-steps", "1", "--image-size", "32", "--set", "model.generator.ngf=4", "--set",
            "model.discriminator.ndf=4", "--set", "model.generator.n_blocks=1", "--set", "data.num_workers=0"]
    result = runner.invoke(app, ["fit", "apple2orange", *args])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "datasets" / "apple2orange" / "trainA" / "0.png").is_file()
    monkeypatch.setenv(MIRROR_ENV, "http://127.0.0.1:9/offline")  # nothing listens on the discard port
    result = runner.invoke(app, ["datasets", "download", "maps"])
    assert result.exit_code != 0 and "Download http://127.0.0.1:9/offline/maps.zip by hand" in result.output
    result = runner.invoke(app, ["datasets", "download", "celeba"])
    assert result.exit_code != 0 and "list_attr_celeba.txt" in result.output


def test_download_refuses_when_the_disk_is_too_small(server, tmp_path: Path, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    root, url = server
    make_zip(root / "mini.zip", DATASET)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(DownloadError, match="not enough disk space"):
        download(f"{url}/mini.zip", tmp_path / "mini.zip", retries=0)
    assert not (tmp_path / "mini.zip").exists()


def test_celeba_is_split_by_any_attribute_without_copying(tmp_path: Path):
    from translate.data.catalog import prepare
    from translate.errors import DataError

    root = tmp_path / "datasets"
    images = root / "celeba" / "img_align_celeba"
    images.mkdir(parents=True)
    rows = {"000001.jpg": (1, -1), "000002.jpg": (-1, 1), "000003.jpg": (1, 1), "000004.jpg": (-1, -1),
            "000005.jpg": (1, -1)}
    for name in list(rows)[:-1]:  # 000005.jpg is listed but missing
        (images / name).write_bytes(png_bytes(8, 8, int(name[:6])))
    text = f"{len(rows)}\nEyeglasses Smiling\n" + "".join(f"{n} {a:2d} {b:2d}\n" for n, (a, b) in rows.items())
    (root / "celeba" / "list_attr_celeba.txt").write_text(text)
    (root / "celeba" / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n000004.jpg 0\n")
    messages = []
    folder = prepare("celeba-Eyeglasses", root, log=messages.append)
    assert sorted(p.name for p in (folder / "trainA").iterdir()) == ["000001.jpg"]
    assert sorted(p.name for p in (folder / "testA").iterdir()) == ["000003.jpg"]
    assert sorted(p.name for p in (folder / "trainB").iterdir()) == ["000002.jpg", "000004.jpg"]
    assert (folder / "trainA" / "000001.jpg").is_symlink()
    assert (folder / "trainA" / "000001.jpg").read_bytes() == (images / "000001.jpg").read_bytes()
    assert "1 images listed" in messages[0]
    with pytest.raises(DataError, match="did you mean Eyeglasses"):
        prepare("celeba-Eyeglases", root)
    with pytest.raises(DataError, match="img_align_celeba"):
        prepare("celeba-Smiling", tmp_path / "elsewhere")


# ------------------------------------------------------------------ incomplete, bad and oversized archives

def random_bytes(n: int, seed: int) -> bytes:
    import random

    return random.Random(seed).randbytes(n)


def make_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("mode", ["short_length", "close_early"])
@pytest.mark.parametrize("name", ["mini.zip", "mini.tar.gz"])
def test_a_short_download_is_not_taken_for_a_complete_archive(server, tmp_path: Path, monkeypatch, mode, name):
    root, url = server
    files = {"mini/trainA/a.png": random_bytes(60_000, 1), "mini/trainB/b.png": random_bytes(60_000, 2)}
    archive = make_zip(root / name, files) if name.endswith(".zip") else make_tar(root / name, files)
    monkeypatch.setattr(Handler, mode, {f"/{name}"})
    with pytest.raises(DownloadError, match=r"incomplete archive .*truncated download or an HTML page.*moved to"):
        download(f"{url}/{name}", tmp_path / name, retries=0)
    assert not (tmp_path / name).exists() and not (tmp_path / f"{name}.part").exists()
    assert (tmp_path / f"{name}.bad").stat().st_size == archive.stat().st_size // 2
    monkeypatch.setattr(Handler, mode, set())  # the server behaves again: the next try downloads afresh
    assert download(f"{url}/{name}", tmp_path / name).read_bytes() == archive.read_bytes()


def test_archive_check_sees_cuts_that_tarfile_itself_accepts(tmp_path: Path):
    from translate.data.download import archive_problem

    files = {"mini/trainA/a.png": random_bytes(3000, 1), "mini/trainB/b.png": random_bytes(3000, 2)}
    data = make_tar(tmp_path / "whole.tar", files, "w").read_bytes()
    cut = tmp_path / "cut.tar"  # cut at the second member's header: tarfile just sees a shorter archive
    cut.write_bytes(data[: 512 + 3072])
    assert len(tarfile.open(cut).getmembers()) == 1
    assert archive_problem(cut) == "no end-of-archive block"
    gz = make_tar(tmp_path / "whole.tar.gz", files)
    assert archive_problem(gz) is None and archive_problem(tmp_path / "whole.tar") is None
    cut.write_bytes(gz.read_bytes()[:-4])  # every member intact, only gzip's length trailer missing
    assert "end-of-stream" in archive_problem(cut)


def test_a_bad_cached_archive_is_moved_aside_and_downloaded_again(server, tmp_path: Path, monkeypatch):
    from translate.data.catalog import MIRROR_ENV, prepare

    www, url = server
    monkeypatch.setenv(MIRROR_ENV, url)
    root = tmp_path / "datasets"
    cached = root / ".downloads" / "horse2zebra.zip"
    cached.parent.mkdir(parents=True)
    cached.write_text("<html>Service Unavailable</html>")  # what an older version let through
    with pytest.raises(DownloadError) as err:
        prepare("horse2zebra", root, log=lambda msg: None)
    message = str(err.value)
    assert "not a zip or tar archive" in message and f"moved it to {cached}.bad" in message
    assert "next attempt downloads it again" in message and "\n" not in message
    assert not cached.exists() and (root / ".downloads" / "horse2zebra.zip.bad").is_file()
    make_zip(www / "horse2zebra.zip", {"horse2zebra/testA/0.png": png_bytes(8, 8, 0)})  # no trainA/trainB
    with pytest.raises(DownloadError, match="does not contain trainA/ and trainB/.*moved it to"):
        prepare("horse2zebra", root, log=lambda msg: None)
    assert (root / ".downloads" / "horse2zebra.zip.bad").read_bytes() == (www / "horse2zebra.zip").read_bytes()
    make_zip(www / "horse2zebra.zip", {f"horse2zebra/{s}/0.png": png_bytes(8, 8, 0) for s in ("trainA", "trainB")})
    folder = prepare("horse2zebra", root, log=lambda msg: None)  # downloaded afresh, not the bad file again
    assert (folder / "trainB" / "0.png").is_file() and not cached.exists()


def usage_with_free(free: int):
    from collections import namedtuple

    return lambda path: namedtuple("usage", "total used free")(10**12, 10**12 - free, free)


@pytest.mark.parametrize("name", ["bomb.tar.gz", "bomb.zip"])
def test_a_decompression_bomb_stops_for_disk_space_not_corruption(tmp_path: Path, monkeypatch, name):
    import shutil as shutil_module

    from translate.data.download import RESERVE, DiskSpaceError

    files = {"bomb/trainA/zeros.png": bytes(4 << 20), "bomb/trainB/zeros.png": bytes(4 << 20)}
    archive = (make_zip if name.endswith(".zip") else make_tar)(tmp_path / name, files)
    if name.endswith(".zip"):  # writestr stores; recompress so the archive is small and its content large
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for member, data in files.items():
                zf.writestr(member, data)
    assert archive.stat().st_size < 100_000
    (tmp_path / "datasets").mkdir()
    monkeypatch.setattr(shutil_module, "disk_usage", usage_with_free(RESERVE + (1 << 20)))
    with pytest.raises(DiskSpaceError, match="not enough disk space to extract") as err:
        extract(archive, tmp_path / "datasets" / "bomb")
    assert "corrupt" not in str(err.value) and "0.01 GB needed" in str(err.value)
    assert not list((tmp_path / "datasets").iterdir())


def test_extraction_counts_what_it_writes_not_just_what_is_declared(tmp_path: Path, monkeypatch):
    import shutil as shutil_module

    from translate.data import download as module

    archive = make_tar(tmp_path / "bomb.tar.gz", {"bomb/trainA/zeros.png": bytes(3 << 20)})
    (tmp_path / "datasets").mkdir()
    monkeypatch.setattr(module, "_tar_plan", lambda tf: 0)  # as if the headers under-declared the sizes
    monkeypatch.setattr(shutil_module, "disk_usage", usage_with_free(module.RESERVE + (1 << 20)))
    with pytest.raises(module.DiskSpaceError, match="not enough disk space to extract bomb.tar.gz: it unpacks to more"):
        extract(archive, tmp_path / "datasets" / "bomb")
    assert not list((tmp_path / "datasets").iterdir())  # the staging folder is gone too


# ------------------------------------------------------------------ slow servers

def test_a_dripping_server_is_a_stall_and_the_next_try_resumes(server, tmp_path: Path, monkeypatch):
    root, url = server
    archive = make_zip(root / "mini.zip", {"mini/trainA/a.png": random_bytes(50_000, 3)})
    monkeypatch.setattr(Handler, "drip", {"/mini.zip"})
    monkeypatch.setattr(Handler, "ranges", [])
    with pytest.raises(DownloadError, match=r"after 1 attempt \(the server stalled: .*partial file .* is kept"):
        download(f"{url}/mini.zip", tmp_path / "mini.zip", retries=0, stall_seconds=0.5, stall_bytes=1000)
    have = (tmp_path / "mini.zip.part").stat().st_size
    assert 1000 <= have < archive.stat().st_size
    monkeypatch.setattr(Handler, "drip", set())
    assert download(f"{url}/mini.zip", tmp_path / "mini.zip").read_bytes() == archive.read_bytes()
    assert Handler.ranges == [f"bytes={have}-"]


def test_a_deadline_bounds_a_slow_download(server, tmp_path: Path, monkeypatch):
    root, url = server
    make_zip(root / "mini.zip", {"mini/trainA/a.png": random_bytes(50_000, 3)})
    monkeypatch.setattr(Handler, "drip", {"/mini.zip"})
    with pytest.raises(DownloadError, match="not done within the 0.3 s deadline"):
        download(f"{url}/mini.zip", tmp_path / "mini.zip", retries=3, backoff=0.01, deadline=0.3)


# ------------------------------------------------------------------ catalog messages and leftovers

def test_disk_space_failures_say_so_without_the_offline_hint(server, tmp_path: Path, monkeypatch):
    import shutil as shutil_module

    from translate.data.catalog import MIRROR_ENV, prepare
    from translate.data.download import DiskSpaceError

    www, url = server
    monkeypatch.setenv(MIRROR_ENV, url)
    make_zip(www / "horse2zebra.zip", {f"horse2zebra/{s}/0.png": png_bytes(8, 8, 0) for s in ("trainA", "trainB")})
    root = tmp_path / "datasets"
    real_usage = shutil_module.disk_usage
    monkeypatch.setattr(shutil_module, "disk_usage", usage_with_free(100))
    with pytest.raises(DiskSpaceError, match="not enough disk space for horse2zebra.zip.*Free some space") as err:
        prepare("horse2zebra", root, log=lambda msg: None)
    assert "Offline" not in str(err.value) and "by hand" not in str(err.value)
    monkeypatch.setattr(shutil_module, "disk_usage", real_usage)
    download(f"{url}/horse2zebra.zip", root / ".downloads" / "horse2zebra.zip")
    monkeypatch.setattr(shutil_module, "disk_usage", usage_with_free(100))
    with pytest.raises(DiskSpaceError, match="not enough disk space to extract.*is kept") as err:
        prepare("horse2zebra", root, log=lambda msg: None)  # a good archive and a full disk: keep the archive
    assert "Offline" not in str(err.value) and (root / ".downloads" / "horse2zebra.zip").is_file()
    assert not (root / ".downloads" / "horse2zebra.zip.bad").exists()


def test_an_incomplete_folder_moved_aside_is_reported_and_only_the_newest_copy_kept(server, tmp_path: Path,
                                                                                  monkeypatch):
    import os

    from translate.data.catalog import MIRROR_ENV, prepare

    www, url = server
    monkeypatch.setenv(MIRROR_ENV, url)
    make_zip(www / "horse2zebra.zip", {f"horse2zebra/{s}/0.png": png_bytes(8, 8, 0) for s in ("trainA", "trainB")})
    root = tmp_path / "datasets"
    (root / "horse2zebra" / "trainA").mkdir(parents=True)
    (root / "horse2zebra" / "trainA" / "mine.png").write_bytes(b"x")  # an earlier, interrupted attempt
    for pid in (111, 222):  # what older versions left, never mentioned
        (root / f".horse2zebra.incomplete-{pid}").mkdir()
    messages: list[str] = []
    prepare("horse2zebra", root, log=messages.append)
    aside = root / f".horse2zebra.incomplete-{os.getpid()}"
    assert sorted(p.name for p in root.glob(".horse2zebra.incomplete-*")) == [aside.name]
    assert (aside / "trainA" / "mine.png").read_bytes() == b"x"
    assert sum("removed" in m and "older incomplete copy" in m for m in messages) == 2
    assert any(f"moved it aside to {aside}" in m for m in messages)
    import shutil

    shutil.rmtree(root / "horse2zebra" / "trainB")  # incomplete again: the new copy replaces the old one
    messages.clear()
    prepare("horse2zebra", root, log=messages.append)
    assert sorted(p.name for p in root.glob(".horse2zebra.incomplete-*")) == [aside.name]
    assert not (aside / "trainB").exists() and (aside / "trainA" / "0.png").is_file()
    assert any("moved it aside" in m for m in messages)

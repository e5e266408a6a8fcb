from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import make_domain
from translate.data.datamodule import UnpairedDataModule, load_samples
from translate.data.names import resolve_dataset
from translate.data.transforms import eval_transform, reseed, to_model_range, to_uint8, train_transform
from translate.data.unpaired import UnpairedDataset, UnpairedSampler
from translate.config import DataConfig
from translate.errors import DataError


def test_sampler_is_replayable_and_changes_with_epoch():
    s = UnpairedSampler(5, 7, seed=3)
    s.set_epoch(1)
    first = list(s)
    again = UnpairedSampler(5, 7, seed=3)
    again.set_epoch(1)
    assert list(again) == first  # same seed and epoch: same pairs and augmentation seeds
    s.set_epoch(2)
    assert list(s) != first
    assert len(first) == 7  # epoch = max(|A|, |B|)
    counts = Counter(a for a, _, _ in first)
    assert set(counts) == set(range(5)) and max(counts.values()) <= 2  # every A image, none starved
    assert all(0 <= b < 7 for _, b, _ in first)


def test_sampler_shards_across_ranks_without_overlap():
    full = UnpairedSampler(10, 4, seed=0).keys()
    shards = [UnpairedSampler(10, 4, seed=0, num_replicas=3, rank=r).keys() for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert set().union(*map(set, shards)) == set(full)


def test_train_transform_is_a_function_of_the_seed():
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    t = train_transform(36, 32, flip=True)
    outs = []
    for seed in (1, 1, 2, 3, 4, 5):
        reseed(t, seed)
        outs.append(t(image=image)["image"])
    assert outs[0].shape == (32, 32, 3) and outs[0].dtype == np.uint8
    assert np.array_equal(outs[0], outs[1])
    assert any(not np.array_equal(outs[0], o) for o in outs[2:])


def test_eval_transform_resizes_without_randomness():
    image = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    t = eval_transform(32)
    assert np.array_equal(t(image=image)["image"], t(image=image)["image"])
    assert t(image=image)["image"].shape == (32, 32, 3)


def test_model_range_roundtrip():
    x = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    y = to_model_range(x)
    assert y.min() == -1 and y.max() == 1
    assert torch.equal(to_uint8(y), x)


def test_dataset_items_and_bad_files_are_skipped(tmp_path: Path, caplog):
    make_domain(tmp_path / "A", 3, seed=0)
    make_domain(tmp_path / "B", 2, seed=1)
    (tmp_path / "A" / "000.png").write_bytes(b"")  # empty: dropped when the dataset is built
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "A" / "0001.png")  # too small: dropped too
    good = (tmp_path / "A" / "001.png").read_bytes()
    (tmp_path / "A" / "001.png").write_bytes(good[: len(good) // 2])  # truncated: found while decoding
    ds = UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32))
    assert [p.name for p in ds.files_a] == ["001.png", "002.png"]
    assert sorted(e.why for e in ds.skipped) == ["empty file", "image too small (1x1)"]
    item = ds[(0, 1, 123)]  # A index 0 is the truncated file: the next A image is used instead
    assert item["A"].shape == (3, 32, 32) and item["A"].dtype == torch.uint8
    assert torch.equal(item["A"], ds[(1, 1, 123)]["A"])
    assert any("001.png" in r.message for r in caplog.records)


@pytest.mark.parametrize("setup, match", [
    (lambda p: None, "dataset not found"),
    (lambda p: (p / "trainA").mkdir(parents=True), "missing trainB"),
    (lambda p: p.mkdir(), "missing trainA and trainB"),
])
def test_resolve_dataset_errors(tmp_path: Path, setup, match):
    target = tmp_path / "ds"
    setup(target)
    with pytest.raises(DataError, match=match):
        resolve_dataset(str(target), tmp_path)


def test_empty_or_unreadable_domain_is_a_data_error(tmp_path: Path):
    make_domain(tmp_path / "trainA", 2, seed=0)
    (tmp_path / "trainB").mkdir()
    with pytest.raises(DataError, match="trainB: no images"):
        UnpairedDataset(tmp_path / "trainA", tmp_path / "trainB", train_transform(36, 32))
    (tmp_path / "trainB" / "x.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"no readable images \(1 unreadable\)"):
        UnpairedDataset(tmp_path / "trainA", tmp_path / "trainB", train_transform(36, 32))


def test_builtin_name_resolves_by_generating(tmp_path: Path):
    root = resolve_dataset("shapes", tmp_path)
    assert (root / "trainA").is_dir() and any((root / "testB").iterdir())


def test_datamodule_yields_uint8_batches_and_samples(unpaired: Path):
    dm = UnpairedDataModule(DataConfig(dataset=str(unpaired), load_size=36, crop_size=32, batch_size=2,
                                       num_workers=0, n_samples=3), seed=0)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (2, 3, 32, 32) and batch["B"].dtype == torch.uint8
    a, b = dm.sample_images()
    assert a.shape == (2, 3, 32, 32)  # testA holds only 2 images
    assert torch.equal(a, load_samples(unpaired / "testA", 3, 32))


def _truncate_all(folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 3])  # the header (size) still reads; the pixels do not


def test_domain_whose_images_all_fail_to_decode_is_refused_when_built(tmp_path: Path):
    make_domain(tmp_path / "A", 3, seed=0)
    make_domain(tmp_path / "B", 2, seed=1)
    _truncate_all(tmp_path / "A")
    with pytest.raises(DataError, match=r"none of the 3 images could be decoded") as err:
        UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32))
    assert err.value.path == tmp_path / "A"


def test_healthy_domain_costs_one_decode(tmp_path: Path, monkeypatch):
    from translate.data import unpaired

    make_domain(tmp_path / "A", 4, seed=0)
    make_domain(tmp_path / "B", 3, seed=1)
    decoded = []
    real = unpaired.read_image
    monkeypatch.setattr(unpaired, "read_image", lambda path: decoded.append(path) or real(path))
    UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32))
    assert [p.parent.name for p in decoded] == ["A", "B"]


def test_fit_on_undecodable_domain_is_one_line_naming_the_folder(tiny_config: Path, unpaired: Path):
    from typer.testing import CliRunner

    from translate.cli import app

    _truncate_all(unpaired / "trainA")
    # with a DataLoader worker, as users train: a failure there used to surface as the worker's traceback
    result = CliRunner().invoke(app, ["fit", str(tiny_config), "--max-steps", "1", "--set", "data.num_workers=1"])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # handled, not raised
    assert str(unpaired / "trainA") in result.output and "could be decoded" in result.output
    assert "Traceback" not in result.output


def test_a_domain_names_the_files_it_leaves_out(tmp_path: Path):
    from translate.data.unpaired import scan_domain

    folder = tmp_path / "trainA"
    folder.mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "ok.png")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    (folder / "raw.cr2").write_bytes(b"x")
    good, bad = scan_domain(folder)
    assert good == [folder / "ok.png"]
    reasons = {err.path.name: err.why for err in bad}
    assert reasons["gone.png"] == f"broken symbolic link (to {folder / 'deleted.png'})" and "camera raw" in reasons["raw.cr2"]


def test_max_images_trains_on_a_seeded_subset_and_keeps_the_holdout(tmp_path: Path):
    make_domain(tmp_path / "A", 10, seed=0)
    make_domain(tmp_path / "B", 6, seed=1)
    full = UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32), holdout_a=0.2, seed=4)
    small = UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32), holdout_a=0.2, seed=4,
                            max_images=4)
    again = UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32), holdout_a=0.2, seed=4,
                            max_images=4)
    assert small.held_a == full.held_a  # the same images stay out of training
    assert len(small.files_a) == len(small.files_b) == 4 and set(small.files_a) < set(full.files_a)
    assert small.files_a == again.files_a and small.files_a == sorted(small.files_a)
    assert len(UnpairedDataset(tmp_path / "A", tmp_path / "B", train_transform(36, 32), max_images=50).files_a) == 10

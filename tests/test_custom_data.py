"""Users' own folders: unequal domains, broken files, no test split (held out), --a/--b, --init fine-tuning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from conftest import TINY, make_domain
from translate.cli import app
from translate.config import merge, resolve
from translate.data.unpaired import split_holdout
from translate.errors import CheckpointError
from translate.models import build_model
from translate.train import load_init

runner = CliRunner()
TINY_FLAGS = ["--set", "model.generator.ngf=4", "--set", "model.generator.n_blocks=1", "--set",
              "model.discriminator.ndf=4", "--set", "model.discriminator.n_layers=2", "--set", "data.num_workers=0",
              "--image-size", "32", "--out-dir", "runs", "--set", "train.sample_every_n_steps=1"]


def test_split_holdout_is_seeded_disjoint_and_never_takes_everything():
    files = [Path(f"{i:03d}.png") for i in range(40)]
    kept, held = split_holdout(files, 0.1, seed=3)
    assert len(held) == 4 and set(kept).isdisjoint(held) and sorted(kept + held) == files
    assert split_holdout(files, 0.1, seed=3) == (kept, held) and split_holdout(files, 0.1, seed=4)[1] != held
    assert split_holdout(files[:3], 0.01, 0)[1] and len(split_holdout(files[:2], 0.9, 0)[0]) == 1
    assert split_holdout(files[:1], 0.5, 0) == (files[:1], []) and split_holdout(files, 0.0, 0) == (files, [])


def test_messy_folder_trains_reports_skipped_files_and_holds_out_test_images(tmp_path: Path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "mine"
    make_domain(data / "trainA", 9, seed=0)
    make_domain(data / "trainB", 3, seed=1)  # unequal domains
    (data / "trainA" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    (data / "trainB" / "empty.png").write_bytes(b"")
    with caplog.at_level(logging.INFO):
        result = runner.invoke(app, ["fit", str(data), "--max-steps", "2", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "broken.jpg" in messages and "empty.png" in messages  # skipped, and said so
    assert "domain A has no test folder: 1 of its images are held out" in messages
    assert (tmp_path / "runs" / "mine" / "samples" / "latest.png").is_file()


def test_two_plain_folders_with_a_and_b(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_domain(tmp_path / "horses", 3, seed=0)
    make_domain(tmp_path / "zebras", 4, seed=1)
    result = runner.invoke(app, ["fit", "--a", "horses", "--b", "zebras", "--max-steps", "1", *TINY_FLAGS])
    assert result.exit_code == 0, result.output
    cfg = yaml.safe_load((tmp_path / "runs" / "horses2zebras" / "config.yaml").read_text())
    assert (cfg["data"]["dir_a"], cfg["data"]["dir_b"]) == ("horses", "zebras")
    result = runner.invoke(app, ["fit", "--a", "horses", "--max-steps", "1", *TINY_FLAGS])
    assert result.exit_code != 0 and "give both" in result.output
    result = runner.invoke(app, ["fit", "--a", "horses", "--b", "nowhere", *TINY_FLAGS])
    assert result.exit_code != 0 and "nowhere" in result.output and "Traceback" not in result.output


def test_init_fine_tunes_from_a_checkpoint_and_checks_the_architecture(tiny_config: Path, tmp_path: Path):
    base = runner.invoke(app, ["fit", str(tiny_config), "--name", "base", "--max-steps", "2"])
    assert base.exit_code == 0, base.output
    ckpt = tmp_path / "runs" / "base" / "last.ckpt"
    cfg = resolve(merge(TINY, {"train": {"seed": 123}}))
    model = build_model(cfg)
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert not all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    load_init(model, ckpt)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())  # every net's weights

    tuned = runner.invoke(app, ["fit", str(tiny_config), "--name", "tuned", "--max-steps", "1", "--init", str(ckpt)])
    assert tuned.exit_code == 0, tuned.output
    after = torch.load(tmp_path / "runs" / "tuned" / "last.ckpt", map_location="cpu", weights_only=True)
    assert after["optimizer_states"][0]["state"][0]["step"] == 1  # a fresh optimizer, not the base run's
    assert after["translate"]["config"]["train"]["init"] == str(ckpt)

    wrong = runner.invoke(app, ["fit", str(tiny_config), "--name", "w", "--init", str(ckpt),
                                "--set", "model.generator.ngf=8"])
    assert wrong.exit_code != 0 and "architecture must match" in wrong.output
    with pytest.raises(CheckpointError, match="cannot initialise a discogan"):
        load_init(build_model(resolve({"model": {"name": "discogan", "generator": {"ngf": 4},
                                                        "discriminator": {"ndf": 4}}})), ckpt)


def test_init_on_a_folder_takes_the_checkpoints_recipe_and_explicit_settings_win(tmp_path: Path, monkeypatch):
    """`fit DIR --init RUN/last.ckpt` fine-tunes that run's model, losses, schedule and sizes on DIR: a U-Net
    run with EMA needs none of its settings repeated. Not its data, budget or name; --set still wins."""
    monkeypatch.chdir(tmp_path)
    make_domain(tmp_path / "old" / "trainA", 3, seed=0)
    make_domain(tmp_path / "old" / "trainB", 3, seed=1)
    make_domain(tmp_path / "mine" / "trainA", 4, seed=2)
    make_domain(tmp_path / "mine" / "trainB", 4, seed=3)
    unet = ["--set", "model.generator.arch=unet", "--set", "model.generator.num_downs=5", "--set",
            "model.generator.ngf=4", "--set", "model.discriminator.ndf=4", "--set", "model.discriminator.n_layers=2",
            "--set", "data.num_workers=0", "--image-size", "32", "--out-dir", "runs", "--set", "losses.lambda_identity=2",
            "--set", "train.ema=true", "--set", "optim.n_epochs=7", "--set", "data.max_images=2"]
    base = runner.invoke(app, ["fit", "old", "--name", "base", "--max-steps", "2", *unet])
    assert base.exit_code == 0, base.output
    ckpt = tmp_path / "runs" / "base" / "last.ckpt"

    tuned = runner.invoke(app, ["fit", "mine", "--init", str(ckpt), "--max-steps", "1", "--out-dir", "runs",
                                "--set", "data.num_workers=0", "--set", "losses.lambda_cycle=3"])
    assert tuned.exit_code == 0, tuned.output
    cfg = yaml.safe_load((tmp_path / "runs" / "mine" / "config.yaml").read_text())
    assert cfg["model"]["generator"]["arch"] == "unet" and cfg["model"]["generator"]["ngf"] == 4
    assert (cfg["data"]["crop_size"], cfg["optim"]["n_epochs"], cfg["train"]["ema"]) == (32, 7, True)
    assert cfg["losses"]["lambda_identity"] == 2 and cfg["losses"]["lambda_cycle"] == 3  # --set wins
    assert cfg["data"]["dataset"] == "mine" and cfg["data"]["max_images"] == 0  # the new data, all of it
    assert cfg["train"]["max_steps"] == 1 and cfg["train"]["init"] == str(ckpt)
    after = torch.load(tmp_path / "runs" / "mine" / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.startswith("ema.") for k in after["state_dict"])
    # train.augment=auto: fine-tuning on 4 images per domain turns DiffAugment's translation on; the base run
    # (no --init) ran without; an explicit choice wins.
    assert (cfg["train"]["augment"], cfg["train"]["augment_policy"]) == ("diffaugment", "translation")
    assert yaml.safe_load((tmp_path / "runs" / "base" / "config.yaml").read_text())["train"]["augment"] == "none"
    off = runner.invoke(app, ["fit", "mine", "--init", str(ckpt), "--max-steps", "1", "--out-dir", "runs", "--name",
                              "off", "--set", "data.num_workers=0", "--set", "train.augment=none"])
    assert off.exit_code == 0, off.output
    assert yaml.safe_load((tmp_path / "runs" / "off" / "config.yaml").read_text())["train"]["augment"] == "none"

    # A preset or a config file names its own model: the checkpoint must fit it, as before.
    other = runner.invoke(app, ["fit", "stripes", "--init", str(ckpt), "--dry-run"])
    assert other.exit_code == 0 and "arch: unet" in other.output and "ngf: 32" in other.output


def test_datasets_inspect_and_list_report_what_is_on_disk(tmp_path: Path):
    import numpy as np
    from PIL import Image

    data = tmp_path / "datasets" / "mine"
    make_domain(data / "trainA", 3, seed=0, size=40)  # 40x44 RGB
    make_domain(data / "trainB", 2, seed=1, size=20)
    Image.new("L", (30, 30)).save(data / "trainB" / "gray.png")
    (data / "trainB" / "broken.jpg").write_bytes(b"not a jpeg")
    noise = np.random.default_rng(2).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    Image.fromarray(noise).save(data / "trainA" / "cut.jpg", quality=95)
    whole = (data / "trainA" / "cut.jpg").read_bytes()
    (data / "trainA" / "cut.jpg").write_bytes(whole[: len(whole) // 2])  # the header survives, the pixels don't
    result = runner.invoke(app, ["datasets", "inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "trainA: 4 images; sizes 44x40 .. 44x40 (median 44x40); modes RGB 3\n" in result.output
    assert "unreadable: trainA/cut.jpg: truncated" in result.output
    assert "trainB: 4 images; sizes 24x20 .. 30x30" in result.output and "modes RGB 2, L 1" in result.output
    assert "unreadable: trainB/broken.jpg: not an image" in result.output
    assert "2 unreadable files will be skipped" in result.output
    listed = runner.invoke(app, ["datasets", "list", "--root", str(tmp_path / "datasets")])
    assert listed.exit_code == 0 and "horse2zebra" in listed.output and "edges2handbags and" in listed.output
    plain = runner.invoke(app, ["datasets", "inspect", str(data / "trainB")])  # a folder for --a/--b
    assert plain.exit_code == 0 and plain.output.startswith("trainB: 4 images") and "broken.jpg" in plain.output
    missing = runner.invoke(app, ["datasets", "inspect", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "folder not found" in missing.output


def test_augment_auto_decides_by_the_folder_size(tmp_path: Path, monkeypatch):
    from translate import train

    make_domain(tmp_path / "d" / "trainA", 3, seed=0)
    make_domain(tmp_path / "d" / "trainB", 5, seed=1)
    folders = (tmp_path / "d" / "trainA", tmp_path / "d" / "trainB")

    def decided(**train_keys):
        cfg = resolve({"data": {"dataset": str(tmp_path / "d")}, "train": train_keys})
        t = train.concrete_augment(cfg, folders).train
        return t.augment, t.augment_policy
    assert decided() == ("none", "color,translation,cutout")  # training from scratch: the recipe
    assert decided(init="x.ckpt") == ("diffaugment", "translation")
    monkeypatch.setattr(train, "AUGMENT_AUTO", 2)  # the smaller domain (3) is above it
    assert decided(init="x.ckpt") == ("none", "color,translation,cutout")
    assert decided(init="x.ckpt", augment="diffaugment")[0] == "diffaugment"
    genegan = resolve({"model": {"name": "genegan"}, "data": {"dataset": str(tmp_path / "d")}, "train": {"init": "x"}})
    monkeypatch.setattr(train, "AUGMENT_AUTO", 100)
    assert train.concrete_augment(genegan, folders).train.augment == "none"

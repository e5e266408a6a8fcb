"""GeneGAN: nets against the authors' layer list, the objective's terms, the critic schedule, swap and
interpolation (library and CLI), and the built-in faces."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from conftest import TINY, make_unpaired
from translate.cli import app
from translate.config import resolve
from translate.data.faces import render_face, sample_face
from translate.errors import TranslateError
from translate.losses import ADVERSARIAL
from translate.models.genegan import GeneGAN
from translate.nets.genegan import GeneDiscriminator, GeneGenerator
from translate.swap import bilinear_weights, interpolate, load_genegan, matrix, read_face, swap

runner = CliRunner()


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_nets_match_the_authors_layers_and_split_the_code():
    g = GeneGenerator(ngf=128)
    # encoder 3->128->256->512 (4x4, no bias, BN on the last two), decoder 512->512->256->3 (+ bias)
    assert count(g.encoder) == 3 * 128 * 16 + 128 * 256 * 16 + 2 * 256 + 256 * 512 * 16 + 2 * 512 == 2_629_120
    assert count(g.decoder) == 512 * 512 * 16 + 2 * 512 + 512 * 256 * 16 + 2 * 256 + 256 * 3 * 16 + 3 == 6_305_283
    assert count(GeneDiscriminator(ndf=128, image_size=64)) == 6_832_641  # "about 6.8 M" each
    background, obj = g.split(torch.randn(2, 3, 64, 64))
    assert background.shape == (2, 384, 8, 8) and obj.shape == (2, 128, 8, 8)  # the last 25 % is the object
    assert g.join(background, obj).shape == (2, 3, 64, 64)
    assert GeneDiscriminator(ndf=8, image_size=32)(torch.randn(3, 3, 32, 32)).shape == (3, 1, 1, 1)


def tiny_cfg(tmp_path: Path, unpaired: Path, **losses) -> dict:
    cfg = {**TINY, "model": {"name": "genegan", "generator": {"ngf": 8}, "discriminator": {"ndf": 8}},
           "losses": losses, "data": {**TINY["data"], "dataset": str(unpaired), "load_size": 32, "batch_size": 2},
           "train": {**TINY["train"], "out_dir": str(tmp_path / "runs")}}
    return cfg


def test_nulling_is_zero_for_a_zero_object_part(tmp_path: Path, unpaired: Path):
    model = GeneGAN(resolve(tiny_cfg(tmp_path, unpaired)))
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    assert model.generator_terms(a, b)["nulling"] > 0
    bn = model.g.encoder[-2]  # the last batch norm; LeakyReLU(0) = 0, so its zeroed channels give a zero code
    with torch.no_grad():
        bn.weight[-model.g.object_channels:] = 0
        bn.bias[-model.g.object_channels:] = 0
    terms = model.generator_terms(a, b)
    assert terms["nulling"] == 0 and set(terms) == {"recon_a", "recon_b", "nulling", "parallelogram", "adv_a", "adv_b"}
    with_reproduction = GeneGAN(resolve(tiny_cfg(tmp_path, unpaired, lambda_reproduction=1.0)))
    assert with_reproduction.generator_terms(a, b)["reproduction"] > 0


def test_critic_schedule_bursts_then_alternates():
    model = GeneGAN(resolve({"model": {"name": "genegan", "generator": {"ngf": 4}, "discriminator": {"ndf": 4}},
                             "losses": {"critic_burst": 5, "critic_burst_every": 3}}))
    pattern = "".join("D" if model.is_critic_batch(i) else "G" for i in range(2 * (5 + 1 + 2 * 2)))
    assert pattern == "DDDDDG" "DG" "DG" "DDDDDG" "DG" "DG"
    recipe = GeneGAN(resolve({"model": {"name": "genegan", "generator": {"ngf": 4}, "discriminator": {"ndf": 4}}}))
    critic = [recipe.is_critic_batch(i) for i in range(2 * 1099)]
    assert critic[:101] == [True] * 100 + [False] and sum(critic) == 2 * (100 + 499)  # the authors' 100 / 500


@pytest.mark.parametrize("objective", sorted(ADVERSARIAL))
def test_every_objective_trains_a_step_with_finite_losses(tmp_path: Path, unpaired: Path, objective: str):
    cfg = tiny_cfg(tmp_path, unpaired, adversarial=objective, critic_burst=0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = runner.invoke(app, ["fit", str(path), "--name", objective, "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tmp_path / "runs" / objective / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["translate"]["model"] == "genegan" and set(ckpt["translate"]["nets"]) == {"g", "d_a", "d_b"}
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def write_faces(root: Path) -> Path:
    """8 + 8 built-in-style faces at 32 px under root/faces: with glasses in trainA, without in trainB."""
    rng = random.Random(1)
    for split, domain in (("trainA", "A"), ("trainB", "B")):
        (root / "faces" / split).mkdir(parents=True)
        for k in range(8):
            Image.fromarray(render_face(domain, sample_face(rng, 32), 32)).save(root / "faces" / split / f"{k:03d}.png")
    return root / "faces"


@pytest.fixture
def faces(tmp_path: Path) -> Path:
    """The faces, a fresh copy per test (tests may add files to it)."""
    return write_faces(tmp_path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GeneGAN trained 120 steps on the faces, trained once for the module; tests only read the checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    path = root / "g.yaml"
    # reconstruction weighted up so that a few steps show it (the mechanism, not the recipe's balance)
    path.write_text(yaml.safe_dump(tiny_cfg(root, write_faces(root), adversarial="lsgan", critic_burst=0,
                                            lambda_recon=10.0)))
    result = runner.invoke(app, ["fit", str(path), "--name", "g", "--max-steps", "120", "--max-epochs", "1000",
                                 "--set", "optim.lr=0.002", "--set", "optim.n_epochs=1000"])
    assert result.exit_code == 0, result.output
    return root / "runs" / "g" / "last.ckpt"


def test_swap_with_its_own_object_reconstructs_the_image_after_training(trained: Path, faces: Path,
                                                                       tmp_path: Path):
    g, size = load_genegan(trained)
    x = torch.cat([read_face(p, size) for p in sorted((faces / "trainA").iterdir())])
    untrained = GeneGAN(resolve(tiny_cfg(tmp_path, faces))).g.eval()
    with torch.no_grad():
        before = (swap(untrained, x, x)[0] - x).abs().mean()
        after = (swap(g, x, x)[0] - x).abs().mean()
    assert after < 0.75 * before


def test_interpolation_ends_are_the_swaps_and_matrix_corners_are_the_donors(trained: Path, unpaired: Path):
    g, size = load_genegan(trained)
    donor, target = read_face(unpaired / "trainA" / "000.png", size), read_face(unpaired / "trainB" / "000.png", size)
    strip = interpolate(g, donor, target, [0.0, 0.5, 1.0])
    gained, _ = swap(g, donor, target)
    with torch.no_grad():
        background, _ = g.split(target)
        nothing = g.join(background, torch.zeros_like(g.split(donor)[1]))
    assert torch.allclose(strip[2], gained[0], atol=1e-5) and torch.allclose(strip[0], nothing[0], atol=1e-5)
    corners = torch.cat([read_face(unpaired / "trainA" / f"00{i}.png", size) for i in range(4)])
    grid = matrix(g, corners, target, 3, 3)
    for cell, k in ((0, 0), (2, 1), (6, 2), (8, 3)):
        assert torch.allclose(grid[cell], swap(g, corners[k:k + 1], target)[0][0], atol=1e-5)
    w = bilinear_weights(3, 3)
    assert torch.allclose(w.sum(1), torch.ones(9)) and torch.allclose(w[4], torch.full((4,), 0.25))


def test_cli_swap_interpolate_and_folder_form(trained: Path, unpaired: Path, tmp_path: Path):
    a, b = unpaired / "trainA" / "000.png", unpaired / "trainB" / "000.png"
    out = tmp_path / "out" / "swap.png"
    for blend, (w, h) in (("none", (32, 32)), ("footprint", (44, 40))):  # raw: training size; blended: the input's
        result = runner.invoke(app, ["swap", str(trained), "--from", str(a), "--onto", str(b), "-o", str(out),
                                     "--blend", blend])
        assert result.exit_code == 0, result.output
        for path in (out, out.with_name("swap-removed.png")):
            with Image.open(path) as im:
                assert im.size == (w, h)
        strip = tmp_path / "strip.png"
        assert runner.invoke(app, ["interpolate", str(trained), "--from", str(a), "--onto", str(b), "--steps", "5",
                                   "-o", str(strip), "--blend", blend]).exit_code == 0
        with Image.open(strip) as im:
            assert im.size == (5 * (w + 2) + 2, h + 4)
        grid = tmp_path / "grid.png"
        corners = [str(p) for p in sorted((unpaired / "trainA").iterdir())]
        result = runner.invoke(app, ["interpolate", str(trained), "--corners", *corners, "--onto", str(b), "--grid",
                                     "4", "-o", str(grid), "--blend", blend])
        assert result.exit_code == 0, result.output
        with Image.open(grid) as im:
            assert im.size == (4 * (w + 2) + 2, 4 * (h + 2) + 2)
    # the folder form: every image of a folder gets the object; bad files are reported, inputs untouched
    (unpaired / "trainB" / "broken.png").write_bytes(b"\x89PNG nope")
    before = {p: p.read_bytes() for p in (unpaired / "trainB").iterdir()}
    result = runner.invoke(app, ["swap", str(trained), "--from", str(a), "--onto", str(unpaired / "trainB"),
                                 "-o", str(tmp_path / "many")])
    assert result.exit_code == 3 and "broken.png" in result.output
    assert sorted(p.name for p in (tmp_path / "many").glob("*.png")) == ["000.png", "001.png", "002.png"]
    assert {p: p.read_bytes() for p in (unpaired / "trainB").iterdir()} == before
    inside = runner.invoke(app, ["swap", str(trained), "--from", str(a), "--onto", str(unpaired / "trainB"),
                                 "-o", str(unpaired / "trainB" / "out")])
    assert inside.exit_code != 0 and "inside the input folder" in inside.output


def test_swap_refuses_other_models_and_bad_arguments(trained: Path, tiny_config: Path, tmp_path: Path, unpaired: Path):
    assert runner.invoke(app, ["fit", str(tiny_config), "--name", "cg", "--max-steps", "1"]).exit_code == 0
    a, b = unpaired / "trainA" / "000.png", unpaired / "trainB" / "000.png"
    result = runner.invoke(app, ["swap", str(tmp_path / "runs" / "cg" / "last.ckpt"), "--from", str(a), "--onto",
                                 str(b), "-o", str(tmp_path / "x.png")])
    assert result.exit_code != 0 and "need a genegan checkpoint" in result.output
    result = runner.invoke(app, ["interpolate", str(trained), "--onto", str(b), "-o", str(tmp_path / "y.png")])
    assert result.exit_code != 0 and "--from DONOR" in result.output
    result = runner.invoke(app, ["swap", str(trained), "--from", str(a), "--onto", str(b), "-o", str(b)])
    assert result.exit_code != 0 and "refusing to write" in result.output
    # issue 21: no output may be an input, in any form: the strip, the grid's corners, a parent output folder
    before = {p: p.read_bytes() for p in unpaired.rglob("*.png")}
    for args in (["--from", str(a), "--onto", str(a), "-o", str(a)],
                 ["--corners", str(a), str(b), str(a), str(b), "--onto", str(b), "-o", str(a)]):
        result = runner.invoke(app, ["interpolate", str(trained), *args])
        assert result.exit_code != 0 and "refusing to write" in result.output and "Traceback" not in result.output
    nested = unpaired / "trainB" / "trainB"
    nested.mkdir()
    (nested / "000.png").write_bytes((unpaired / "trainB" / "001.png").read_bytes())
    before[nested / "000.png"] = (nested / "000.png").read_bytes()
    result = runner.invoke(app, ["swap", str(trained), "--from", str(a), "--onto", str(unpaired / "trainB"),
                                 "-o", str(unpaired)])  # trainB/trainB/000.png would land on trainB/000.png
    assert result.exit_code != 0 and "refusing to write" in result.output
    assert {p: p.read_bytes() for p in unpaired.rglob("*.png")} == before
    doctored = torch.load(trained, map_location="cpu", weights_only=True)
    doctored["translate"]["config"] = {}  # loads safely, but names no training size
    torch.save(doctored, tmp_path / "no-size.ckpt")
    result = runner.invoke(app, ["swap", str(tmp_path / "no-size.ckpt"), "--from", str(a), "--onto", str(b),
                                 "-o", str(tmp_path / "z.png")])
    assert result.exit_code != 0 and "no data.crop_size" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["convert", str(trained), str(a), str(tmp_path / "conv")])
    assert result.exit_code != 0 and "no AtoB generator" in result.output and "translate swap" in result.output


def test_faces_pairs_differ_only_around_the_eyes():
    rng = random.Random(0)
    for _ in range(6):
        p = sample_face(rng, 64)
        with_glasses, without = render_face("A", p, 64), render_face("B", p, 64)
        changed = np.abs(with_glasses.astype(int) - without.astype(int)).sum(2) > 0
        rows, cols = np.nonzero(changed)
        assert changed.sum() > 60  # the glasses are visible
        assert rows.max() - rows.min() < 26 and rows.mean() < 34  # a band across the upper face, not the mouth
    assert np.array_equal(render_face("A", p, 64), render_face("A", p, 64))
    with pytest.raises(ValueError):
        render_face("C", p, 64)


@pytest.fixture(scope="module")
def schedule_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny GeneGAN config whose critic schedule crosses the epoch boundary, and its 2-epoch run "s" (fp32,
    no resume), shared by the resume and the bf16 tests. 4 A images, batch 2: 2 batches an epoch; a burst
    of 2, then a G step every 2nd batch: D D | G D."""
    root = tmp_path_factory.mktemp("genegan")
    path = root / "g.yaml"
    path.write_text(yaml.safe_dump(tiny_cfg(root, make_unpaired(root), adversarial="lsgan", critic_burst=2,
                                            critic_burst_every=2)))
    straight = runner.invoke(app, ["fit", str(path), "--name", "s", "--max-epochs", "2"])
    assert straight.exit_code == 0, straight.output
    return path, torch.load(root / "runs" / "s" / "last.ckpt", map_location="cpu", weights_only=True)


def test_one_epoch_and_resume_for_another_equals_two_epochs_straight(schedule_runs):
    """The critic schedule, a pure function of the batch index, crosses the epoch boundary on resume."""
    path, a = schedule_runs
    assert runner.invoke(app, ["fit", str(path), "--name", "p", "--max-epochs", "1"]).exit_code == 0
    resumed = runner.invoke(app, ["fit", str(path), "--name", "p", "--max-epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    b = torch.load(path.parent / "runs" / "p" / "last.ckpt", map_location="cpu", weights_only=True)
    # D D | G D: one generator step, three discriminator steps
    assert a["optimizer_states"][0]["state"][0]["step"] == 1 and a["optimizer_states"][1]["state"][0]["step"] == 3
    assert b["optimizer_states"][0]["state"][0]["step"] == 1 and b["optimizer_states"][1]["state"][0]["step"] == 3
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key


def test_bf16_autocast_trains_with_finite_weights(schedule_runs):
    path, fp32 = schedule_runs
    bf16 = runner.invoke(app, ["fit", str(path), "--name", "bf16", "--max-epochs", "2", "--precision", "bf16-mixed"])
    assert bf16.exit_code == 0, bf16.output
    c = torch.load(path.parent / "runs" / "bf16" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in c["state_dict"].values() if v.is_floating_point())
    # same seed, same batches: the generator differs from the fp32 run's only because bf16 was used
    assert any(not torch.equal(fp32["state_dict"][k], c["state_dict"][k]) for k in fp32["state_dict"]
               if k.startswith("g."))


def test_ddp_on_two_cpu_processes_writes_one_run_with_the_sharded_step_count(tmp_path: Path, unpaired: Path):
    """2-process CPU DDP (gloo): one run folder, each rank trains on its half of the data."""
    import os
    import subprocess
    import sys

    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(tiny_cfg(tmp_path, unpaired, adversarial="lsgan", critic_burst=2,
                                            critic_burst_every=2)))
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE")}
    proc = subprocess.run([sys.executable, "-m", "translate.cli", "fit", str(path), "--name", "ddp", "--devices", "2",
                           "--max-epochs", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = tmp_path / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]
    d = torch.load(runs / "ddp" / "last.ckpt", map_location="cpu", weights_only=True)
    # sharded: 2 A images per rank, batch 2: 1 batch per rank in the epoch (unsharded it would be 2), a D step
    assert d["epoch"] == 1 and d["optimizer_states"][1]["state"][0]["step"] == 1
    assert not d["optimizer_states"][0]["state"]  # the burst of 2 D batches: no generator step yet


def test_footprint_is_zero_where_the_edit_changes_nothing_so_the_input_is_kept_exactly():
    from translate.swap import FOOTPRINT, blend_into, footprint

    torch.manual_seed(0)
    own = torch.rand(1, 3, 32, 32) * 2 - 1
    original = torch.rand(1, 3, 96, 96) * 2 - 1
    assert torch.equal(blend_into(original, own, own), original)  # no edit (strength 0 on an object-free face)
    noisy = own + FOOTPRINT.floor * 0.9 * torch.sign(torch.randn_like(own))  # decoder noise below the floor
    assert footprint(noisy, own).max() == 0 and torch.equal(blend_into(original, noisy, own), original)
    edited = own.clone()
    edited[..., 4:8, 20:26] += 0.8  # an edit in one place: "glasses"
    mask = footprint(edited, own)
    assert mask[..., 5, 22].item() == 1.0 and mask[..., 28, 4].item() == 0.0
    out = blend_into(original, edited, own)
    up = torch.nn.functional.interpolate(mask, size=(96, 96), mode="bilinear", align_corners=False)
    assert torch.equal(out[..., up[0, 0] == 0], original[..., up[0, 0] == 0])  # bit for bit outside the footprint
    assert (up > 0).float().mean() < 0.25 and not torch.equal(out, original)


def test_blending_keeps_full_resolution_and_blend_none_is_the_raw_output(trained: Path, tmp_path: Path):
    from translate.swap import footprint, read_full, reconstruct, save_images, swap_files

    rng = np.random.default_rng(3)
    big = (np.kron(rng.integers(0, 256, (12, 10, 3)), np.ones((8, 8, 1)))).astype(np.uint8)  # 96 x 80, sharp
    Image.fromarray(big).save(tmp_path / "portrait.png")
    donor = tmp_path / "donor.png"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(donor)
    out = tmp_path / "blended.png"
    swap_files(trained, donor, tmp_path / "portrait.png", out)
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == big.shape
    g, size = load_genegan(trained)
    (_, donor_small), (_, target_small) = read_full(donor, size), read_full(tmp_path / "portrait.png", size)
    gained, lost = swap(g, donor_small, target_small)
    mask = torch.nn.functional.interpolate(footprint(gained, reconstruct(g, target_small)), size=big.shape[:2],
                                           mode="bilinear", align_corners=False)[0, 0].numpy()
    assert np.array_equal(result[mask == 0], big[mask == 0])  # the portrait's own pixels, at full size
    raw = tmp_path / "raw.png"
    swap_files(trained, donor, tmp_path / "portrait.png", raw, blend="none")
    expected = tmp_path / "expected.png"
    save_images(gained, expected, 1)  # the paper's decoder output, as before blending existed
    assert raw.read_bytes() == expected.read_bytes() or np.array_equal(np.asarray(Image.open(raw)),
                                                                       np.asarray(Image.open(expected)))
    with pytest.raises(TranslateError, match="--blend must be one of"):
        swap_files(trained, donor, tmp_path / "portrait.png", tmp_path / "x.png", blend="soft")


def test_folder_removal_writes_every_face_and_reports_bad_files(trained: Path, faces: Path, tmp_path: Path):
    folder = faces / "trainA"
    (folder / "broken.png").write_bytes(b"\x89PNG nope")
    before = {p: p.read_bytes() for p in folder.iterdir()}
    result = runner.invoke(app, ["swap", str(trained), "--remove", "--onto", str(folder), "-o", str(tmp_path / "bare")])
    assert result.exit_code == 3 and "broken.png" in result.output and "removed 8" in result.output
    written = sorted(p.name for p in (tmp_path / "bare").glob("*.png"))
    assert written == sorted(p.name for p in folder.iterdir() if p.name != "broken.png")
    assert {p: p.read_bytes() for p in folder.iterdir()} == before
    inside = runner.invoke(app, ["swap", str(trained), "--remove", "--onto", str(folder), "-o", str(folder / "o")])
    assert inside.exit_code != 0 and "inside the input folder" in inside.output
    both = runner.invoke(app, ["swap", str(trained), "--remove", "--from", str(folder / "000.png"), "--onto",
                               str(folder), "-o", str(tmp_path / "x")])
    assert both.exit_code != 0 and "not both" in both.output


def test_interpolation_cells_each_keep_the_input_where_their_own_edit_changes_nothing(trained: Path, tmp_path: Path):
    """A face onto itself: the strength-1 cell is its own reconstruction, so its footprint is empty and the
    cell is the full-size input bit for bit; the strength-0 cell (object removed) keeps it outside its mask."""
    from translate.swap import footprint, interpolate_files, read_full, reconstruct

    rng = np.random.default_rng(5)
    big = (np.kron(rng.integers(0, 256, (12, 10, 3)), np.ones((8, 8, 1)))).astype(np.uint8)  # 96 x 80
    Image.fromarray(big).save(tmp_path / "face.png")
    Image.fromarray(big).save(tmp_path / "same.png")
    strip = interpolate_files(trained, tmp_path / "face.png", tmp_path / "strip.png", donor=tmp_path / "same.png",
                              steps=2)
    cells = np.asarray(Image.open(strip).convert("RGB"))
    assert cells.shape == (96 + 4, 2 * 80 + 6, 3)  # two full-size cells, padding 2
    zero, one = cells[2:98, 2:82], cells[2:98, 84:164]
    assert np.array_equal(one, big)
    g, size = load_genegan(trained)
    _, small = read_full(tmp_path / "face.png", size)
    with torch.no_grad():
        bg, _ = g.split(small)
        removed = g.join(bg, torch.zeros_like(g.split(small)[1]))
    mask = torch.nn.functional.interpolate(footprint(removed, reconstruct(g, small)), size=(96, 80),
                                           mode="bilinear", align_corners=False)[0, 0].numpy()
    assert (mask == 0).mean() > 0.1 and np.array_equal(zero[mask == 0], big[mask == 0])

"""Pretrained and classic generators wherever a checkpoint goes: convert, export, evaluate and fit --init.

The zoo is served by a local HTTP server (the mirror variable points at it); its "pretrained" files are tiny
classic-format generators, so every command runs end to end in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import TINY, make_domain
from translate import zoo
from translate.checkpoint import load_generator
from translate.cli import app
from translate.config import resolve
from translate.errors import CheckpointError
from translate.models import build_model
from translate.nets import ResnetGenerator
from translate.train import load_init
from translate.upstream import to_upstream

runner = CliRunner()
TINY_G = {"ngf": 4, "n_blocks": 1}  # the generator TINY's runs build


def classic(seed: int, **kwargs) -> tuple[ResnetGenerator, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    net = ResnetGenerator(**{**TINY_G, **kwargs}).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net, to_upstream(net)


@pytest.fixture
def zoo_server(server, tmp_path: Path, monkeypatch):
    """horse2zebra, zebra2horse and style_cezanne served locally (tiny nets); returns their state dicts."""
    www, url = server
    monkeypatch.setenv(zoo.MIRROR_ENV, url)
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "cache"))
    states = {}
    for seed, name in enumerate(("horse2zebra", "zebra2horse", "style_cezanne")):
        _, states[name] = classic(seed)
        torch.save(states[name], www / f"{name}.pth")
    return states


def test_fit_init_from_a_zoo_pair_starts_both_generators_from_it(zoo_server, tiny_config: Path, tmp_path: Path):
    model = build_model(resolve(TINY))
    fresh_d = {k: v.clone() for k, v in model.d_a.state_dict().items()}
    load_init(model, "horse2zebra")
    for attr, name in (("g_ab", "horse2zebra"), ("g_ba", "zebra2horse")):
        ours = getattr(model, attr).state_dict()
        assert all(torch.equal(ours[k], v) for k, v in zoo_server[name].items()), attr
    assert all(torch.equal(v, fresh_d[k]) for k, v in model.d_a.state_dict().items())  # fresh discriminators

    lonely = build_model(resolve(TINY))
    before = {k: v.clone() for k, v in lonely.g_ba.state_dict().items()}
    load_init(lonely, "style_cezanne")  # no model translates back: g_ba starts fresh
    assert all(torch.equal(lonely.g_ab.state_dict()[k], v) for k, v in zoo_server["style_cezanne"].items())
    assert all(torch.equal(v, before[k]) for k, v in lonely.g_ba.state_dict().items())

    tuned = runner.invoke(app, ["fit", str(tiny_config), "--name", "tuned", "--max-steps", "2", "--init", "horse2zebra"])
    assert tuned.exit_code == 0, tuned.output
    after = torch.load(tmp_path / "runs" / "tuned" / "last.ckpt", map_location="cpu", weights_only=True)
    for attr, name in (("g_ab", "horse2zebra"), ("g_ba", "zebra2horse")):
        trained = {k[len(attr) + 1:]: v for k, v in after["state_dict"].items() if k.startswith(attr + ".")}
        start = zoo_server[name]
        # two Adam steps at lr 2e-4 move each weight by at most ~4e-4: still the pretrained net, and trained
        assert max((trained[k] - v).abs().max().item() for k, v in start.items()) < 1e-3
        assert any(not torch.equal(trained[k], v) for k, v in start.items())

    wrong = runner.invoke(app, ["fit", str(tiny_config), "--name", "w", "--init", "horse2zebra",
                                "--set", "model.generator.ngf=8"])
    assert wrong.exit_code != 0 and "does not fit" in wrong.output and "model.generator.ngf=4" in wrong.output
    assert not (tmp_path / "runs" / "w").exists()


def test_fit_init_from_classic_files_takes_the_g_b_sibling(tmp_path: Path):
    folder = tmp_path / "classic_run"
    folder.mkdir()
    _, a = classic(10)
    _, b = classic(11)
    torch.save(a, folder / "latest_net_G_A.pth")
    torch.save(b, folder / "latest_net_G_B.pth")
    model = build_model(resolve(TINY))
    load_init(model, folder / "latest_net_G_A.pth")
    assert all(torch.equal(model.g_ab.state_dict()[k], v) for k, v in a.items())
    assert all(torch.equal(model.g_ba.state_dict()[k], v) for k, v in b.items())
    with pytest.raises(CheckpointError, match="cannot initialise a discogan"):
        load_init(build_model(resolve({"model": {"name": "discogan", "generator": {"ngf": 4},
                                                        "discriminator": {"ndf": 4}}})), folder / "latest_net_G_A.pth")


def test_convert_export_and_evaluate_take_a_model_name(zoo_server, tmp_path: Path):
    photos = tmp_path / "photos"
    make_domain(photos, 2, seed=5, size=24)
    out = tmp_path / "zebras"
    first = runner.invoke(app, ["convert", "horse2zebra", str(photos), str(out), "--precision", "32", "-q"])
    assert first.exit_code == 0, first.output
    assert "pretrained horse2zebra" in first.output and zoo.cached("horse2zebra")
    net, _ = classic(0)
    x = torch.from_numpy(np.asarray(Image.open(photos / "000.png")).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        expected = ((net(x) + 1) * 127.5).round().clamp(0, 255)[0].permute(1, 2, 0).numpy()
    assert np.abs(np.asarray(Image.open(out / "000.png")).astype(float) - expected).max() <= 1

    back = runner.invoke(app, ["convert", "horse2zebra", str(photos), str(tmp_path / "horses"), "--direction", "BtoA",
                               "-q"])
    assert back.exit_code == 0 and "pretrained zebra2horse" in back.output, back.output
    one_way = runner.invoke(app, ["convert", "style_cezanne", str(photos), str(tmp_path / "c"), "--direction", "BtoA"])
    assert one_way.exit_code != 0 and "one way only" in one_way.output

    exported = runner.invoke(app, ["export", "zebra2horse", str(tmp_path / "z2h"), "--no-program"])
    assert exported.exit_code == 0, exported.output
    y = load_generator(tmp_path / "z2h.safetensors").net(x)
    torch.testing.assert_close(y, classic(1)[0](x))

    data = tmp_path / "h2z"
    for i, split in enumerate(("trainA", "trainB", "testA", "testB")):
        make_domain(data / split, 2, seed=20 + i, size=32)
    report = runner.invoke(app, ["evaluate", "horse2zebra", str(data), "--features", "pixels",
                                 "--out", str(tmp_path / "eval")])
    assert report.exit_code == 0, report.output
    import json

    scored = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert set(scored["directions"]) == {"AtoB", "BtoA"} and scored["protocol"]["image_size"] == 256


def test_evaluate_a_classic_file_scores_its_one_direction(tmp_path: Path):
    _, state = classic(3)
    torch.save(state, tmp_path / "latest_net_G_A.pth")
    data = tmp_path / "set"
    for i, split in enumerate(("trainA", "trainB", "testA", "testB")):
        make_domain(data / split, 2, seed=30 + i, size=32)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "latest_net_G_A.pth"), str(data), "--features", "pixels"])
    assert result.exit_code == 0, result.output
    import json

    scored = json.loads((tmp_path / "eval" / "latest_net_G_A" / "report.json").read_text())
    assert list(scored["directions"]) == ["AtoB"]
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "latest_net_G_A.pth"), "--features", "pixels"])
    assert missing.exit_code != 0 and "give it" in missing.output


def test_a_misspelt_model_name_is_a_missing_file_with_the_close_name(tmp_path: Path):
    with pytest.raises(CheckpointError, match="did you mean the pretrained horse2zebra"):
        load_generator("horse2zebr")
    model = build_model(resolve(TINY))
    with pytest.raises(CheckpointError, match="did you mean the pretrained style_monet"):
        load_init(model, "style_monett")
    with pytest.raises(CheckpointError, match="translate models list"):
        load_generator(tmp_path / "nothing.ckpt")

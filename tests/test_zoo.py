"""The pretrained model zoo against a local HTTP server on 127.0.0.1: first use, cache, resume, changed files."""

from __future__ import annotations

import hashlib
import io
import re
import socket
from pathlib import Path

import pytest
import torch

from conftest import Handler
from translate import zoo
from translate.data.catalog import CATALOG
from translate.data.download import DownloadError, NetworkError

FAST = {"retries": 0, "backoff": 0.01, "timeout": 5}  # a test server answers at once or not at all
NAMES = ["apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
         "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
         "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
         "iphone2dslr_flower"]


def weights(n: int = 8, value: float = 0.0) -> bytes:
    """A small stand-in for a classic generator's state_dict, as torch.save writes it."""
    buffer = io.BytesIO()
    torch.save({"model.1.weight": torch.full((n,), value)}, buffer)
    return buffer.getvalue()


@pytest.fixture
def served(server, tmp_path: Path, monkeypatch):
    """(www folder, requests made, cache folder) with the mirror env var pointing at the local server."""
    www, url = server
    monkeypatch.setenv(zoo.MIRROR_ENV, url)
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.CACHE_ENV, str(cache))
    requests: list[str] = []
    serve = Handler.do_GET

    def counting(self):
        requests.append(self.path)
        serve(self)

    monkeypatch.setattr(Handler, "do_GET", counting)
    monkeypatch.setattr(Handler, "ranges", [])
    return www, requests, cache


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:  # bound, then closed: nobody listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_zoo_has_the_18_classic_models_with_consistent_partners_and_datasets():
    assert list(zoo.ZOO) == NAMES and all(zoo.is_model_name(n) for n in NAMES) and not zoo.is_model_name("x")
    for model in zoo.ZOO.values():
        assert model.arch == "resnet_9blocks, ngf 64" and " -> " in model.direction
        if model.partner is not None:  # the partner translates the other way: sides swapped, same dataset
            partner = zoo.ZOO[model.partner]
            assert partner.partner == model.name and partner.dataset == model.dataset
            assert model.dataset is None or {model.dataset_direction, partner.dataset_direction} == {"AtoB", "BtoA"}
        if model.dataset is not None:
            assert model.dataset in CATALOG and model.dataset_direction in ("AtoB", "BtoA")
        else:
            assert model.dataset_direction is None
    assert {n for n, m in zoo.ZOO.items() if m.partner is None} == {"style_cezanne", "style_ukiyoe",
                                                                   "style_vangogh", "iphone2dslr_flower"}
    assert (zoo.ZOO["horse2zebra"].dataset_direction, zoo.ZOO["zebra2horse"].dataset_direction) == ("AtoB", "BtoA")
    assert zoo.ZOO["style_monet"].dataset_direction == "BtoA" and zoo.ZOO["facades_photo2label"].dataset is None


def test_url_and_cache_folder_follow_mirror_and_environment(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(zoo.MIRROR_ENV, raising=False)
    model = zoo.ZOO["horse2zebra"]
    assert model.url() == "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/horse2zebra.pth"
    monkeypatch.setenv(zoo.MIRROR_ENV, "https://env.example/models/")
    assert model.url() == "https://env.example/models/horse2zebra.pth"
    assert model.url("https://arg.example/m") == "https://arg.example/m/horse2zebra.pth"  # the argument wins
    monkeypatch.delenv(zoo.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo.cache_dir() == tmp_path / "home" / ".cache" / "translate" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "translate" / "models"
    monkeypatch.setenv(zoo.CACHE_ENV, str(tmp_path / "mine"))
    assert zoo.cache_dir() == tmp_path / "mine"
    assert zoo.model_path("sat2map") == tmp_path / "mine" / "sat2map.pth"


def test_first_use_downloads_and_records_then_the_cache_is_used_without_the_server(served):
    www, requests, cache = served
    data = weights()
    (www / "horse2zebra.pth").write_bytes(data)
    seen, messages = [], []
    path = zoo.fetch("horse2zebra", progress=lambda done, total: seen.append((done, total)), log=messages.append,
                     **FAST)
    assert path == cache / "horse2zebra.pth" and path.read_bytes() == data
    assert (cache / "horse2zebra.pth.sha256").read_text() == sha(data) + "\n"
    assert requests == ["/horse2zebra.pth"] and seen[-1] == (len(data), len(data))
    assert not (cache / ".incoming").exists() and zoo.cached("horse2zebra") and not zoo.cached("zebra2horse")
    (www / "horse2zebra.pth").unlink()  # the server can't serve it any more: the cache must not need it
    assert zoo.fetch("horse2zebra", **FAST) == path
    assert requests == ["/horse2zebra.pth"]
    loaded = torch.load(path, weights_only=True)
    assert list(loaded) == ["model.1.weight"]


def test_an_interrupted_part_is_resumed_with_a_range_request(served):
    www, requests, cache = served
    data = weights(20_000)
    (www / "sat2map.pth").write_bytes(data)
    part = cache / ".incoming" / "sat2map.pth.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:30_000])  # what a killed download left
    fetched = []
    path = zoo.fetch("sat2map", progress=lambda done, total: fetched.append(done), **FAST)
    assert path.read_bytes() == data and not part.exists()
    assert Handler.ranges == ["bytes=30000-"] and len(requests) == 1  # only the rest was asked for
    assert fetched[0] > 30_000 and (cache / "sat2map.pth.sha256").read_text().strip() == sha(data)


def test_a_file_changed_on_the_server_is_refused_and_the_cached_copy_kept(served):
    www, requests, cache = served
    good, new = weights(value=1.0), weights(value=2.0)
    (www / "map2sat.pth").write_bytes(good)
    path = zoo.fetch("map2sat", **FAST)
    (www / "map2sat.pth").write_bytes(new)
    with pytest.raises(zoo.ModelChangedError) as err:
        zoo.fetch("map2sat", force=True, **FAST)
    message = str(err.value)
    assert f"sha256 now {sha(new)}" in message and f"recorded {sha(good)}" in message and "\n" not in message
    assert "translate models forget map2sat" in message and "--force" in message
    assert path.read_bytes() == good and (cache / "map2sat.pth.sha256").read_text().strip() == sha(good)
    assert (cache / "map2sat.pth.changed").read_bytes() == new
    assert zoo.fetch("map2sat", **FAST).read_bytes() == good  # still usable as it was
    path.unlink()  # without a cached copy, a plain first download refuses the changed file too
    with pytest.raises(zoo.ModelChangedError):
        zoo.fetch("map2sat", **FAST)
    assert not path.exists()
    assert zoo.forget("map2sat") and not zoo.forget("map2sat")  # the change was expected
    assert zoo.fetch("map2sat", **FAST).read_bytes() == new
    assert (cache / "map2sat.pth.sha256").read_text().strip() == sha(new)


def test_a_cached_file_changed_on_disk_is_detected_and_force_restores_it(served):
    www, requests, cache = served
    data = weights()
    (www / "monet2photo.pth").write_bytes(data)
    path = zoo.fetch("monet2photo", **FAST)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    with pytest.raises(zoo.ModelChangedError, match="changed on disk") as err:
        zoo.fetch("monet2photo", **FAST)
    assert "translate models download monet2photo --force" in str(err.value)
    assert len(requests) == 1  # detected from the record, without asking the server
    assert zoo.fetch("monet2photo", force=True, **FAST).read_bytes() == data


def test_offline_names_the_url_the_path_to_place_it_at_and_the_mirror(served, monkeypatch):
    _, _, cache = served
    url = f"http://127.0.0.1:{free_port()}/mirror"
    monkeypatch.setenv(zoo.MIRROR_ENV, url)
    with pytest.raises(NetworkError) as err:
        zoo.fetch("zebra2horse", **FAST)
    message = str(err.value)
    assert f"Download {url}/zebra2horse.pth by hand and put it at {cache / 'zebra2horse.pth'}" in message
    assert "--url" in message and zoo.MIRROR_ENV in message and "\n" not in message
    assert not (cache / "zebra2horse.pth").exists() and not (cache / "zebra2horse.pth.sha256").exists()


@pytest.mark.parametrize("fault", ["html", "cut"])
def test_an_html_page_or_a_cut_file_is_refused_and_deleted(served, monkeypatch, fault):
    www, _, cache = served
    if fault == "html":
        (www / "style_monet.pth").write_text("<!DOCTYPE html><html><body>Service Unavailable</body></html>")
    else:  # the server closes early without a Content-Length: looks like a complete download
        (www / "style_monet.pth").write_bytes(weights(5000))
        monkeypatch.setattr(Handler, "close_early", {"/style_monet.pth"})
    with pytest.raises(DownloadError, match="an HTML page" if fault == "html" else "an incomplete PyTorch file"):
        zoo.fetch("style_monet", **FAST)
    leftovers = [p.name for p in cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]  # locks stay
    assert leftovers == [] and not zoo.cached("style_monet")  # nothing kept, nothing recorded


def test_a_hand_placed_file_is_accepted_and_recorded(served, monkeypatch):
    _, requests, cache = served
    monkeypatch.setenv(zoo.MIRROR_ENV, f"http://127.0.0.1:{free_port()}")  # offline: only the cache can serve
    data = weights()
    cache.mkdir()
    (cache / "style_vangogh.pth").write_bytes(data)
    messages = []
    assert zoo.fetch("style_vangogh", log=messages.append, **FAST).read_bytes() == data
    assert (cache / "style_vangogh.pth.sha256").read_text() == sha(data) + "\n"
    assert len(messages) == 1 and "accepted" in messages[0] and sha(data) in messages[0]
    (cache / "style_ukiyoe.pth").write_text("<html>saved the wrong link</html>")  # placed by hand, but not weights
    with pytest.raises(DownloadError, match="an HTML page"):
        zoo.fetch("style_ukiyoe", **FAST)
    assert (cache / "style_ukiyoe.pth").exists() and not (cache / "style_ukiyoe.pth.sha256").exists()


def test_an_unknown_name_suggests_the_close_match(served):
    from typer.testing import CliRunner

    from translate.cli import app

    with pytest.raises(zoo.UnknownModelError, match=r"unknown pretrained model 'hors2zebra'; did you mean horse2zebra"):
        zoo.fetch("hors2zebra")
    with pytest.raises(zoo.UnknownModelError, match="translate models list"):
        zoo.fetch("../../etc/passwd")
    result = CliRunner().invoke(app, ["models", "download", "zebra2hors"])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: unknown pretrained model 'zebra2hors'; did you mean zebra2horse?"]


def test_the_mirror_env_var_and_the_url_option_are_used(served, tmp_path: Path, monkeypatch):
    from typer.testing import CliRunner

    from translate.cli import app

    www, requests, cache = served
    (www / "env").mkdir()
    (www / "env" / "apple2orange.pth").write_bytes(weights(value=1.0))
    (www / "opt").mkdir()
    (www / "opt" / "orange2apple.pth").write_bytes(weights(value=2.0))
    base = zoo.ZOO["apple2orange"].url().rsplit("/", 1)[0]
    monkeypatch.setenv(zoo.MIRROR_ENV, f"{base}/env")
    assert zoo.fetch("apple2orange", **FAST).read_bytes() == (www / "env" / "apple2orange.pth").read_bytes()
    runner = CliRunner()
    result = runner.invoke(app, ["models", "download", "orange2apple", "--url", f"{base}/opt/", "--cache",
                                 str(tmp_path / "other")])
    assert result.exit_code == 0, result.output
    assert f"orange2apple: {tmp_path / 'other' / 'orange2apple.pth'}" in result.output
    assert requests == ["/env/apple2orange.pth", "/opt/orange2apple.pth"]
    result = runner.invoke(app, ["models", "forget", "orange2apple", "--cache", str(tmp_path / "other")])
    assert result.exit_code == 0 and not (tmp_path / "other" / "orange2apple.pth.sha256").exists()


def test_models_list_shows_the_18_models_and_which_are_cached(served, monkeypatch):
    from typer.testing import CliRunner

    from translate.cli import app

    www, _, cache = served
    monkeypatch.setenv(zoo.MIRROR_ENV, "https://mirror.example/zoo")
    cache.mkdir()
    (cache / "horse2zebra.pth").write_bytes(weights(60_000))  # 240 kB of weights
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    rows = {m.group(1): line for line in result.output.splitlines() if (m := re.match(r"│ (\w+) +│", line))}
    assert list(rows) == NAMES
    cached = {name: line.split("│")[-2].strip() for name, line in rows.items()}  # the last column
    assert cached.pop("horse2zebra") == "yes (0.2 MB)" and set(cached.values()) == {"no"}
    assert "https://mirror.example/zoo/sat2map.pth" in rows["sat2map"]
    assert f"cache: {cache}" in result.output

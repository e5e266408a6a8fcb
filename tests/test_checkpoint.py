from __future__ import annotations

from pathlib import Path

import pytest
import torch

from translate.checkpoint import FORMAT_VERSION, load_net, load_checkpoint
from translate.errors import CheckpointError


def _save(path: Path, obj) -> Path:
    torch.save(obj, path)
    return path


def block(model: str = "cyclegan", version: int = FORMAT_VERSION) -> dict:
    return {"format_version": version, "model": model, "config": {}, "state": {},
            "nets": {"g_ab": {"kind": "generator", "arch": "resnet", "kwargs": {"ngf": 4, "n_blocks": 1}}}}


def test_load_checks_kind_version_and_safety(tmp_path: Path):
    good = _save(tmp_path / "ok.ckpt", {"translate": block(), "state_dict": {}})
    assert load_checkpoint(good, expect_model="cyclegan")["translate"]["model"] == "cyclegan"
    with pytest.raises(CheckpointError, match="checkpoint of a cyclegan model, expected discogan"):
        load_checkpoint(good, expect_model="discogan")
    with pytest.raises(CheckpointError, match="newer than this translate supports"):
        load_checkpoint(_save(tmp_path / "new.ckpt", {"translate": block(version=FORMAT_VERSION + 1)}))
    with pytest.raises(CheckpointError, match="not a translate checkpoint"):
        load_checkpoint(_save(tmp_path / "other.ckpt", {"state_dict": {}}))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


class Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/translate-pwned"),))


def test_pickled_code_is_refused_not_run(tmp_path: Path):
    marker = Path("/tmp/translate-pwned")
    marker.unlink(missing_ok=True)
    path = _save(tmp_path / "evil.ckpt", {"translate": block(), "payload": Evil()})
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_build_net_rebuilds_weights_and_reports_mismatch(tmp_path: Path):
    from translate.nets import ResnetGenerator

    net = ResnetGenerator(ngf=4, n_blocks=1)
    ckpt = {"translate": block(), "state_dict": {f"g_ab.{k}": v for k, v in net.state_dict().items()}}
    rebuilt = load_net(ckpt, "g_ab")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(rebuilt(x), net.eval()(x))
    with pytest.raises(CheckpointError, match="no net 'g_ba'"):
        load_net(ckpt, "g_ba")
    ckpt["translate"]["nets"]["g_ab"]["kwargs"]["ngf"] = 8
    with pytest.raises(CheckpointError, match="do not match"):
        load_net(ckpt, "g_ab")

"""data/files.py: every input accounted for, colliding outputs kept apart, no output on an input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.files import gather, guard_outputs, unique_destinations
from translate.errors import DataError, TranslateError


def test_colliding_outputs_keep_their_source_suffix_and_the_owner_keeps_the_name():
    planned = {Path("in/same.png"): Path("out/same.png"), Path("in/same.bmp"): Path("out/same.png"),
               Path("in/same.tif"): Path("out/same.png"), Path("in/other.jpg"): Path("out/other.jpg")}
    unique, refused = unique_destinations(planned)
    assert not refused
    assert unique == {Path("in/same.png"): Path("out/same.png"), Path("in/same.bmp"): Path("out/same.bmp.png"),
                      Path("in/same.tif"): Path("out/same.tif.png"), Path("in/other.jpg"): Path("out/other.jpg")}
    # a disambiguated name that an input already owns: one of the two is refused, never overwritten
    planned = {Path("in/a.png"): Path("out/a.png"), Path("in/a.bmp"): Path("out/a.png"),
               Path("in/a.bmp.png"): Path("out/a.bmp.png")}
    unique, refused = unique_destinations(planned)
    assert len(set(unique.values())) == len(unique) == 2 and len(refused) == 1
    assert "collide" in next(iter(refused.values()))


def test_guard_refuses_a_destination_that_is_an_input_by_path_link_or_hard_link(tmp_path: Path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"original")
    (tmp_path / "link.png").symlink_to(photo)
    (tmp_path / "hard.png").hardlink_to(photo)
    for dst in (photo, tmp_path / "." / "photo.png", tmp_path / "link.png", tmp_path / "hard.png"):
        with pytest.raises(TranslateError, match="refusing to write"):
            guard_outputs([tmp_path / "new.png", dst], [photo])
    guard_outputs([tmp_path / "new.png"], [photo])  # a new file is fine
    assert photo.read_bytes() == b"original"


def test_gather_accounts_for_every_entry(tmp_path: Path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"x")
    (tmp_path / "clip.avi").write_bytes(b"x")
    (tmp_path / "raw.cr2").write_bytes(b"x")
    found = gather(tmp_path)
    assert found.files == [tmp_path / "a.png"]
    assert found.skipped == {str(tmp_path / ".git"): "hidden folder", str(tmp_path / ".DS_Store"): "hidden file",
                             str(tmp_path / "clip.avi"): "not an image file"}
    assert "camera raw" in found.failed[str(tmp_path / "raw.cr2")]
    with pytest.raises(DataError, match="unsupported format"):
        gather(tmp_path / "raw.cr2")
    with pytest.raises(DataError, match="no images to convert.*0 not convertible, 1 other files"):
        gather(tmp_path / ".git")  # a folder of no images says what it holds instead

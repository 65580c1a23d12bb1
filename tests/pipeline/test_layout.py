"""Atomic writing: the one way genreslice replaces a file that readers may open at any moment."""
from __future__ import annotations

import os
import stat

import pytest

from genreslice.pipeline import layout


def test_replacing_writes_through_a_temporary_file_then_renames(tmp_path):
    target = tmp_path / "model.json"
    target.write_text("old")
    old_umask = os.umask(0o022)
    try:
        with layout.replacing(target, suffix=".tmp.keras", sync_folder=True) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".model.json.") and tmp.name.endswith(".tmp.keras")
            tmp.write_text("new")
            assert target.read_text() == "old"  # readers see the old content until the rename
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    target = tmp_path / "tracks.csv"
    target.write_text("built")
    with pytest.raises(OSError, match="No space left"):
        with layout.replacing(target) as tmp:
            tmp.write_text("half")
            raise OSError(28, "No space left on device")
    assert target.read_text() == "built"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tracks.csv"]


def test_text_and_bytes_writers_use_a_scratch_folder_when_given(tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    layout.write_text_atomic(tmp_path / "a.txt", "caf\udce9\n", scratch=scratch)
    layout.write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_bytes() == b"caf\\udce9\n"  # not-UTF-8 names stay readable
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert list(scratch.iterdir()) == []

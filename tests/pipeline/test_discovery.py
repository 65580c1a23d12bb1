from __future__ import annotations

import os

import pytest

from pipeline.discovery import discover_audio


def touch(path, content=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_recursive_sorted_case_insensitive(tmp_path):
    for name in ["b/2.MP3", "a/1.wav", "a/z/3.Flac", "c.ogg", "notes.txt", "cover.jpg", "a/.hidden.mp3"]:
        touch(tmp_path / name)
    assert [f.rel_path for f in discover_audio(tmp_path)] == ["a/.hidden.mp3", "a/1.wav", "a/z/3.Flac",
                                                               "b/2.MP3", "c.ogg"]


def test_size_and_mtime_recorded(tmp_path):
    touch(tmp_path / "a.mp3", b"12345")
    (found,) = discover_audio(tmp_path)
    assert found.size == 5 and found.mtime_ns == os.stat(tmp_path / "a.mp3").st_mtime_ns


def test_links_outside_and_loops_are_not_followed(tmp_path):
    root, outside = tmp_path / "music", tmp_path / "elsewhere"
    touch(root / "in/1.mp3")
    touch(outside / "secret.mp3")
    os.symlink(outside, root / "link_out")
    os.symlink(outside / "secret.mp3", root / "file_out.mp3")
    os.symlink(root, root / "in/loop")  # a loop back to the root
    os.symlink(root / "in", root / "alias")  # a second way into the same folder
    assert [f.rel_path for f in discover_audio(root)] == ["alias/1.mp3"]


def test_link_inside_to_a_new_place_is_followed(tmp_path):
    root = tmp_path / "music"
    touch(root / "store/.data/x.mp3")
    os.symlink(root / "store/.data/x.mp3", root / "a.mp3")
    assert [f.rel_path for f in discover_audio(root)] == ["a.mp3"]


def test_not_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError, match="missing"):
        discover_audio(tmp_path / "missing")

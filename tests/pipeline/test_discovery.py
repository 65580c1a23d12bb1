from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genreslice.pipeline.discovery import discover_audio
from tests.helpers import unprivileged

ROOT = Path(__file__).parents[2]


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
    assert [f.rel_path for f in discover_audio(root)] == ["in/1.mp3"]


@pytest.mark.parametrize("link_name", ["0first", "zlast"])
def test_a_link_never_renames_a_file_whatever_it_sorts_like(tmp_path, link_name):
    root = tmp_path / "music"
    touch(root / "a/sub/x.mp3")
    touch(root / "store/y.mp3")
    os.symlink(root / "a/sub", root / link_name)
    os.symlink(root / "store/y.mp3", root / f"{link_name}.mp3")
    assert [f.rel_path for f in discover_audio(root)] == ["a/sub/x.mp3", "store/y.mp3"]


def test_broken_link_is_listed_with_its_problem(tmp_path):
    root = tmp_path / "music"
    touch(root / "ok.mp3")
    os.symlink(root / "gone.mp3", root / "dangling.mp3")
    found = {f.rel_path: f for f in discover_audio(root)}
    assert sorted(found) == ["dangling.mp3", "ok.mp3"]
    assert found["dangling.mp3"].problem.startswith("broken symbolic link") and found["ok.mp3"].problem == ""


def test_not_a_folder(tmp_path):
    with pytest.raises(NotADirectoryError, match="missing"):
        discover_audio(tmp_path / "missing")


def test_special_files_are_listed_with_what_they_are_and_never_opened(tmp_path):
    root = tmp_path / "music"
    touch(root / "ok.mp3")
    os.mkfifo(root / "pipe.mp3")  # opening it would block this test forever
    os.mkfifo(root / "raw pipe")
    os.symlink("raw pipe", root / "to pipe.flac")
    found = {f.rel_path: f.problem for f in discover_audio(root)}
    assert found == {"ok.mp3": "", "pipe.mp3": "a named pipe (FIFO), not a regular file",
                     "to pipe.flac": "a symbolic link to a named pipe (FIFO)"}


def test_folders_that_cannot_be_read_are_reported_not_dropped_silently(tmp_path):
    root = tmp_path / "music"
    touch(root / "open/a.mp3")
    touch(root / "locked/b.mp3")
    code = ("import json, sys\n"
            "from genreslice.pipeline.discovery import scan_audio\n"
            "from genreslice.pipeline.errors import AudioFolderError\n"
            "try:\n"
            "    scan = scan_audio(sys.argv[1])\n"
            "    print(json.dumps([[f.rel_path for f in scan.files], scan.unreadable]))\n"
            "except AudioFolderError as err:\n"
            "    print(json.dumps(str(err)))\n")
    run = [*unprivileged(), sys.executable, "-c", code]
    (root / "locked").chmod(0)
    try:
        inner = subprocess.run([*run, str(root)], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
        (root / "locked").chmod(0o755)
        root.chmod(0)
        outer = subprocess.run([*run, str(root)], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True)
    finally:
        (root / "locked").chmod(0o755)
        root.chmod(0o755)
    assert json.loads(inner.stdout) == [["open/a.mp3"], {"locked/": "Permission denied"}]
    assert json.loads(outer.stdout) == f"cannot read audio folder '{root}': Permission denied; check that it is " \
                                       "mounted and that you may read it"

"""Finding byte-identical files: by size, then by their edges, then by their whole content."""
from __future__ import annotations

from pathlib import Path

from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.duplicates import exact_copies


def files_of(root: Path, contents: dict[str, bytes]) -> dict[str, AudioFile]:
    files = {}
    for name, content in contents.items():
        (root / name).write_bytes(content)
        files[name] = AudioFile(path=root / name, rel_path=name, size=len(content), mtime_ns=1)
    return files


def test_only_whole_equal_files_are_copies(tmp_path):
    edge = bytes(range(256)) * 512  # 128 KiB: the 64 KiB at each end are the same in every file below
    contents = {
        "a.wav": edge + b"middle one" + edge,
        "b.wav": edge + b"middle one" + edge,     # a's copy
        "c.wav": edge + b"middle two" + edge,     # same size and edges as a: read whole, not a copy
        "d.wav": b"short",
        "e.wav": b"short",                        # a small file's copy (read whole at once)
        "f.wav": b"other",                        # same size as d, other bytes
        "g.wav": b"",                             # empty files are never copies of each other
        "h.wav": b"",
    }
    found = exact_copies(files_of(tmp_path, contents))
    assert [paths for _, paths in found] == [("a.wav", "b.wav"), ("d.wav", "e.wav")]
    assert all(len(digest) == 64 for digest, _ in found)


def test_unreadable_files_are_left_to_the_build(tmp_path):
    files = files_of(tmp_path, {"a.wav": b"same", "b.wav": b"same"})
    files["c.wav"] = AudioFile(path=tmp_path / "gone.wav", rel_path="c.wav", size=4, mtime_ns=1)
    assert [paths for _, paths in exact_copies(files)] == [("a.wav", "b.wav")]

"""The same recording more than once: exact copies found by file hash, so that no copy lands in another split.

A collection holds the album version and the compilation copy of one song, or the same file twice; when copies
fall on both sides of a split, test accuracy measures memory. Byte-identical files are found before any audio
work: only files of one size can be copies, so only those are read and hashed (SHA-256), and a collection of
distinct files costs one ``stat`` per file, which discovery did already.

What a build does with a group of copies (``--duplicates``):

* ``group``: the copies are one split unit with their artists, as an artist's tracks are (a copy filed under
  another artist pulls both artists into one split);
* ``keep``: nothing; the group is reported only;
* ``drop-extra``: the copies are split as they would be, and where they fall in several splits only those in the
  last of them (test, then validation, then train) are built; the others are skipped with the reason, so an
  official test split keeps its songs;
* ``auto`` (the default): ``group``, except for a group whose copies carry different official splits, which is not
  moved silently but handled as ``drop-extra``.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from genreslice.pipeline.discovery import AudioFile

#: The choices of ``--duplicates``.
DUPLICATE_POLICIES = ("auto", "group", "keep", "drop-extra")
_READ_BYTES = 1 << 20


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with the same content.

    Attributes
    ----------
    digest : str
        SHA-256 of the content, hex.
    paths : tuple of str
        The files' paths relative to the audio folder, sorted.
    policy : str
        What the build did: ``group``, ``keep`` or ``drop-extra``.
    """

    digest: str
    paths: tuple[str, ...]
    policy: str


def file_sha256(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file's bytes, hex; None when it cannot be read (the build reports such a file itself)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(_READ_BYTES), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def exact_copies(files: Mapping[str, AudioFile]) -> list[tuple[str, tuple[str, ...]]]:
    """``(digest, paths)`` of every set of two or more byte-identical files among ``files`` (``rel_path ->
    AudioFile``), sorted by their first path; only files that share their size with another are read."""
    by_size: dict[int, list[str]] = {}
    for rel_path, audio in files.items():
        if audio.size > 0 and not audio.problem:
            by_size.setdefault(audio.size, []).append(rel_path)
    by_digest: dict[str, list[str]] = {}
    for paths in by_size.values():
        if len(paths) < 2:
            continue
        for rel_path in paths:
            digest = file_sha256(files[rel_path].path)
            if digest is not None:
                by_digest.setdefault(digest, []).append(rel_path)
    return sorted(((digest, tuple(sorted(paths))) for digest, paths in by_digest.items() if len(paths) > 1),
                  key=lambda item: item[1])

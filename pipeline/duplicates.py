"""The same recording more than once: exact copies found by file hash, so that no copy lands in another split.

A collection holds the album version and the compilation copy of one song, or the same file twice; when copies
fall on both sides of a split, test accuracy measures memory. Byte-identical files are found before any audio
work: only files of one size can be copies, so only those are read: first their first and last 64 KiB, and the
whole file (SHA-256) only where those match another file's. A collection of files of distinct sizes costs nothing
more than discovery's ``stat``; one of equal sizes (fixed-length clips) 128 KiB per file and run.

What a build does with a group of copies (``--duplicates``):

* ``group``: the copies are one split unit with their artists, as an artist's tracks are (a copy filed under
  another artist pulls both artists into one split);
* ``keep``: nothing; the group is reported only;
* ``drop-extra``: the copies are split as they would be, and where they fall in several splits only those in the
  last of them (test, then validation, then train) are built; the others are skipped with the reason, so an
  official test split keeps its songs;
* ``auto`` (the default): ``group``, except where grouping would join tracks of different official splits (the
  copies', or their artists'), which are not moved silently: that group is handled as ``drop-extra``.
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
#: Bytes read from each end of a file for the first comparison.
_EDGE_BYTES = 64 * 1024


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


def edges_sha256(path: str | os.PathLike, size: int) -> str | None:
    """SHA-256 of a file's first and last 64 KiB (the whole file when it is smaller); None when unreadable."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            digest.update(handle.read(_EDGE_BYTES))
            if size > 2 * _EDGE_BYTES:
                handle.seek(size - _EDGE_BYTES)
            digest.update(handle.read(_EDGE_BYTES))
    except OSError:
        return None
    return digest.hexdigest()


def exact_copies(files: Mapping[str, AudioFile]) -> list[tuple[str, tuple[str, ...]]]:
    """``(digest, paths)`` of every set of two or more byte-identical files among ``files`` (``rel_path ->
    AudioFile``), sorted by their first path. Only files that share their size with another are read, first at
    their edges, then whole where the edges match."""
    by_size: dict[int, list[str]] = {}
    for rel_path, audio in files.items():
        if audio.size > 0 and not audio.problem:
            by_size.setdefault(audio.size, []).append(rel_path)
    candidates: dict[tuple[int, str], list[str]] = {}
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        for rel_path in paths:
            edges = edges_sha256(files[rel_path].path, size)
            if edges is not None:
                candidates.setdefault((size, edges), []).append(rel_path)
    by_digest: dict[str, list[str]] = {}
    for paths in candidates.values():
        if len(paths) < 2:
            continue
        for rel_path in paths:
            digest = file_sha256(files[rel_path].path)
            if digest is not None:
                by_digest.setdefault(digest, []).append(rel_path)
    return sorted(((digest, tuple(sorted(paths))) for digest, paths in by_digest.items() if len(paths) > 1),
                  key=lambda item: item[1])

"""The same recording more than once: exact copies found by file hash before the audio work, near copies (re-encoded,
resampled, louder, trimmed) by their spectrograms' fingerprints after it, so that no copy lands in another split.

A collection holds the album version and the compilation copy of one song, or the same file twice; when copies
fall on both sides of a split, test accuracy measures memory. Byte-identical files are found before any audio
work: only files of one size can be copies, so only those are read: first their first and last 64 KiB, and the
whole file (SHA-256) only where those match another file's. A collection of files of distinct sizes costs nothing
more than discovery's ``stat``; one of equal sizes (fixed-length clips) 128 KiB per file and run (a digest the build
journal holds for an unchanged file is not computed again).

Near copies are found among the tracks built, from the fingerprints their audio work journals
(:mod:`genreslice.pipeline.fingerprint`): each track's fingerprint is compared with those of the
:data:`NEIGHBOURS` tracks whose band profiles lie nearest its own (finding them compares the 34 numbers of every
pair of profiles, a few seconds for 20,000 tracks, minutes for 100,000; the bits, which cost far more, only those),
and the pairs at least :data:`~genreslice.pipeline.fingerprint.NEAR_COPY_SIMILARITY` alike are linked; linked tracks, and exact copies,
form one group. The build then draws the splits again with the groups known (see ``genreslice.pipeline.build``).

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.fingerprint import NEAR_COPY_SIMILARITY, Fingerprint, similarities

#: The choices of ``--duplicates``.
DUPLICATE_POLICIES = ("auto", "group", "keep", "drop-extra")
_READ_BYTES = 1 << 20
#: Bytes read from each end of a file for the first comparison.
_EDGE_BYTES = 64 * 1024
#: How many tracks of nearest band profile each track's fingerprint is compared with.
NEIGHBOURS = 10
#: Profiles compared at once when looking for neighbours (a block of distances is this many times the tracks, in
#: 8-byte numbers: 100 MB for 100,000 tracks).
_PROFILE_BLOCK = 128


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with the same content, or the same recording.

    Attributes
    ----------
    paths : tuple of str
        The files' paths relative to the audio folder, sorted.
    policy : str
        What the build did: ``group``, ``keep`` or ``drop-extra``.
    kind : str
        ``exact`` (byte-identical files) or ``near`` (fingerprints alike; byte-identical copies may be among them).
    digest : str
        SHA-256 of the content of an ``exact`` group, hex; empty for ``near``.
    similarity : tuple of float
        For each path, how alike its fingerprint is to the most alike other member's (1.0: the same bytes).
    digests : tuple of str
        For each path, the SHA-256 of the exact copies among the members (empty for the others); none for an
        ``exact`` group, whose members all have ``digest``.
    """

    paths: tuple[str, ...]
    policy: str
    kind: str = "exact"
    digest: str = ""
    similarity: tuple[float, ...] = ()
    digests: tuple[str, ...] = ()

    def similarity_of(self, path: str) -> float:
        return self.similarity[self.paths.index(path)] if self.similarity else 1.0

    def digest_of(self, path: str) -> str:
        """The file's SHA-256 where the search for exact copies computed it, else ``""``."""
        return self.digests[self.paths.index(path)] if self.digests else self.digest


@dataclass(frozen=True)
class CopySet:
    """Files found to be copies, before the build decides what to do with them (:func:`copy_sets`)."""

    paths: tuple[str, ...]
    kind: str
    digest: str = ""
    similarity: tuple[float, ...] = ()
    digests: tuple[str, ...] = ()

    def decided(self, policy: str, paths: tuple[str, ...]) -> DuplicateGroup:
        """The group of those of ``paths`` (a subset of this set's) the build plans, with the policy it got."""
        def each(values: tuple) -> tuple:
            return tuple(values[self.paths.index(path)] for path in paths) if values else ()

        return DuplicateGroup(paths=paths, policy=policy, kind=self.kind, digest=self.digest,
                              similarity=each(self.similarity), digests=each(self.digests))


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


def exact_copies(files: Mapping[str, AudioFile],
                 known: Mapping[str, str] | None = None) -> list[tuple[str, tuple[str, ...]]]:
    """``(digest, paths)`` of every set of two or more byte-identical files among ``files`` (``rel_path ->
    AudioFile``), sorted by their first path. Only files that share their size with another are read, first at
    their edges, then whole where the edges match; ``known`` gives the SHA-256 of files already hashed (the
    journal's, of unchanged files), which are not read."""
    known = known or {}
    by_size: dict[int, list[str]] = {}
    for rel_path, audio in files.items():
        if audio.size > 0 and not audio.problem:
            by_size.setdefault(audio.size, []).append(rel_path)
    candidates: dict[tuple[int, str], list[str]] = {}
    by_digest: dict[str, list[str]] = {}
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        for rel_path in paths:
            if rel_path in known:
                by_digest.setdefault(known[rel_path], []).append(rel_path)
                continue
            edges = edges_sha256(files[rel_path].path, size)
            if edges is not None:
                candidates.setdefault((size, edges), []).append(rel_path)
    hashed_sizes = {files[path].size for paths in by_digest.values() for path in paths}
    for (size, _), paths in candidates.items():
        if len(paths) < 2 and size not in hashed_sizes:
            continue
        for rel_path in paths:
            digest = file_sha256(files[rel_path].path)
            if digest is not None:
                by_digest.setdefault(digest, []).append(rel_path)
    return sorted(((digest, tuple(sorted(paths))) for digest, paths in by_digest.items() if len(paths) > 1),
                  key=lambda item: item[1])


def near_copies(fingerprints: Mapping[str, Fingerprint], *,
                neighbours: int = NEIGHBOURS) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """``(paths, similarities)`` of every set of two or more tracks whose fingerprints link them (directly or
    through others), sorted by their first path; each similarity is that of the path's most alike linked track.

    Fingerprints that are not :attr:`~Fingerprint.comparable` are left out. The result depends only on the
    fingerprints, not on their order.
    """
    paths = sorted(path for path, fingerprint in fingerprints.items() if fingerprint.comparable)
    if len(paths) < 2:
        return []
    parent = list(range(len(paths)))
    best = [0.0] * len(paths)

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    partners: dict[int, list[int]] = {}
    for first, second in sorted(_candidate_pairs([fingerprints[path] for path in paths], neighbours)):
        partners.setdefault(first, []).append(second)
    for first, seconds in sorted(partners.items()):
        values = similarities(fingerprints[paths[first]], [fingerprints[paths[second]] for second in seconds])
        for second, alike in zip(seconds, values):
            if alike < NEAR_COPY_SIMILARITY:
                continue
            alike = float(alike)
            best[first], best[second] = max(best[first], alike), max(best[second], alike)
            low, high = sorted((root(first), root(second)))
            parent[high] = low
    members: dict[int, list[int]] = {}
    for index in range(len(paths)):
        members.setdefault(root(index), []).append(index)
    return sorted(((tuple(paths[index] for index in group), tuple(round(best[index], 3) for index in group))
                   for group in members.values() if len(group) > 1), key=lambda item: item[0])


def _candidate_pairs(fingerprints: list[Fingerprint], neighbours: int) -> set[tuple[int, int]]:
    """``(i, j)`` with ``i < j`` for each fingerprint and its ``neighbours`` nearest by band profile, among those
    made alike (frame rate, bands); the same fingerprints in the same order give the same pairs."""
    pairs: set[tuple[int, int]] = set()
    by_rate: dict[tuple[float, int], list[int]] = {}
    for index, fingerprint in enumerate(fingerprints):
        by_rate.setdefault((fingerprint.frames_per_second, fingerprint.pairs), []).append(index)
    for indices in by_rate.values():
        count = min(neighbours, len(indices) - 1)
        if count < 1:
            continue
        profiles = np.stack([fingerprints[index].profile for index in indices]).astype(np.float64)
        squares = (profiles ** 2).sum(axis=1)
        for start in range(0, len(indices), _PROFILE_BLOCK):
            block = profiles[start:start + _PROFILE_BLOCK]
            distances = np.round(squares[start:start + len(block), None] + squares[None, :] - 2 * block @ profiles.T, 3)
            distances[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
            bounds = np.partition(distances, count - 1, axis=1)[:, count - 1:count]
            for row in range(len(block)):
                # Those nearer than the count-th distance, then those at it in the order of the indices: equal
                # distances (identical profiles) are chosen the same way on every machine.
                closer = np.flatnonzero(distances[row] < bounds[row])
                tied = np.flatnonzero(distances[row] == bounds[row])[:count - len(closer)]
                for column in (*closer, *tied):
                    first, second = sorted((indices[start + row], indices[int(column)]))
                    pairs.add((first, second))
    return pairs


def copy_sets(exact: Iterable[tuple[str, tuple[str, ...]]],
              near: Iterable[tuple[tuple[str, ...], tuple[float, ...]]]) -> list[CopySet]:
    """The sets of copies: exact groups (``(digest, paths)``) and near ones (``(paths, similarities)``) sharing a
    file are merged into one near set; sorted by first path."""
    exact = list(exact)
    parent: dict[str, str] = {}

    def root(path: str) -> str:
        while parent.get(path, path) != path:
            path = parent[path]
        return path

    def join(paths: Iterable[str]) -> None:
        roots = sorted({root(path) for path in paths})
        for other in roots[1:]:
            parent[other] = roots[0]

    alike: dict[str, float] = {}
    digest_by_path: dict[str, str] = {}
    for digest, paths in exact:
        join(paths)
        alike.update(dict.fromkeys(paths, 1.0))
        digest_by_path.update(dict.fromkeys(paths, digest))
    near = list(near)
    for paths, values in near:
        join(paths)
        for path, value in zip(paths, values):
            alike[path] = max(alike.get(path, 0.0), value)
    components: dict[str, list[str]] = {}
    for path in alike:
        components.setdefault(root(path), []).append(path)
    digest_of = {paths: digest for digest, paths in exact}
    sets = []
    for members in components.values():
        paths = tuple(sorted(members))
        if paths in digest_of:
            sets.append(CopySet(paths=paths, kind="exact", digest=digest_of[paths]))
        else:
            sets.append(CopySet(paths=paths, kind="near", similarity=tuple(alike[path] for path in paths),
                                digests=tuple(digest_by_path.get(path, "") for path in paths)))
    return sorted(sets, key=lambda copies: copies.paths)

"""Genre, artist and official split of MTG-Jamendo tracks from its genre TSV files.

A TSV (``autotagging_genre.tsv``, or ``autotagging_genre-{train,validation,test}.tsv`` in a split folder such as
``splits/split-0/``) has the header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, tab-separated, CRLF line
endings, and one extra column per tag (``genre---rock``): a row has six fields or more. ``PATH`` is relative to
the audio folder (``41/241.mp3``; the low-quality copy ``41/241.low.mp3`` matches it too). Tags without the
``genre---`` prefix (mood, instrument) are ignored.

Tags map to top-level genres through ``metadata/jamendo_genre_map.csv`` (or ``--genre-map FILE``). The label is
the genre most of a track's mapped tags name; on a tie, the genre whose first row comes earliest in the map.
Files in a split folder give the official split; a single TSV gives none (the build draws one by artist).
"""
from __future__ import annotations

import collections
import os
import re
from pathlib import Path
from typing import NamedTuple

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import TrackLabel, inside_audio_folder
from genreslice.metadata import MetadataError, Taxonomy, genre_key, load_genre_map, map_taxonomy, open_metadata

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
SPLIT_FILES = {"train": "autotagging_genre-train.tsv", "validation": "autotagging_genre-validation.tsv",
               "test": "autotagging_genre-test.tsv"}
SINGLE_FILE = "autotagging_genre.tsv"
GENRE_PREFIX = "genre---"
_TRACK_ID = re.compile(r"^track_[0-9]{1,12}$")
_ARTIST_ID = re.compile(r"^artist_[0-9]{1,12}$")


class _Row(NamedTuple):
    """One usable TSV row."""

    track_id: str
    artist_id: str
    path: str
    tags: tuple[str, ...]
    split: str | None
    line: int


def find_tsv_files(path: str | os.PathLike) -> list[tuple[Path, str | None]]:
    """``(file, official split or None)`` for a TSV file or a split folder."""
    path = Path(path)
    if path.is_file():
        return [(path, None)]
    if path.is_dir():
        if all((path / name).is_file() for name in SPLIT_FILES.values()):
            return [(path / name, split) for split, name in SPLIT_FILES.items()]
        if (path / SINGLE_FILE).is_file():
            return [(path / SINGLE_FILE, None)]
    raise MetadataError(
        f"MTG-Jamendo metadata {os.fspath(path)!r}: expected a genre TSV file, or a split folder holding "
        f"{', '.join(SPLIT_FILES.values())} (or {SINGLE_FILE})"
    )


def audio_key(rel_path: str) -> str | None:
    """How a ``PATH`` value or an audio file's relative path is matched; None for a path outside the audio folder."""
    key = inside_audio_folder(rel_path)
    if key is None:
        return None
    return key[: -len(".low.mp3")] + ".mp3" if key.endswith(".low.mp3") else key


def read_tsv(path: Path, split: str | None, problems: list[str]) -> list[_Row]:
    """Rows of one MTG-Jamendo genre TSV; bad rows are described in ``problems`` and left out.

    Raises
    ------
    MetadataError
        The file cannot be read, is empty, or its header is not MTG-Jamendo's.
    """
    with open_metadata(path) as handle:
        # A line ends at "\r\n" (as in the real files), "\n" or "\r" only: str.splitlines would also split inside a
        # field at characters such as \x0c or \u2028, and the line numbers in messages would drift.
        lines = [line.rstrip("\r\n") for line in handle]
    if not any(line.strip() for line in lines):
        raise MetadataError(f"{path}: empty file; expected the header {' '.join(HEADER)} (tab-separated)")
    if tuple(lines[0].split("\t")) != HEADER:
        raise MetadataError(f"{path}: line 1: header must be {' '.join(HEADER)} (tab-separated), "
                            f"found {lines[0][:120]!r}")
    rows = []

    def report(number: int, message: str) -> None:
        problems.append(f"{path}: line {number}: {message}; row skipped")

    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(HEADER):
            report(number, f"expected at least {len(HEADER)} tab-separated fields, found {len(fields)}")
            continue
        track_id, artist_id, _, rel_path = (field.strip() for field in fields[:4])
        if not _TRACK_ID.match(track_id):
            report(number, f"TRACK_ID {track_id[:40]!r} is not like track_0000214")
        elif not _ARTIST_ID.match(artist_id):
            report(number, f"ARTIST_ID {artist_id[:40]!r} is not like artist_000005")
        elif audio_key(rel_path) is None:
            report(number, f"PATH {rel_path[:80]!r} leaves the audio folder; it is never read")
        else:
            tags = tuple(tag.strip()[len(GENRE_PREFIX):] for tag in fields[5:]
                         if tag.strip().startswith(GENRE_PREFIX) and tag.strip() != GENRE_PREFIX)
            rows.append(_Row(track_id, artist_id, rel_path, tags, split, number))
    return rows


def choose_genre(tags: tuple[str, ...], mapping: dict[str, str], rank: dict[str, int]) -> str | None:
    """The genre most of ``tags`` map to; a tie goes to the genre ranked first (earliest in the map)."""
    genres = [mapping.get(genre_key(tag)) for tag in tags]
    counts = collections.Counter(genre for genre in genres if genre)
    if not counts:
        return None
    return max(counts, key=lambda genre: (counts[genre], -rank[genre]))


class JamendoLabelSource:
    """Labels, artists and official splits from MTG-Jamendo genre TSV files.

    Parameters
    ----------
    metadata : str or os.PathLike
        A genre TSV or a split folder (``splits/split-0/``).
    genre_map : str or os.PathLike, optional
        A ``tag,genre`` CSV replacing ``metadata/jamendo_genre_map.csv``.
    """

    name = "jamendo"
    reads_audio = False

    def __init__(self, *, metadata: str | os.PathLike | None = None,
                 genre_map: str | os.PathLike | None = None) -> None:
        if metadata is None:
            raise ParameterError("--labels jamendo needs --metadata pointing at a genre TSV or a split folder")
        self.metadata = os.fspath(metadata)
        self.files = find_tsv_files(metadata)
        self.genre_map = None if genre_map is None else os.fspath(genre_map)
        self.mapping = load_genre_map(genre_map)
        self.taxonomy: Taxonomy = map_taxonomy(self.mapping)
        self._rank = {}
        for genre in self.mapping.values():
            if genre:
                self._rank.setdefault(genre, len(self._rank))
        problems: list[str] = []
        self._rows: dict[str, _Row] = {}
        seen_ids: dict[str, _Row] = {}
        first_file: dict[_Row, Path] = {}
        for path, split in self.files:
            for row in read_tsv(path, split, problems):
                key = audio_key(row.path)
                first = seen_ids.get(row.track_id) or self._rows.get(key)
                if first is not None:
                    what = f"TRACK_ID {row.track_id}" if first.track_id == row.track_id else f"PATH {row.path}"
                    problems.append(f"{path}: line {row.line}: {what} is already listed at {first_file[first]}: "
                                    f"line {first.line}; row skipped")
                    continue
                seen_ids[row.track_id] = row
                first_file[row] = path
                self._rows[key] = row
        self.metadata_problems = tuple(problems)

    def settings(self) -> dict:
        return {"source": self.name, "metadata": [os.fspath(path.absolute()) for path, _ in self.files],
                "genre_map": self.genre_map}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        key = audio_key(rel_path)
        row = self._rows.get(key) if key else None
        if row is None:
            return TrackLabel(genre=None, artist=None, reason=f"not listed in {self.metadata}", unlisted=True)
        genre = choose_genre(row.tags, self.mapping, self._rank)
        if genre is None:
            shown = ", ".join(row.tags[:5]) or "none"
            return TrackLabel(genre=None, artist=row.artist_id, track_id=row.track_id, split=row.split,
                              reason=f"no genre tag maps to a genre (tags: {shown})")
        return TrackLabel(genre=genre, artist=row.artist_id, track_id=row.track_id, split=row.split)

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return sorted(row.track_id for row in self._rows.values() if row.track_id not in labelled_ids)

"""Genre, artist and official split of FMA tracks from FMA's ``tracks.csv``.

``tracks.csv`` has three header rows (column group, column name, then ``track_id``); records are read as FMA's own
``pd.read_csv(path, index_col=0, header=[0, 1])`` reads them, keeping only the columns used:

* ``('track', 'genre_top')``: the label, one of FMA's 16 top-level genres; empty when a track's genres span
  several top-level genres (or it has none): such tracks are skipped with that reason;
* ``('artist', 'id')``: the artist, which keeps an artist's tracks in one split;
* ``('set', 'split')``: the official, artist-disjoint split (``training``/``validation``/``test``);
* ``('set', 'subset')``: the smallest subset holding the track; subsets nest (small within medium within large),
  so ``--subset medium`` keeps ``small`` and ``medium`` tracks.

An audio file's track id is its file name: ``000/000002.mp3`` is track ``2``.
"""
from __future__ import annotations

import csv
import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import TrackLabel
from genreslice.metadata import MetadataError, Taxonomy, fma_taxonomy, open_metadata

TRACKS_CSV = "tracks.csv"
SUBSETS = ("small", "medium", "large")
#: FMA's split names -> the build's.
FMA_SPLITS = {"training": "train", "validation": "validation", "test": "test"}
GENRE_TOP = ("track", "genre_top")
ARTIST_ID = ("artist", "id")
SPLIT = ("set", "split")
SUBSET = ("set", "subset")
COLUMNS = (GENRE_TOP, ARTIST_ID, SPLIT, SUBSET)
_DIGITS = re.compile(r"^[0-9]{1,12}$")
#: A line that starts like a tracks.csv record, to the end of the line or of the field (fields joined by NUL).
_RECORD_START = re.compile(r"[\r\n]([0-9]{1,12}),[^\r\n\x00]*")
_MAX_FIELD_CHARS = 1 << 30


def find_tracks_csv(path: str | os.PathLike) -> Path:
    """``tracks.csv`` itself, or the one inside an ``fma_metadata/`` folder."""
    path = Path(path)
    candidate = path / TRACKS_CSV if path.is_dir() else path
    if not candidate.is_file():
        raise MetadataError(f"FMA metadata {os.fspath(path)!r}: no {TRACKS_CSV} there "
                            "(give fma_metadata/ or its tracks.csv with --metadata)")
    return candidate


def read_tracks(path: Path) -> Iterator[tuple[int, list[str] | str]]:
    """The used fields of each ``tracks.csv`` record: ``(line, [track_id, genre_top, artist_id, split, subset])``,
    or ``(line, problem)`` for a record with the wrong number of fields or that swallowed other records.

    Records are read as ``pd.read_csv(path, index_col=0, header=[0, 1])`` reads them (quoted fields may hold
    commas and newlines), with the csv module so that a malformed record is reported with its line and skipped
    instead of failing the whole file. A record that swallowed the records after it (an unterminated quote) says
    so, with how many and which.

    Raises
    ------
    MetadataError
        The file cannot be read, is not UTF-8, is empty, is not in FMA's layout, or lacks a used column.
    """
    # pandas reads fields of any length (artist bios can be long); the csv module stops at 128 KiB by default.
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_FIELD_CHARS))
    with open_metadata(path) as handle:
        reader = csv.reader(handle)
        try:
            header = [row for _, row in zip(range(3), reader)]
            if not header:
                raise MetadataError(f"{path}: empty file; expected FMA's tracks.csv with three header rows")
            if len(header) < 3 or len(header[0]) != len(header[1]) or header[2][:1] != ["track_id"]:
                raise MetadataError(f"{path}: line 1-3: not FMA's tracks.csv layout (two header rows of column "
                                    "names, then a row starting with 'track_id')")
            positions = {(group.strip(), name.strip()): index
                         for index, (group, name) in enumerate(zip(header[0], header[1]))}
            missing = [f"({group!r}, {name!r})" for group, name in COLUMNS if (group, name) not in positions]
            if missing:
                raise MetadataError(f"{path}: line 1-2: header lacks column {', '.join(missing)}")
            wanted = [0] + [positions[column] for column in COLUMNS]
            width = len(header[0])
            # One record of lookahead tells whether a bad record ran to the end of the file.
            for (start, end, row), following in itertools.pairwise(itertools.chain(_records(reader), [None])):
                swallowed = _swallowed_records(row, width) if end > start else []
                if len(row) == width and not swallowed:
                    yield start, [row[index].strip() for index in wanted]
                else:
                    yield start, _describe_bad_record(row, width, swallowed, end, at_end=following is None)
        except csv.Error as err:
            raise MetadataError(f"{path}: line {reader.line_num}: {err}") from err


def _records(reader: Any) -> Iterator[tuple[int, int, list[str]]]:
    """``(first line, last line, fields)`` of each record the ``csv.reader`` yields."""
    start = reader.line_num + 1
    for row in reader:
        yield start, reader.line_num, row
        start = reader.line_num + 1


def _swallowed_records(row: list[str], width: int) -> list[str]:
    """Track ids of the lines in ``row``'s fields that start like a record, as after an unterminated quote.

    Inside a record only a quoted field holds a line break, so each swallowed line (up to the quote that ends the
    swallowing) is in one field. A record with the right number of fields counts only lines that hold a whole
    record (``width - 1`` commas): a bio may well hold a line such as "2010, we ...".
    """
    return [match[1] for match in _RECORD_START.finditer("\x00".join(row))
            if len(row) != width or match[0].count(",") >= width - 1]


def _describe_bad_record(row: list[str], width: int, swallowed: list[str], end: int, *, at_end: bool) -> str:
    """Why a record is skipped: the wrong number of fields, other records swallowed (which ones), or both."""
    problems = [f"expected {width} fields, found {len(row)}"] if len(row) != width else []
    if swallowed:
        shown = ", ".join(swallowed[:5]) + (", ..." if len(swallowed) > 5 else "")
        place = f"line {end}, the end of the file" if at_end else f"line {end}"
        lines = "1 line" if len(swallowed) == 1 else f"{len(swallowed)} lines"
        problems.append(f"the record runs to {place} (an unterminated quote?) and swallows {lines} starting with "
                        f"a track id ({shown}); those tracks are not labelled")
    return ": ".join(problems)


class FmaLabelSource:
    """Labels, artists and official splits from FMA's ``tracks.csv``.

    Parameters
    ----------
    metadata : str or os.PathLike
        ``fma_metadata/`` or its ``tracks.csv``.
    subset : {"small", "medium", "large"}, optional
        Keep the tracks of this subset (subsets nest); all tracks when omitted.
    """

    name = "fma"
    reads_audio = False

    def __init__(self, *, metadata: str | os.PathLike | None = None, subset: str | None = None) -> None:
        if metadata is None:
            raise ParameterError("--labels fma needs --metadata pointing at fma_metadata/ or its tracks.csv")
        if subset is not None and subset not in SUBSETS:
            raise ParameterError(f"subset={subset!r} must be one of {', '.join(SUBSETS)}")
        self.tracks_csv = find_tracks_csv(metadata)
        self.subset = subset
        self.taxonomy: Taxonomy = fma_taxonomy()
        self._entries, self._outside_subset, problems = self._load()
        self.metadata_problems = tuple(problems)

    def _load(self) -> tuple[dict[str, tuple[str, str, str]], set[str], list[str]]:
        top_levels = set(self.taxonomy.genres)
        keep = set(SUBSETS[:SUBSETS.index(self.subset) + 1]) if self.subset else None
        entries: dict[str, tuple[str, str, str]] = {}
        outside: set[str] = set()
        problems: list[str] = []

        def report(line: int, message: str) -> None:
            problems.append(f"{self.tracks_csv}: line {line}: {message}; row skipped")

        for line, fields in read_tracks(self.tracks_csv):
            if isinstance(fields, str):
                report(line, fields)
                continue
            raw_id, genre, artist, split, subset = fields
            if not _DIGITS.match(raw_id):
                report(line, f"track id {raw_id[:40]!r} is not a number")
                continue
            track_id = str(int(raw_id))
            if track_id in entries or track_id in outside:
                report(line, f"track {track_id} appears twice")
                continue
            if subset not in SUBSETS:
                report(line, f"track {track_id} has subset {subset[:40]!r}, not one of {', '.join(SUBSETS)}")
                continue
            if keep is not None and subset not in keep:
                outside.add(track_id)
                continue
            if genre and genre not in top_levels:
                report(line, f"track {track_id} has genre_top {genre[:40]!r}, not an FMA top-level genre")
                continue
            if split and split not in FMA_SPLITS:
                report(line, f"track {track_id} has split {split[:40]!r}, not one of {', '.join(FMA_SPLITS)}")
                continue
            if artist and not _DIGITS.match(artist):
                report(line, f"track {track_id} has artist id {artist[:40]!r}, not a number")
                continue
            entries[track_id] = (genre, str(int(artist)) if artist else "", FMA_SPLITS.get(split, ""))
        return entries, outside, problems

    def settings(self) -> dict:
        return {"source": self.name, "taxonomy": "fma", "metadata": os.fspath(self.tracks_csv.absolute()),
                "subset": self.subset}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        stem = Path(rel_path).name.split(".", 1)[0]
        if not _DIGITS.match(stem):
            return TrackLabel(genre=None, artist=None, unlisted=True,
                              reason="file name is not an FMA track id (expected e.g. 000/000002.mp3)")
        track_id = str(int(stem))
        entry = self._entries.get(track_id)
        if entry is None:
            if track_id in self._outside_subset:
                return TrackLabel(genre=None, artist=None, track_id=track_id,
                                  reason=f"track {track_id} is not in the {self.subset!r} subset")
            return TrackLabel(genre=None, artist=None, track_id=track_id, unlisted=True,
                              reason=f"track {track_id} has no row in {TRACKS_CSV}")
        genre, artist, split = entry
        if not genre:
            return TrackLabel(genre=None, artist=artist or None, track_id=track_id, split=split or None,
                              reason="no genre_top in tracks.csv (the track spans several top-level genres, or none)")
        return TrackLabel(genre=genre, artist=artist or None, track_id=track_id, split=split or None)

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return sorted((track_id for track_id in self._entries if track_id not in labelled_ids), key=int)

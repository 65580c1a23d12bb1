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
import os
import re
from collections.abc import Iterator
from pathlib import Path

from genre_getters.base import TrackLabel
from metadata import MetadataError, Taxonomy, fma_taxonomy

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
    or ``(line, problem)`` for a record with the wrong number of fields.

    Records are read as ``pd.read_csv(path, index_col=0, header=[0, 1])`` reads them (quoted fields may hold
    commas and newlines), with the csv module so that a malformed record is reported with its line and skipped
    instead of failing the whole file.

    Raises
    ------
    MetadataError
        The file cannot be read, is empty, is not in FMA's layout, or lacks a used column.
    """
    # pandas reads fields of any length (artist bios can be long); the csv module stops at 128 KiB by default.
    csv.field_size_limit(max(csv.field_size_limit(), _MAX_FIELD_CHARS))
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
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
            start = reader.line_num + 1
            for row in reader:
                if len(row) != width:
                    yield start, f"expected {width} fields, found {len(row)}"
                else:
                    yield start, [row[index].strip() for index in wanted]
                start = reader.line_num + 1
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise MetadataError(f"{path}: cannot read: {err}") from err


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
            raise ValueError("--labels fma needs --metadata pointing at fma_metadata/ or its tracks.csv")
        if subset is not None and subset not in SUBSETS:
            raise ValueError(f"subset={subset!r} must be one of {', '.join(SUBSETS)}")
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

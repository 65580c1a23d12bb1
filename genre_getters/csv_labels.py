"""Classes from a CSV file of your own: ``path,label`` rows, optionally ``artist`` and ``split``.

The file is UTF-8 CSV with a header row naming its columns, in any order: ``path`` (the audio file, relative to
the audio folder, ``/``-separated) and ``label`` are required; ``artist`` (splits are drawn by artist; a track
without one is split on its own) and ``split`` (``train``, ``validation`` or ``test``: an official split the build
keeps) are optional. Other columns are ignored (their names are recorded in ``dataset.json``).

A track may carry several labels, ``;``-separated in one row or in several rows for one path; their artist and
split must agree. This single-label source labels a track that has exactly one; a track with several is skipped
with them in its reason. The classes are the labels found, as written (spaces collapsed), sorted; no genre map.

A bad row is reported with its file and line and skipped, the build goes on: a path that is empty or could lead
outside the audio folder (absolute, ``..``, ``~``, a backslash), an empty label, an unknown split, a control
character in a label or artist (runs of spaces, tabs and newlines become one space), rows of one path that
disagree. A file without the two required columns stops the
build before any work.
"""
from __future__ import annotations

import csv
import os
import unicodedata
from pathlib import Path
from typing import NamedTuple

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import SPLITS, TrackLabel, inside_audio_folder, normalize_text
from genreslice.metadata import MetadataError, Taxonomy, genre_key, open_metadata

REQUIRED = ("path", "label")
OPTIONAL = ("artist", "split")
#: Labels in one cell are separated by this.
SEPARATOR = ";"


class _Track(NamedTuple):
    """What the rows of one path say."""

    labels: tuple[str, ...]
    artist: str | None
    split: str | None
    line: int


def read_label_csv(path: str | os.PathLike, problems: list[str],
                   ignored: list[str] | None = None) -> dict[str, _Track]:
    """``relative path -> _Track`` from a label CSV; bad rows are described in ``problems`` and left out, the names
    of columns it does not use are added to ``ignored``.

    Raises
    ------
    MetadataError
        The file cannot be read, is not UTF-8, is empty, or lacks the ``path`` or ``label`` column.
    """
    tracks: dict[str, _Track] = {}
    with open_metadata(path) as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise MetadataError(f"{os.fspath(path)}: empty file; expected a header row with the columns path and "
                                    "label (optional: artist, split)")
            columns = [normalize_text(name).casefold() for name in header]
            missing = [name for name in REQUIRED if name not in columns]
            if missing:
                raise MetadataError(f"{os.fspath(path)}: line 1: the header lacks the column "
                                    f"{' and '.join(missing)}; it has {', '.join(map(repr, header))}")
            if ignored is not None:
                ignored.extend(name for name in header if normalize_text(name).casefold() not in (*REQUIRED, *OPTIONAL))
            where = {name: columns.index(name) for name in (*REQUIRED, *OPTIONAL) if name in columns}
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                # A quoted field may span lines (an unterminated quote swallows the rest of the file): say which.
                lines = f"line {start}" if reader.line_num == start else f"lines {start}-{reader.line_num}"
                _add_row(tracks, row, where, path, start, lines, problems)
        except csv.Error as err:
            raise MetadataError(f"{os.fspath(path)}: line {reader.line_num}: not readable as CSV: {err}") from err
    return tracks


def _add_row(tracks: dict[str, _Track], row: list[str], where: dict[str, int], path: str | os.PathLike,
             line: int, lines: str, problems: list[str]) -> None:
    """Add one CSV row (starting at ``line``; ``lines`` says where it is) to ``tracks``, or describe what is wrong
    with it in ``problems``."""
    def report(message: str) -> None:
        problems.append(f"{os.fspath(path)}: {lines}: {message}; row skipped")

    if not any(cell.strip() for cell in row):
        return  # a blank line
    if len(row) <= max(where.values()):
        report(f"{len(row)} fields, fewer than the header's")
        return
    cell = {name: row[index] for name, index in where.items()}
    rel_path = inside_audio_folder(cell["path"].strip())
    if rel_path is None:
        report(f"path {cell['path']!r} is empty or leads outside the audio folder")
        return
    labels = tuple(dict.fromkeys(normalize_text(part) for part in cell["label"].split(SEPARATOR)
                                 if normalize_text(part)))
    artist = normalize_text(cell.get("artist", "")) or None
    split = normalize_text(cell.get("split", "")).casefold() or None
    if not labels:
        report("empty label")
    elif any(_has_control(text) for text in (*labels, artist or "")):
        report("a control character in its label or artist")
    elif split is not None and split not in SPLITS:
        report(f"split {cell['split']!r} is not one of {', '.join(SPLITS)}")
    elif rel_path in tracks and (tracks[rel_path].artist, tracks[rel_path].split) != (artist, split):
        first = tracks[rel_path]
        report(f"path {rel_path!r} is also at line {first.line} with another artist or split")
    else:
        first = tracks.get(rel_path)
        merged = tuple(dict.fromkeys((*first.labels, *labels))) if first else labels
        tracks[rel_path] = _Track(merged, artist, split, first.line if first else line)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in text)


class CsvLabelSource:
    """Classes from a label CSV (``--labels csv --metadata FILE``).

    Parameters
    ----------
    audio_dir : str or os.PathLike
        The audio folder the CSV's paths are relative to (rows whose file is not there are counted).
    metadata : str or os.PathLike
        The CSV file.

    Raises
    ------
    ParameterError
        No ``metadata``.
    MetadataError
        As :func:`read_label_csv`.
    """

    name = "csv"
    reads_audio = False

    def __init__(self, audio_dir: str | os.PathLike, *, metadata: str | os.PathLike | None = None) -> None:
        if metadata is None:
            raise ParameterError("--labels csv needs --metadata pointing at a CSV file with the columns path and "
                                 "label (optional: artist, split)")
        self.metadata = os.fspath(metadata)
        self._audio_dir = Path(audio_dir)
        problems: list[str] = []
        self.ignored_columns: list[str] = []
        self._tracks = read_label_csv(metadata, problems, self.ignored_columns)
        self.metadata_problems = tuple(problems)
        classes = sorted({label for track in self._tracks.values() if len(track.labels) == 1
                          for label in track.labels})
        if not classes:
            raise MetadataError(f"{self.metadata}: no usable row with a single label"
                                + (f" ({len(problems)} rows reported: {problems[0]}...)" if problems else ""))
        self.taxonomy = Taxonomy(genres=tuple(classes), aliases={genre_key(name): name for name in reversed(classes)})

    def settings(self) -> dict:
        return {"source": self.name, "taxonomy": "csv", "metadata": os.fspath(Path(self.metadata).absolute()),
                "ignored_columns": self.ignored_columns}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        track = self._tracks.get(rel_path)
        if track is None:
            return TrackLabel(genre=None, artist=None, reason=f"not listed in {self.metadata}", unlisted=True)
        if len(track.labels) > 1:
            shown = ", ".join(repr(label) for label in track.labels[:5])
            return TrackLabel(genre=None, artist=track.artist, split=track.split,
                              reason=f"several labels ({shown}): a single-label data set takes tracks with one")
        return TrackLabel(genre=track.labels[0], artist=track.artist, split=track.split)

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        """The CSV's paths that are not files in the audio folder, sorted."""
        return sorted((rel_path for rel_path in self._tracks if not (self._audio_dir / rel_path).is_file()),
                      key=lambda rel_path: (len(rel_path), rel_path))

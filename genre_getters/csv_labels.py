"""Classes from a CSV file of your own: ``path,label`` rows, optionally ``artist`` and ``split``.

The file is UTF-8 CSV with a header row naming its columns, in any order: ``path`` (the audio file, relative to
the audio folder, ``/``-separated) and ``label`` are required; ``artist`` (splits are drawn by artist; a track
without one is split on its own) and ``split`` (``train``, ``validation`` or ``test``: an official split the build
keeps) are optional. Other columns are ignored (their names are recorded in ``dataset.json``).

A track may carry several labels, ``;``-separated in one row or in several rows for one path; their artist and
split must agree. A single-label build labels a track that has exactly one; a track with several is skipped
with them in its reason. A multi-label one (``multilabel=True``, ``--task multilabel``) labels every track with all
of its labels. The classes are the labels found, as written (spaces collapsed), sorted; no genre map.

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
from genreslice.genre_getters.base import SPLITS, TAG_SEPARATOR, TrackLabel, inside_audio_folder, normalize_text
from genreslice.metadata import MetadataError, Taxonomy, open_metadata

REQUIRED = ("path", "label")
OPTIONAL = ("artist", "split")
#: Labels in one cell are separated by this.
SEPARATOR = TAG_SEPARATOR


class _Track(NamedTuple):
    """What the rows of one path say; ``conflict`` is why they cannot be used (rows that disagree), else ``""``."""

    labels: tuple[str, ...]
    artist: str | None
    split: str | None
    line: int
    conflict: str = ""


def path_key(rel_path: str) -> str:
    """How a CSV path and an audio file's relative path are matched: Unicode NFC (a name copied from macOS is NFD)."""
    return unicodedata.normalize("NFC", rel_path)


def read_label_csv(path: str | os.PathLike, problems: list[str],
                   ignored: list[str] | None = None) -> dict[str, _Track]:
    """``path key -> _Track`` from a label CSV; bad rows are described in ``problems`` and left out, the names of
    columns it does not use are added to ``ignored``.

    Raises
    ------
    MetadataError
        The file cannot be read, is not UTF-8, is empty, lacks the ``path`` or ``label`` column or names a column
        twice, or has a field over the csv module's limit (128 KiB: an unterminated quote in a large file).
    """
    tracks: dict[str, _Track] = {}
    shown = os.fspath(path)
    with open_metadata(path) as handle:
        reader = csv.reader(handle)
        start = 1
        try:
            header = next(reader, None)
            if header is None:
                raise MetadataError(f"{shown}: empty file; expected a header row with the columns path and label "
                                    "(optional: artist, split)")
            columns = [normalize_text(name).casefold() for name in header]
            missing = [name for name in REQUIRED if name not in columns]
            if missing:
                raise MetadataError(f"{shown}: line 1: the header lacks the column {' and '.join(missing)}; it has "
                                    f"{', '.join(map(repr, header))}")
            twice = sorted({name for name in columns if name in (*REQUIRED, *OPTIONAL) and columns.count(name) > 1})
            if twice:
                raise MetadataError(f"{shown}: line 1: the header names the column {' and '.join(twice)} twice")
            if ignored is not None:
                ignored.extend(name for name, column in zip(header, columns) if column not in (*REQUIRED, *OPTIONAL))
            where = {name: columns.index(name) for name in (*REQUIRED, *OPTIONAL) if name in columns}
            while True:
                start = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    break
                if reader.line_num != start:
                    # A quoted field over several lines: in a list of paths and labels, an unterminated quote,
                    # which swallows the rows after it up to the next quote or the end of the file.
                    problems.append(f"{shown}: lines {start}-{reader.line_num}: a quoted field runs over these "
                                    "lines (an unterminated quote?); row skipped, and the rows it swallowed")
                    continue
                _add_row(tracks, row, columns, where, shown, start, problems)
        except csv.Error as err:
            raise MetadataError(f"{shown}: from line {start}: not readable as CSV: {err} (an unterminated quote "
                                "swallows the rest of the file)") from err
    return tracks


def _add_row(tracks: dict[str, _Track], row: list[str], columns: list[str], where: dict[str, int], shown: str,
             line: int, problems: list[str]) -> None:
    """Add one CSV row to ``tracks``, or describe what is wrong with it in ``problems``."""
    def report(message: str) -> None:
        problems.append(f"{shown}: line {line}: {message}; row skipped")

    if not any(cell.strip() for cell in row):
        return  # a blank line
    if len(row) <= max(where.values()):
        report(f"{len(row)} fields, too few for the columns {', '.join(where)}")
        return
    if [normalize_text(cell).casefold() for cell in row] == columns:
        report("the header again (two CSV files joined?)")
        return
    cell = {name: row[index] for name, index in where.items()}
    rel_path = inside_audio_folder(cell["path"].strip())
    if rel_path is None:
        hint = "; write paths with /" if "\\" in cell["path"] else ""
        report(f"path {cell['path']!r} is empty or leads outside the audio folder{hint}")
        return
    labels = tuple(dict.fromkeys(normalize_text(part) for part in cell["label"].split(SEPARATOR)
                                 if normalize_text(part)))
    artist = normalize_text(cell.get("artist", "")) or None
    split = normalize_text(cell.get("split", "")).casefold() or None
    key = path_key(rel_path)
    first = tracks.get(key)
    if not labels:
        report("empty label")
    elif any(_has_control(text) for text in (*labels, artist or "")):
        report("a control character in its label or artist")
    elif split is not None and split not in SPLITS:
        report(f"split {cell['split']!r} is not one of {', '.join(SPLITS)}")
    elif first is not None and ((first.artist or "").casefold(), first.split) != ((artist or "").casefold(), split):
        report(f"path {rel_path!r} is also at line {first.line} with another artist or split; the track is "
               "skipped")
        tracks[key] = first._replace(conflict=f"its rows at lines {first.line} and {line} of {shown} give another "
                                              "artist or split")
    else:
        merged = tuple(dict.fromkeys((*first.labels, *labels))) if first else labels
        tracks[key] = _Track(merged, artist, split, first.line if first else line, first.conflict if first else "")


def _has_control(text: str) -> bool:
    """A control or invisible formatting character (a zero-width space, a direction mark), but the joiner of emoji
    sequences; spaces, tabs and newlines are collapsed before this is asked."""
    return any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") and char != "\u200d" for char in text)


class CsvLabelSource:
    """Classes from a label CSV (``--labels csv --metadata FILE``).

    Parameters
    ----------
    metadata : str or os.PathLike
        The CSV file; its paths are relative to the audio folder the build reads.

    Raises
    ------
    ParameterError
        No ``metadata``.
    MetadataError
        As :func:`read_label_csv`; or no track has exactly one label.
    """

    name = "csv"
    reads_audio = False

    def __init__(self, *, metadata: str | os.PathLike | None = None, multilabel: bool = False) -> None:
        if metadata is None:
            raise ParameterError("--labels csv needs --metadata pointing at a CSV file with the columns path and "
                                 "label (optional: artist, split)")
        self.metadata = os.fspath(metadata)
        problems: list[str] = []
        self.ignored_columns: list[str] = []
        self._tracks = read_label_csv(metadata, problems, self.ignored_columns)
        self.metadata_problems = tuple(problems)
        self._asked: set[str] = set()  # the paths label() was asked about: the build's audio files
        self.multilabel = bool(multilabel)
        if self.multilabel:
            usable = [track for track in self._tracks.values() if track.labels and not track.conflict]
            if not usable:
                raise MetadataError(f"{self.metadata}: no track has a usable label: {len(self._tracks)} tracks "
                                    f"listed, {len(problems)} rows reported"
                                    + (f" (the first: {problems[0]})" if problems else ""))
            self.taxonomy = Taxonomy.of_classes(label for track in usable for label in track.labels)
            return
        single = [track for track in self._tracks.values() if len(track.labels) == 1 and not track.conflict]
        if not single:
            several = sum(1 for track in self._tracks.values() if len(track.labels) > 1)
            raise MetadataError(
                f"{self.metadata}: no track has exactly one label, and a single-label data set needs them "
                "(--task multilabel takes tracks with several): "
                f"{len(self._tracks)} tracks listed, {several} with several labels, {len(problems)} rows reported"
                + (f" (the first: {problems[0]})" if problems else ""))
        self.taxonomy = Taxonomy.of_classes(track.labels[0] for track in single)

    def settings(self) -> dict:
        return {"source": self.name, "taxonomy": "csv", "metadata": os.fspath(Path(self.metadata).absolute()),
                "ignored_columns": self.ignored_columns}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        key = path_key(rel_path)
        self._asked.add(key)
        track = self._tracks.get(key)
        if track is None:
            return TrackLabel(genre=None, artist=None, reason=f"not listed in {self.metadata}", unlisted=True)
        if track.conflict:
            return TrackLabel(genre=None, artist=None, reason=track.conflict)
        if self.multilabel:
            return TrackLabel(genre=None, tags=track.labels, artist=track.artist, split=track.split)
        if len(track.labels) > 1:
            shown = ", ".join(repr(label) for label in track.labels[:5])
            return TrackLabel(genre=None, artist=track.artist, split=track.split,
                              reason=f"several labels ({shown}): a single-label data set takes tracks with one "
                                     "(--task multilabel uses them all)")
        return TrackLabel(genre=track.labels[0], artist=track.artist, split=track.split)

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        """The CSV's paths that name none of the audio files the build found (those :meth:`label` was asked
        about), sorted."""
        return sorted((key for key in self._tracks if key not in self._asked), key=lambda key: (len(key), key))

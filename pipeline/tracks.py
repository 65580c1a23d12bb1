"""One audio file's row of ``tracks.csv``, from planning to the file: the one definition of its columns."""
from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from genreslice.genre_getters.base import TAG_SEPARATOR  # what joins a track's tags in the tags column


@dataclass
class TrackRow:
    """One discovered audio file: its label, split and fate; the fields are the ``tracks.csv`` columns, in order.

    A plan makes one per file and settles ``split``, ``status`` and ``reason``; the audio work of a track to build
    gives it its final ``status``, ``reason``, ``n_slices`` and ``duration_s``.

    Attributes
    ----------
    track_id : str
        The label source's id, or one derived from the path (``layout.track_id_for_path``); names the slice folder.
    path : str
        POSIX path relative to the audio folder (undecodable bytes as surrogates, see :meth:`to_csv_row`).
    artist, genre : str
        From the label source; empty when unknown (``genre`` is empty in a multi-label data set).
    tags : str
        A multi-label data set's labels of the track, joined by :data:`TAG_SEPARATOR`; empty in a single-label one
        (whose ``tracks.csv`` has no such column).
    split : str
        ``train``, ``validation`` or ``test``; empty for a file without a genre.
    status : str
        One of ``layout.STATUSES``; a plan marks the tracks that still need audio work ``plan.TO_BUILD``.
    reason : str
        Why a file failed or was skipped, or a note on a built one; empty otherwise.
    n_slices : int
        Slices written.
    duration_s : str
        Seconds of audio with two decimals, empty when not measured.
    """

    track_id: str
    path: str
    artist: str = ""
    genre: str = ""
    tags: str = ""
    split: str = ""
    status: str = "skipped"
    reason: str = ""
    n_slices: int = 0
    duration_s: str = ""

    @property
    def classes(self) -> tuple[str, ...]:
        """The track's classes: its tags in a multi-label data set, else its genre (none when it has none)."""
        if self.tags:
            return tuple(self.tags.split(TAG_SEPARATOR))
        return (self.genre,) if self.genre else ()

    def to_csv_row(self, columns: tuple[str, ...] | None = None) -> tuple:
        """The values of ``columns`` (default :data:`TRACK_COLUMNS`), in order, as ``tracks.csv`` holds them.

        A file name that is not valid UTF-8 keeps its odd bytes visible as ``\\xNN``, so the CSV stays valid UTF-8.
        """
        path = os.fsencode(self.path).decode("utf-8", errors="backslashreplace")
        return tuple(path if column == "path" else getattr(self, column) for column in columns or TRACK_COLUMNS)

    @classmethod
    def from_csv_row(cls, record: Mapping[str, str]) -> TrackRow:
        """The row a ``tracks.csv`` record describes (``csv.DictReader`` gives text; ``n_slices`` is made a number).

        A path's escaped bytes stay escaped: ``to_csv_row`` of the result gives the record back.
        """
        return cls(**{**{column: record[column] for column in TRACK_COLUMNS}, "tags": record.get("tags") or "",
                      "n_slices": int(record["n_slices"])})

    def with_outcome(self, *, status: str, reason: str, n_slices: int, duration_s: str) -> TrackRow:
        """A copy holding the audio work's outcome."""
        return replace(self, status=status, reason=reason, n_slices=n_slices, duration_s=duration_s)

    def with_outcome_of(self, other: TrackRow) -> TrackRow:
        """A copy holding the audio work's outcome recorded in ``other`` (the journal's row of the same track)."""
        return self.with_outcome(status=other.status, reason=other.reason, n_slices=other.n_slices,
                                 duration_s=other.duration_s)


#: The columns of a multi-label data set's ``tracks.csv``, in order.
MULTILABEL_TRACK_COLUMNS = tuple(field.name for field in fields(TrackRow))
#: The columns of a single-label data set's ``tracks.csv``, in order.
TRACK_COLUMNS = tuple(name for name in MULTILABEL_TRACK_COLUMNS if name != "tags")


def read_tracks_csv(path: str | os.PathLike) -> list[TrackRow]:
    """The rows of a data set's ``tracks.csv``.

    Raises
    ------
    OSError
        The file cannot be read.
    KeyError, ValueError
        A row lacks a column or holds a ``n_slices`` that is not a number (a damaged file).
    """
    with open(path, newline="", encoding="utf-8") as handle:
        return [TrackRow.from_csv_row(record) for record in csv.DictReader(handle)]


def count_split_changes(before: list[TrackRow], after: list[TrackRow]) -> int:
    """Tracks built (``ok``) in both lists whose split differs: what a re-run with other split ratios, labels or
    genres moved."""
    old = {row.path: row.split for row in before if row.status == "ok"}
    return sum(1 for row in after if row.status == "ok" and row.path in old and old[row.path] != row.split)


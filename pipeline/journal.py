"""The build journal: one JSON line per finished track, appended as tracks finish.

A track's line is written only after its slice folder is in its final place, so every line describes
finished work. A line cut short by a crash is dropped on load (and truncated away before the next append).
A line that is not a well-formed record (damaged on disk, edited by hand) counts as absent: its track, and any
other line naming the same path or track id before it, is not trusted, so the build renders that track again.
A damaged line is never read as an instruction to delete anything.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from genreslice.pipeline import layout
from genreslice.pipeline.errors import OutputError
from genreslice.pipeline.tracks import TrackRow

logger = logging.getLogger(__name__)

_FSYNC_INTERVAL_S = 2.0


def load_journal(path: str | os.PathLike, *, rewrite_damaged: bool = False) -> dict[str, dict]:
    """Read the journal into ``{rel_path: record}``: the last record for a path wins, and the dict is ordered by
    each path's last record, so a later entry published its track folder after an earlier one.

    A torn last line is cut off the file so later appends start on a fresh line. A damaged line (see
    :func:`record_problem`) is logged and dropped together with the earlier records of its path and track id;
    with ``rewrite_damaged`` (the caller holds the build lock) the journal is then rewritten with the records kept,
    so the damage is reported once.
    """
    path = Path(path)
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    damaged = False
    good_end = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith(b"\n"):
                break
            good_end += len(line)
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            problem = record_problem(record)
            if not problem:
                records.pop(record["path"], None)
                records[record["path"]] = record
                continue
            logger.warning("ignoring line %d of %s (%s); its track will be built again", number, path, problem)
            damaged = True
            if isinstance(record, dict):
                doubtful = [key for key, kept in records.items()
                            if key == record.get("path") or kept["track_id"] == record.get("track_id")]
                for key in doubtful:
                    del records[key]
    if damaged and rewrite_damaged:
        text = "".join(json.dumps(record, sort_keys=True) + "\n" for record in records.values())
        try:
            layout.write_text_atomic(path, text)
        except OSError as err:
            raise OutputError(f"cannot rewrite the build journal {path}: {err.strerror or err}") from err
    elif good_end != path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return records


@dataclass(frozen=True)
class JournalRecord:
    """One journal line: a track's row after its audio work, and what a later run needs to trust that work.

    Attributes
    ----------
    row : TrackRow
        The track's row with its final status (``ok``, ``failed`` or ``too_short``).
    size, mtime_ns : int
        The audio file's when it was built; a later run builds a changed file again.
    slice_bytes : tuple of int or None
        The size of each slice PNG written; None in journals of older versions, which recorded none.
    transient : bool
        The failure says nothing about the file's content, so a later run tries it again; journals of older
        versions do not say, and count as True.
    attempts : int
        Times the track failed on this file, this time included; recorded for failures only.
    sha256 : str or None
        The file's SHA-256 (hex) when it was built; None in journals of older versions and for tracks not built.
    fingerprint : dict or None
        The built track's fingerprint record (:meth:`~genreslice.pipeline.fingerprint.Fingerprint.to_json`); None
        in journals of older versions (computed from the slices by a later build, see ``build``).
    """

    row: TrackRow
    size: int
    mtime_ns: int
    slice_bytes: tuple[int, ...] | None = None
    transient: bool = True
    attempts: int = 1
    sha256: str | None = None
    fingerprint: dict | None = None

    @classmethod
    def from_json(cls, record: Mapping) -> JournalRecord:
        """The record a well-formed journal line (see :func:`record_problem`) holds; unknown keys are ignored."""
        sizes = record.get("slice_bytes")
        row = TrackRow(track_id=record["track_id"], path=record["path"], artist=record.get("artist", ""),
                       genre=record.get("genre", ""), tags=record.get("tags", ""), split=record.get("split", ""),
                       status=record["status"],
                       reason=record["reason"], n_slices=record["n_slices"], duration_s=record["duration_s"])
        return cls(row=row, size=record["size"], mtime_ns=record["mtime_ns"],
                   slice_bytes=None if sizes is None else tuple(sizes), transient=record.get("transient", True),
                   attempts=record.get("attempts", 1), sha256=_digest(record.get("sha256")),
                   fingerprint=record["fingerprint"] if isinstance(record.get("fingerprint"), dict) else None)

    def to_json(self) -> dict:
        """The journal line, as :meth:`JournalWriter.append` takes it."""
        row = asdict(self.row)
        if not row["tags"]:
            del row["tags"]  # a single-label build's journal lines stay as they were
        return {
            **row,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            **({} if self.slice_bytes is None else {"slice_bytes": list(self.slice_bytes)}),
            "transient": self.transient,
            "stage": "audio",
            **({"attempts": self.attempts} if self.row.status == "failed" else {}),
            **({"sha256": self.sha256} if self.sha256 else {}),
            **({"fingerprint": self.fingerprint} if self.fingerprint is not None else {}),
        }


_TEXT_FIELDS = ("path", "track_id", "status", "reason", "duration_s")
_INT_FIELDS = ("n_slices", "size", "mtime_ns")


def record_problem(record: object) -> str:
    """What is wrong with one journal record, or ``""`` for a well-formed one.

    A record is a JSON object with text ``path``, ``track_id`` (one that can name a folder), ``status`` (one of
    ``layout.STATUSES``), ``reason`` and ``duration_s``; whole numbers ``n_slices`` (at least 1 for ``ok``),
    ``size`` and ``mtime_ns``; and, when present, ``slice_bytes``: one positive size per slice. A damaged ``sha256`` or
    ``fingerprint`` (caches of what the file and its slices give) does not make a record damaged: it is ignored, and
    the fingerprint computed again from the slices.
    """
    if not isinstance(record, dict):
        return "not a JSON object"
    for key in _TEXT_FIELDS:
        if not isinstance(record.get(key), str):
            return f"{key} is {record.get(key)!r}, not text"
    for key in _INT_FIELDS:
        value = record.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{key} is {value!r}, not a whole number"
    if not record["path"]:
        return "path is empty"
    if not layout.is_safe_track_id(record["track_id"]):
        return f"track_id {record['track_id']!r} cannot name a folder"
    if record["status"] not in layout.STATUSES:
        return f"status is {record['status']!r}, not one of {', '.join(layout.STATUSES)}"
    if record["n_slices"] < (1 if record["status"] == "ok" else 0):
        return f"n_slices is {record['n_slices']} for status {record['status']}"
    attempts = record.get("attempts", 1)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        return f"attempts is {attempts!r}, not a count"
    sizes = record.get("slice_bytes")
    if sizes is not None and (not isinstance(sizes, list) or len(sizes) != record["n_slices"]
                              or not all(isinstance(size, int) and not isinstance(size, bool) and size > 0
                                         for size in sizes)):
        return f"slice_bytes is not {record['n_slices']} positive sizes"
    return ""


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _digest(value: object) -> str | None:
    """A journaled SHA-256, or None for none or a damaged one."""
    return value if isinstance(value, str) and _SHA256.fullmatch(value) else None


class JournalWriter:
    """Appends records; flushes each one (so ``kill -9`` loses nothing) and fsyncs every few seconds.

    Raises
    ------
    OutputError
        The journal cannot be written (a full disk): the message names it. Lines written before are kept, and a
        line cut short is dropped by the next :func:`load_journal`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self._path = Path(path)
        with self._writing():
            self._handle = open(path, "a", encoding="ascii")
        self._last_sync = time.monotonic()

    def append(self, record: dict) -> None:
        with self._writing():
            self._handle.write(json.dumps(record, sort_keys=True) + "\n")
            self._handle.flush()
            if time.monotonic() - self._last_sync > _FSYNC_INTERVAL_S:
                os.fsync(self._handle.fileno())
                self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._handle.closed:
            try:
                with self._writing():
                    self._handle.flush()
                    os.fsync(self._handle.fileno())
            finally:
                with contextlib.suppress(OSError):
                    self._handle.close()

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as err:
            raise OutputError(f"cannot write the build journal {self._path}: {err.strerror or err}. Free space "
                              "(or fix what the error names) and run the same command again to resume") from err

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

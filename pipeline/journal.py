"""The build journal: one JSON line per finished track, appended as tracks finish.

A track's line is written only after its slice folder is in its final place, so every line describes
finished work. A line cut short by a crash is dropped on load (and truncated away before the next append).
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_FSYNC_INTERVAL_S = 2.0


def load_journal(path: str | os.PathLike) -> dict[str, dict]:
    """Read the journal into ``{rel_path: record}``: the last record for a path wins, and the dict is ordered by
    each path's last record, so a later entry published its track folder after an earlier one.

    A torn last line is cut off the file so later appends start on a fresh line.
    """
    path = Path(path)
    records: dict[str, dict] = {}
    if not path.exists():
        return records
    good_end = 0
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
                records.pop(record["path"], None)
                records[record["path"]] = record
            except (ValueError, KeyError, TypeError):
                logger.warning("ignoring a damaged line at byte %d of %s", good_end, path)
            good_end += len(line)
    if good_end != path.stat().st_size:
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    return records


class JournalWriter:
    """Appends records; flushes each one (so ``kill -9`` loses nothing) and fsyncs every few seconds."""

    def __init__(self, path: str | os.PathLike) -> None:
        self._handle = open(path, "a", encoding="ascii")
        self._last_sync = time.monotonic()

    def append(self, record: dict) -> None:
        self._handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._handle.flush()
        if time.monotonic() - self._last_sync > _FSYNC_INTERVAL_S:
            os.fsync(self._handle.fileno())
            self._last_sync = time.monotonic()

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

"""Where things live inside an output folder: the contract later commands and users' scripts rely on."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

DATASET_JSON = "dataset.json"
TRACKS_CSV = "tracks.csv"
SLICES_CSV = "slices.csv"
SLICES_DIR = "slices"
STATE_DIR = ".genreslice"  # lock, settings, journal and scratch space of the build

TRACK_COLUMNS = ("track_id", "path", "artist", "genre", "split", "status", "reason", "n_slices", "duration_s")
SLICE_COLUMNS = ("path", "track_id", "genre", "split", "index", "start_s")
STATUSES = ("ok", "failed", "skipped", "too_short")

_SAFE_TRACK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def track_id_for_path(rel_path: str) -> str:
    """Stable id for a file without a source-given id: 16 hex digits of SHA-1 of its relative path."""
    return hashlib.sha1(rel_path.encode("utf-8", errors="surrogateescape")).hexdigest()[:16]


def is_safe_track_id(track_id: str) -> bool:
    """Whether ``track_id`` can name a folder and file on every platform."""
    return bool(_SAFE_TRACK_ID.match(track_id))


def track_slice_dir(track_id: str) -> str:
    """Folder of a track's slices, relative to the output folder.

    Tracks are spread over 256 shard folders by a hash of their id, so with 100k tracks each shard holds
    a few hundred track folders, and a track folder holds one file per 2.56 s of audio.
    """
    shard = hashlib.sha1(track_id.encode("utf-8")).hexdigest()[:2]
    return f"{SLICES_DIR}/{shard}/{track_id}"


def slice_path(track_id: str, index: int) -> str:
    """Path of one slice PNG, relative to the output folder."""
    return f"{track_slice_dir(track_id)}/{track_id}_{index:04d}.png"


def write_text_atomic(path: str | os.PathLike, text: str, *, scratch: str | os.PathLike | None = None) -> None:
    """Write a UTF-8 text file so readers see the old or the new content, never a torn one.

    The temporary file is made in ``scratch`` (same file system) when given, else next to ``path``.
    Characters that cannot be encoded (file names that are not valid UTF-8) are written backslash-escaped.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=scratch or path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


"""Where things live inside an output folder: the contract later commands and users' scripts rely on."""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
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
    write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"), scratch=scratch)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, scratch: str | os.PathLike | None = None) -> None:
    """Write a file so readers see the old or the new content, never a torn one (temporary file, then rename)."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=scratch or path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())  # mkstemp makes 0600; give the usual mode
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class LockHeldError(OSError):
    """Another process holds the lock; ``holder`` is the process id it wrote, or ``"unknown"``."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(errno.EAGAIN, f"process {holder} holds {path}")
        self.path = path
        self.holder = holder


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) while the block runs.

    The lock is the kernel's (``fcntl.lockf``): it is released when the process ends, however it ends, so a
    crashed run never leaves a stale lock. The holder writes its process id into the file for messages.

    Raises
    ------
    LockHeldError
        Another process holds the lock.
    OSError
        The lock file cannot be created or locked.
    """
    lock_path = Path(lock_path)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            raise LockHeldError(lock_path, handle.read().strip() or "unknown") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


def setting_differences(old, new, prefix: str = "") -> Iterator[tuple[str, object, object]]:
    """Where ``old`` differs from ``new`` as ``(dotted.key, old, new)``, on the keys of ``new`` only.

    ``old`` may record more than ``new`` checks (``dataset.json`` holds counts besides the settings).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(new):
            yield from setting_differences(old.get(key), new.get(key), f"{prefix}{key}.")
    elif old != new:
        yield prefix.rstrip("."), old, new

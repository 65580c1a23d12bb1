"""Where things live inside an output folder: the contract later commands and users' scripts rely on."""
from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from genreslice.errors import GenresliceError
from genreslice.pipeline import tracks

DATASET_JSON = "dataset.json"
TRACKS_CSV = "tracks.csv"
SLICES_CSV = "slices.csv"
DUPLICATES_CSV = "duplicates.csv"
SLICES_DIR = "slices"
STATE_DIR = ".genreslice"  # lock, settings, journal and scratch space of the build

TRACK_COLUMNS = tracks.TRACK_COLUMNS  # defined by the fields of tracks.TrackRow
SLICE_COLUMNS = ("path", "track_id", "genre", "split", "index", "start_s")
#: A multi-label data set's slices.csv: its tags (joined by ``tracks.TAG_SEPARATOR``) after the (empty) genre.
MULTILABEL_SLICE_COLUMNS = ("path", "track_id", "genre", "tags", "split", "index", "start_s")
STATUSES = ("ok", "failed", "skipped", "too_short")
#: duplicates.csv: a row per file of each group of copies; similarity 1.0 for exact (byte-identical) copies.
DUPLICATE_COLUMNS = ("group", "kind", "similarity", "action", "track_id", "path", "artist", "split", "status",
                     "sha256")

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


def slice_name(track_id: str, index: int) -> str:
    """File name of one slice PNG in its track's folder."""
    return f"{track_id}_{index:04d}.png"


def slice_path(track_id: str, index: int) -> str:
    """Path of one slice PNG, relative to the output folder."""
    return f"{track_slice_dir(track_id)}/{slice_name(track_id, index)}"


def write_text_atomic(path: str | os.PathLike, text: str, *, scratch: str | os.PathLike | None = None) -> None:
    """Write a UTF-8 text file so readers see the old or the new content, never a torn one.

    The temporary file is made in ``scratch`` (same file system) when given, else next to ``path``.
    Characters that cannot be encoded (file names that are not valid UTF-8) are written backslash-escaped.
    """
    write_bytes_atomic(path, text.encode("utf-8", errors="backslashreplace"), scratch=scratch)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, scratch: str | os.PathLike | None = None) -> None:
    """Write a file so readers see the old or the new content, never a torn one (temporary file, then rename)."""
    with replacing(path, scratch=scratch) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, suffix: str = ".tmp", scratch: str | os.PathLike | None = None,
              sync_folder: bool = False) -> Iterator[Path]:
    """Write ``path`` atomically: the block writes the temporary file it is given, which then replaces ``path``.

    The one way genreslice writes a file that readers may open at any moment: readers see the old or the new
    content, never a torn one, and a failed or interrupted block leaves ``path`` as it was and no temporary file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    suffix : str
        Ending of the temporary name ``.<name>.<random><suffix>``; a writer that insists on an extension gets
        it (Keras: ``".tmp.keras"``). Readers that clean up after killed runs recognise these names.
    scratch : str or os.PathLike, optional
        Folder for the temporary file (on the same file system as ``path``); ``path``'s folder by default.
    sync_folder : bool
        Also flush ``path``'s folder entry to disk, so the rename itself survives a power cut.

    Yields
    ------
    Path
        The temporary file (created empty, mode as the umask gives new files) for the block to write.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=scratch or path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual mode
        fsync_path(tmp)
        os.replace(tmp, path)
        if sync_folder:
            fsync_path(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's content, or a folder's entries, to disk.

    Windows flushes only what is open for writing and cannot open a folder: there a file is opened read-write,
    and a folder is left to the file system.
    """
    flags = os.O_RDONLY
    if os.name == "nt":
        if os.path.isdir(path):
            return
        flags = os.O_RDWR | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class LockHeldError(GenresliceError, OSError):
    """Another process holds the lock.

    Attributes
    ----------
    holder : str
        The process id of a holder, or ``"unknown"``.
    shared : bool or None
        True when the lock in the way is a reader's shared lock (a training or evaluation), False for an
        exclusive one (a build, a training run), None when the kernel did not say.
    """

    def __init__(self, path: Path, holder: str, shared: bool | None = None) -> None:
        super().__init__(errno.EAGAIN, f"process {holder} holds {path}")
        self.path = path
        self.holder = holder
        self.shared = shared


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (created if missing) while the block runs.

    The lock is the kernel's (``fcntl.lockf``): it is released when the process ends, however it ends, so a
    crashed run never leaves a stale lock. The holder writes its process id into the file for messages.

    Raises
    ------
    LockHeldError
        Another process holds the lock, exclusive or shared.
    OSError
        The lock file cannot be created or locked.
    """
    lock_path = Path(lock_path)
    with open(lock_path, "a+") as handle:
        try:
            _lock_now(handle, shared=False)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            raise _held_by_another(handle, lock_path) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield


@contextlib.contextmanager
def shared_lock(lock_path: str | os.PathLike) -> Iterator[bool]:
    """Hold a shared (reader's) lock on an existing ``lock_path`` while the block runs.

    Any number of readers may hold it at once; an exclusive holder (:func:`exclusive_lock`) excludes them and is
    excluded by them. Yields True when the lock is held, False when it could not be taken because the file is
    missing or cannot be opened (a data set copied without its state folder, a read-only share): then nobody
    can be changing the data set through it either.

    Raises
    ------
    LockHeldError
        An exclusive holder has it.
    """
    try:
        handle = open(lock_path)
    except OSError:
        yield False
        return
    with handle:
        try:
            _lock_now(handle, shared=True)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                yield False
                return
            raise _held_by_another(handle, Path(lock_path)) from None
        yield True


def _lock_now(handle, *, shared: bool) -> None:
    """Lock ``handle``'s file without waiting; OSError (EAGAIN or EACCES) when another process holds it.

    POSIX: the kernel's ``fcntl.lockf``, shared or exclusive. Where there is no ``fcntl`` (Windows) the lock is
    ``msvcrt``'s on the first byte, which is always exclusive: readers then exclude each other too, which is
    slower but never less safe. Both modules are imported here, not at module level, so the package imports
    everywhere.
    """
    try:
        import fcntl
    except ImportError:
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        return
    fcntl.lockf(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)


def _held_by_another(handle, lock_path: Path) -> LockHeldError:
    """The error for a lock someone else holds: the holder's pid from the kernel, else the one written in the
    file by the last exclusive holder."""
    pid, shared = _lock_holder(handle)
    written = ""
    if not pid:
        with contextlib.suppress(OSError):  # Windows: the holder's byte lock forbids reading it
            handle.seek(0)
            written = handle.read().strip()
    return LockHeldError(lock_path, str(pid) if pid else written or "unknown", shared)


def _lock_holder(handle) -> tuple[int | None, bool | None]:
    """Who holds a conflicting lock on ``handle``'s file: ``(pid, shared)``, ``(None, None)`` if unknown.

    Asks the kernel (``F_GETLK``) with a ``struct flock`` laid out as on Linux (64-bit ``off_t``).
    """
    import sys

    layout_ = "hhqqi4x"  # Linux's struct flock; other systems order its fields differently
    if not sys.platform.startswith("linux"):
        return None, None
    import fcntl

    try:
        wanted = struct.pack(layout_, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(handle.fileno(), fcntl.F_GETLK, wanted)
        kind, _, _, _, pid = struct.unpack(layout_, answer)
    except (OSError, struct.error, AttributeError, ValueError):
        return None, None
    if kind == fcntl.F_UNLCK or pid <= 0:
        return None, None
    return pid, kind == fcntl.F_RDLCK


def replace_folder(scratch: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a finished folder into place; an older copy is swapped out first, each step one rename.

    Readers see the old folder or the new one, never a mix (between the two renames, briefly, neither).
    """
    scratch, final = Path(scratch), Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = scratch.with_name(scratch.name + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(scratch, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(scratch, final)


class _CsvLines:
    """A file-like sink for :mod:`csv` writers that turns each written record's ``\\r\\n`` end into ``\\n``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line[:-2] + "\n")


def csv_text(columns: Sequence[str], rows: Iterable[Mapping | Sequence], *, header: bool = True) -> str:
    """CSV text with ``\\n`` line ends that any CSV reader splits back into the same rows.

    Python's writer quotes a field only for characters of its own line terminator, so with ``\\n`` a file name
    holding ``\\r`` would be written bare and read back as two rows by pandas. Here records are written with
    ``\\r\\n`` (both characters make a field quoted), then ended with ``\\n``. ``rows`` are dicts keyed by
    ``columns`` or sequences in column order.
    """
    sink = _CsvLines()
    writer = csv.writer(sink, lineterminator="\r\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([row[column] for column in columns] if isinstance(row, Mapping) else row)
    return "".join(sink.lines)


def csv_line(values: Sequence) -> str:
    """One CSV record, quoted as :func:`csv_text` quotes it, without its line end."""
    return csv_text((), [values], header=False)[:-1]


def setting_differences(old, new, prefix: str = "") -> Iterator[tuple[str, object, object]]:
    """Where ``old`` differs from ``new`` as ``(dotted.key, old, new)``, on the keys of ``new`` only.

    ``old`` may record more than ``new`` checks (``dataset.json`` holds counts besides the settings).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(new):
            yield from setting_differences(old.get(key), new.get(key), f"{prefix}{key}.")
    elif old != new:
        yield prefix.rstrip("."), old, new

"""The genre field inside a user's audio files: read it, write it atomically, and log each change so it can be
undone.

What is written where, by the tag format mutagen finds in the file:

- ID3v2 ``TCON`` (MP3; WAV and AIFF, whose ID3 tag is a chunk): the file's ID3 version is kept (a v2.3 tag stays
  v2.3; a v2.2 tag becomes v2.3, which mutagen can write; a file without an ID3v2 tag gets a v2.4 one), several
  values are separated as ID3v2.4 separates them (a NUL) in both versions, so that no value is joined to another
  and the file's other multi-value frames are written back as they were read. An ID3v1 tag is updated if there
  is one, never added.
- Vorbis comment ``GENRE`` (FLAC, Ogg Vorbis, Opus, Ogg FLAC and Speex).
- MP4 ``©gen`` (``.m4a``).
- ASF ``WM/Genre`` (``.wma``).

Other formats (a raw AAC stream, AU) raise :class:`TagWriteError` ("tags of this format cannot be written").

A write never touches the original until the new file is complete: the file is copied to a hidden temporary file in
its own folder (``.NAME.genreslice-XXXXXXXX.tmp``), mutagen rewrites the tag blocks of the copy (never the audio),
the copy is read back, flushed to disk and given the original's permission bits and owner (a file whose owner or
group the copy cannot keep is refused), and only then renames onto the original, one atomic step. Any failure before the rename leaves the original as it was
and removes the copy; a process killed at any moment leaves the original either old or new, and at worst a
hidden ``.tmp`` file, which is safe to delete. The rename gives the file a new inode: other hard links to it keep
the old content. A symbolic link is followed: its target is rewritten and the link stays.

An undo log (:class:`UndoLog`) is a JSON-lines file: a header line per run, then one record per changed file,
written and flushed to disk *before* the file is replaced, so it never misses a change that happened.
:func:`undo_changes` puts the old values back.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mutagen
from mutagen.aiff import AIFF
from mutagen.asf import ASF, ASFTags
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, ID3FileType
from mutagen.mp4 import MP4, MP4Tags
from mutagen.ogg import OggFileType
from mutagen.wave import WAVE
from mutagen._vorbis import VCommentDict

from genreslice import __version__
from genreslice.pipeline.errors import ParameterError, PipelineError
from genreslice.pipeline.layout import fsync_path

__all__ = ["CATEGORY_SEPARATOR", "GenreChange", "GenreTags", "TagWriteError", "UndoLog", "UndoLogError",
           "UndoRecord", "UndoResult", "default_undo_log_name", "has_genre", "read_genres", "read_undo_log",
           "show_values", "shown_path", "tag_values", "undo_changes", "write_genres", "write_problem"]

#: A label such as ``genre---rock`` (a category, then the name) is written as the name after the last separator.
CATEGORY_SEPARATOR = "---"
#: The first key of an undo log's header line, and its format version.
UNDO_LOG_KEY = "genreslice_undo_log"
UNDO_LOG_VERSION = 1
#: The genre field of each tag family, as the undo log names it.
GENRE_FIELDS = {"id3": "TCON", "vorbis": "GENRE", "mp4": "\xa9gen", "asf": "WM/Genre"}
#: The temporary copy's name: ``.NAME<_TMP_MARK>XXXXXXXX<_TMP_SUFFIX>`` next to the file.
_TMP_MARK = ".genreslice-"
_TMP_SUFFIX = ".tmp"
#: What :func:`mutagen.File` failing on a file says.
_UNREADABLE = "mutagen cannot read it (damaged, or not the audio format its name says?)"
_READ_ONLY = "the file is read-only; make it writable (chmod u+w) to tag it"
#: At most this many bytes of the file's name go into the temporary name (a name has at most 255 bytes).
_TMP_NAME_BYTES = 96


class TagWriteError(PipelineError):
    """One file's genre could not be read or written; the file is as it was.

    Attributes
    ----------
    path : pathlib.Path
        The file, as given.
    reason : str
        One line saying why, without the path.
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{os.fspath(path)}: {reason}")


class TagChangedError(TagWriteError):
    """The file's genre is not what the caller expected (it changed since it was read); nothing was written."""


class FileChangedError(TagWriteError):
    """Another program wrote the file while it was being tagged; the tagged copy was dropped, the file left as that
    program wrote it."""


class UndoLogError(PipelineError):
    """An undo log cannot be created, written or read, or the file is not one."""


@dataclass(frozen=True)
class GenreTags:
    """The genre values a file holds now.

    Attributes
    ----------
    field : str
        Where they are: ``TCON`` (ID3), ``GENRE`` (Vorbis comment), ``©gen`` (MP4), ``WM/Genre`` (ASF).
    values : tuple of str
        In tag order, as mutagen reads them; empty when the field is absent.
    """

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class GenreChange:
    """One file's genre before and after a write.

    Attributes
    ----------
    path : pathlib.Path
        The file as given (a symbolic link stays a link; its target was rewritten).
    field : str
        The genre field (see :class:`GenreTags`).
    old, new : tuple of str
        The values before, and as read back from the written file; ``()`` for no genre field.
    """

    path: Path
    field: str
    old: tuple[str, ...]
    new: tuple[str, ...]


def tag_values(labels: Iterable[str]) -> list[str]:
    """The values to write for a model's labels: each label's name after its last ``---`` (``genre---rock`` ->
    ``rock``), spaces at the ends removed, empty names and repeats dropped, in the order given."""
    values: list[str] = []
    for label in labels:
        name = label.rsplit(CATEGORY_SEPARATOR, 1)[-1].strip()
        if name and name not in values:
            values.append(name)
    return values


def has_genre(values: Iterable[str]) -> bool:
    """Whether a genre field holds a genre: any value that is not empty or blank."""
    return any(value.strip() for value in values)


@dataclass(frozen=True)
class _TagFormat:
    """How to load and save one file's tags: its mutagen class and the options that keep its tag version."""

    kind: type
    family: str
    load: dict
    save: dict


def _family(audio: mutagen.FileType) -> str | None:
    """The tag family of a loaded file (``id3``, ``vorbis``, ``mp4``, ``asf``), or None when genreslice cannot
    write its tags."""
    tags = audio.tags
    if isinstance(tags, ID3) or isinstance(audio, (ID3FileType, WAVE, AIFF)):
        return "id3"
    if isinstance(tags, MP4Tags) or isinstance(audio, MP4):
        return "mp4"
    if isinstance(tags, ASFTags) or isinstance(audio, ASF):
        return "asf"
    if isinstance(tags, VCommentDict) or isinstance(audio, (FLAC, OggFileType)):
        return "vorbis"
    return None


def _mutagen(path: Path, what: str, call: Callable):
    """``call()``, with any error it raises turned into a :class:`TagWriteError` that says ``what`` failed."""
    try:
        return call()
    except TagWriteError:
        raise
    except OSError as err:
        raise TagWriteError(path, f"{what}: {err.strerror or err}") from err
    except Exception as err:  # noqa: BLE001 - mutagen raises IndexError, struct.error ... on damaged files
        detail = str(err).strip()
        raise TagWriteError(path, f"{what}: {type(err).__name__}" + (f": {detail}" if detail else "")) from err


def _detect(path: Path, shown: Path) -> tuple[_TagFormat, mutagen.FileType]:
    """The tag format of ``path`` and the file loaded with it (errors name ``shown``)."""
    audio = _mutagen(shown, _UNREADABLE, lambda: mutagen.File(path))
    if audio is None:
        raise TagWriteError(shown, "tags of this format cannot be written (not a format mutagen knows)")
    family = _family(audio)
    if family is None:
        raise TagWriteError(shown, f"tags of this format ({type(audio).__name__}) cannot be written")
    load: dict = {}
    save: dict = {}
    if family == "id3":
        version = tuple(audio.tags.version[:2]) if audio.tags is not None else None
        v2 = 3 if version in ((2, 2), (2, 3)) else 4
        # A v2.3 tag is loaded as it is: translated, mutagen would drop the frames it counts as v2.4's alone (TSOP,
        # TSOA, TSOT, ...), which iTunes and others write into v2.3 tags. A v2.2 tag has none, and its frames need
        # the translation to be saved as v2.3.
        load = {"v2_version": v2, **({"translate": False} if version == (2, 3) else {})}
        save = {"v2_version": v2, "v23_sep": None}  # an ID3v1 tag: updated if there is one
        if v2 == 3:  # loaded again so that its frames stay v2.3 frames (the default load makes them v2.4)
            audio = _mutagen(shown, _UNREADABLE, lambda: type(audio)(path, **load))
    return _TagFormat(type(audio), family, load, save), audio


def _genre_values(audio: mutagen.FileType, family: str) -> tuple[str, ...]:
    """The genre values of a loaded file, in tag order."""
    tags = audio.tags
    if tags is None:
        return ()
    if family == "id3":
        # .genres reads ID3v1 genre numbers ("(17)", "17") as their names, as mutagen's translation to v2.4 does
        return tuple(str(text) for frame in tags.getall("TCON") for text in frame.genres)
    if family == "asf":
        return tuple(str(getattr(value, "value", value)) for value in tags.get("WM/Genre", []))
    return tuple(str(value) for value in tags.get(GENRE_FIELDS[family], []))


def _set_genre_values(audio: mutagen.FileType, family: str, values: Sequence[str]) -> None:
    """Replace (or with no ``values``, remove) the genre field of a loaded file; other tags are left alone."""
    if audio.tags is None:
        if not values:
            return
        audio.add_tags()
    tags = audio.tags
    if family == "id3":
        tags.delall("TCON")
        if values:
            tags.add(TCON(encoding=3, text=list(values)))
        return
    key = GENRE_FIELDS[family]
    if key in tags:
        del tags[key]
    if values:
        tags[key] = list(values)


def read_genres(path: str | os.PathLike) -> GenreTags:
    """The genre values ``path`` holds now (a symbolic link is followed).

    Raises
    ------
    TagWriteError
        The file is missing, unreadable, damaged, or of a format whose tags cannot be written.
    """
    shown = Path(path)
    if not shown.is_file():
        raise TagWriteError(shown, "no such file" if not os.path.lexists(shown) else "not a regular file")
    tag_format, audio = _detect(shown, shown)
    return GenreTags(GENRE_FIELDS[tag_format.family], _genre_values(audio, tag_format.family))


def write_problem(path: str | os.PathLike) -> str | None:
    """Why :func:`write_genres` would be refused the writing of ``path`` by its permissions (the file is read-only,
    or its folder, where the tagged copy is made, is), or None; for a dry run, as the operating system judges it
    now (the superuser may write anything)."""
    target = Path(os.path.realpath(path))
    if _read_only(target):
        return _READ_ONLY
    try:
        owner = _owner_problem(os.stat(target))
    except OSError:
        owner = None
    if owner:
        return owner
    if not os.access(target.parent, os.W_OK | os.X_OK):
        return "its folder is read-only, and the tagged copy is made there; make it writable to tag the file"
    return None


def write_genres(path: str | os.PathLike, values: Sequence[str], *, expect: Sequence[str] | None = None,
                 before_replace: Callable[[GenreChange], object] | None = None) -> GenreChange:
    """Set the genre field of ``path`` to ``values`` (none: remove the field), atomically, keeping the audio and
    every other tag.

    Parameters
    ----------
    path : str or os.PathLike
        An audio file; a symbolic link's target is rewritten.
    values : sequence of str
        The genre values, in order; empty to remove the genre field.
    expect : sequence of str, optional
        The values the file must hold now (as :func:`read_genres` gave them); when it holds others, nothing is
        written and :class:`TagChangedError` is raised.
    before_replace : callable, optional
        Called with the :class:`GenreChange` once the new file is complete and on disk, just before it replaces
        the original (to write an undo record first). What it raises is raised unchanged, the original untouched.

    Returns
    -------
    GenreChange
        The values before, and as read back from the new file.

    Raises
    ------
    TagWriteError
        The file is missing, read-only, damaged, of a format whose tags cannot be written, or its folder cannot
        hold the temporary copy (permissions, a full disk); the file is as it was and no temporary file is left.
    """
    shown = Path(path)
    if not shown.is_file():
        raise TagWriteError(shown, "no such file" if not os.path.lexists(shown) else "not a regular file")
    target = Path(os.path.realpath(shown))
    if _read_only(target):
        raise TagWriteError(shown, _READ_ONLY)
    tag_format, _ = _detect(target, shown)
    prefix = "." + os.fsdecode(os.fsencode(target.name)[:_TMP_NAME_BYTES]) + _TMP_MARK
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=prefix, suffix=_TMP_SUFFIX, dir=target.parent)
    except OSError as err:
        raise TagWriteError(shown, f"cannot make the temporary copy in its folder: {err.strerror or err}") from err
    tmp = Path(tmp_name)
    try:
        change, copied = _write_copy(fd, target, tmp, shown, tag_format, values, expect)
        _check_unchanged(target, copied, shown)
        if before_replace is not None:
            before_replace(change)
        _check_unchanged(target, copied, shown)  # again, just before the rename: the log write took a moment
        try:
            os.replace(tmp, target)
        except OSError as err:
            raise TagWriteError(shown, f"cannot replace the file with the tagged copy: {err.strerror or err}") \
                from err
        with contextlib.suppress(OSError):  # the rename is done; flushing the folder entry only makes it durable
            fsync_path(target.parent)
        return change
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _read_only(target: Path) -> bool:
    """Whether ``target`` must not be rewritten: the operating system says it cannot be written, or no one may
    write it (mode 0444: the superuser could, but the file was made read-only on purpose)."""
    try:
        return not os.access(target, os.W_OK) or not os.stat(target).st_mode & 0o222
    except OSError:
        return True


def _check_unchanged(target: Path, copied: os.stat_result, shown: Path, *, now: os.stat_result | None = None) -> None:
    """Refuse to replace ``target`` when it changed after it was copied (another program wrote it): the tagged copy
    would undo that program's change. ``now``: its status as already taken."""
    try:
        now = now or os.stat(target)
    except OSError as err:
        raise TagWriteError(shown, f"it cannot be examined before it is replaced: {err.strerror or err}") from err
    if (now.st_ino, now.st_size, now.st_mtime_ns, now.st_ctime_ns) != \
            (copied.st_ino, copied.st_size, copied.st_mtime_ns, copied.st_ctime_ns):
        raise FileChangedError(shown, "another program changed it while it was being tagged; it was left as that "
                                      "program wrote it (run again to tag it)")


def _write_copy(fd: int, target: Path, tmp: Path, shown: Path, tag_format: _TagFormat, values: Sequence[str],
                expect: Sequence[str] | None) -> tuple[GenreChange, os.stat_result]:
    """Copy ``target`` into the open temporary file ``fd`` (``tmp``), set its genre, read it back, flush it and
    give it ``target``'s mode and owner. Returns the change and ``target``'s status when it was copied."""
    try:
        with os.fdopen(fd, "wb") as copy, open(target, "rb") as original:
            started = os.fstat(original.fileno())
            shutil.copyfileobj(original, copy, 1 << 20)
            status = os.fstat(original.fileno())
    except OSError as err:
        raise TagWriteError(shown, f"cannot copy the file next to itself: {err.strerror or err}") from err
    _check_unchanged(target, started, shown, now=status)  # written while it was copied: the copy may be torn
    family = tag_format.family
    audio = _mutagen(shown, _UNREADABLE, lambda: tag_format.kind(tmp, **tag_format.load))
    old = _genre_values(audio, family)
    if expect is not None and old != tuple(expect):
        raise TagChangedError(shown, f"its genre changed while it was being tagged (now {show_values(old)})")
    before = _tag_keys(audio)
    _set_genre_values(audio, family, values)
    _mutagen(shown, "mutagen cannot write the tags", lambda: audio.save(**tag_format.save))
    written = _mutagen(shown, "the tagged copy cannot be read back",
                       lambda: tag_format.kind(tmp, **tag_format.load))
    new = _genre_values(written, family)
    lost = before - _tag_keys(written) - {GENRE_FIELDS[family].lower()}
    if lost:  # a safety net: the other tags must all be there
        raise TagWriteError(shown, f"writing its genre would drop other tags ({', '.join(sorted(lost)[:5])}); it "
                                   "was left as it was")
    try:
        fsync_path(tmp)
        shutil.copymode(target, tmp)
        made = os.stat(tmp)
        if (made.st_uid, made.st_gid) != (status.st_uid, status.st_gid) and hasattr(os, "chown"):
            try:
                os.chown(tmp, status.st_uid, status.st_gid)
            except OSError as err:  # only the superuser may give a file away, or a group one is not in
                raise TagWriteError(shown, f"{_owner_problem(status) or 'the tagged copy cannot keep its owner'} "
                                           f"({err.strerror or err})") from err
    except OSError as err:
        raise TagWriteError(shown, f"cannot finish the tagged copy: {err.strerror or err}") from err
    return GenreChange(shown, GENRE_FIELDS[family], old, new), status


def _owner_problem(status: os.stat_result) -> str | None:
    """Why a copy made by this process could not keep the owner and group of a file of ``status``, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() == 0:
        return None
    if status.st_uid != os.geteuid():
        return (f"it belongs to another user (user {status.st_uid}), and a tagged copy would be yours; tag it as "
                "its owner")
    if status.st_gid != os.getegid() and status.st_gid not in os.getgroups():
        return (f"its group (group {status.st_gid}) is not one of yours, and a tagged copy could not keep it; "
                "tag it as a member of that group")
    return None


def _tag_keys(audio: mutagen.FileType) -> set[str]:
    """The names of a loaded file's tags (ID3 frame ids with their descriptions, Vorbis and MP4 keys), in lower
    case (Vorbis comment names are case-insensitive)."""
    return set() if audio.tags is None else {str(key).lower() for key in audio.tags.keys()}


def show_values(values: Sequence[str]) -> str:
    """Genre values for a message: ``'Rock', 'Pop'``, or ``(none)``."""
    return ", ".join(repr(value) for value in values) if values else "(none)"


def shown_path(path: str | os.PathLike) -> str:
    """A path for a one-line message: bytes that are not UTF-8 as ``\\xNN``, line breaks as ``\\n`` and ``\\r``."""
    text = os.fsencode(path).decode("utf-8", errors="backslashreplace")
    return text.replace("\r", "\\r").replace("\n", "\\n")


# The undo log.

def default_undo_log_name(now: datetime.datetime | None = None) -> str:
    """``genreslice-tags-undo-YYYYMMDD-HHMMSS.jsonl`` for the local time ``now`` (default: this moment)."""
    return f"genreslice-tags-undo-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}.jsonl"


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _path_fields(path: Path) -> dict:
    """A path for a JSON record: ``path`` as text; a name that is not UTF-8 is also given exactly as the hex of its
    bytes in ``path_bytes`` (``path`` then shows those bytes as ``\\xNN``)."""
    raw = os.fsencode(os.path.abspath(path))
    try:
        return {"path": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"path": raw.decode("utf-8", errors="backslashreplace"), "path_bytes": raw.hex()}


def _record_path(record: dict) -> Path:
    if "path_bytes" in record:
        return Path(os.fsdecode(bytes.fromhex(record["path_bytes"])))
    return Path(record["path"])


class UndoLog:
    """An append-only undo log: a header line for this run, then :meth:`record` for each change, each line flushed
    to disk before the change it records is made.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The log. A new file is created; an existing genreslice undo log is appended to (its runs are undone newest
        first); any other existing file is refused. Default: :func:`default_undo_log_name` in the current folder
        (``-2``, ``-3`` ... added if taken).
    model_dir : str or os.PathLike, optional
        Recorded in the header.

    Raises
    ------
    ParameterError
        ``path`` is a folder, or its folder does not exist.
    UndoLogError
        The file exists and is not an undo log, or it cannot be created or written.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, model_dir: str | os.PathLike | None = None) -> None:
        self.records = 0
        self.created = False
        if path is None:
            self.path, self._handle = _new_default_log()
            self.created = True
        else:
            self.path = Path(path)
            self._handle = self._open_given()
        header = {UNDO_LOG_KEY: UNDO_LOG_VERSION, "tool": "genreslice predict --write-tags", "version": __version__,
                  "model_dir": None if model_dir is None else os.path.abspath(model_dir), "started": _now()}
        self._append(header)
        if self.created:
            with contextlib.suppress(OSError):
                fsync_path(self.path.absolute().parent)

    def _open_given(self):
        shown = os.fspath(self.path)
        if self.path.is_dir():
            raise ParameterError(f"--undo-log {shown!r} is a folder; give a file name")
        if not self.path.absolute().parent.is_dir():
            raise ParameterError(f"--undo-log {shown!r}: its folder does not exist")
        try:
            handle = open(self.path, "x", encoding="utf-8")
            self.created = True
            return handle
        except FileExistsError:
            pass
        except OSError as err:
            raise UndoLogError(f"cannot create the undo log {shown!r}: {err.strerror or err}") from err
        if not _is_undo_log(self.path):
            raise UndoLogError(f"{shown!r} exists and is not a genreslice undo log; give a new file name (or an "
                               "undo log of an earlier run, which is added to)")
        try:
            handle = open(self.path, "a+", encoding="utf-8")
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(handle.tell() - 1)
                if handle.read(1) != "\n":  # a run killed while writing its last line: start on a line of our own
                    handle.write("\n")
            return handle
        except OSError as err:
            raise UndoLogError(f"cannot append to the undo log {shown!r}: {err.strerror or err}") from err

    def _append(self, record: dict) -> None:
        try:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise UndoLogError(f"cannot write the undo log {os.fspath(self.path)!r}: {err.strerror or err}; no "
                               "file was changed without its record") from err

    def record(self, change: GenreChange) -> None:
        """Append ``change`` and flush it to disk (call before the file is replaced)."""
        self._append({**_path_fields(change.path), "field": change.field, "old": list(change.old),
                      "new": list(change.new), "time": _now()})
        self.records += 1

    def close(self, *, remove_if_empty: bool = False) -> bool:
        """Close the log; with ``remove_if_empty``, delete a log this object created that records no change.
        Returns whether the log is kept."""
        # Each record was flushed when written: what close could still flush is a record whose write failed (a
        # full disk), already reported; trying it again would only hide that report behind a bare OSError.
        with contextlib.suppress(OSError):
            self._handle.close()
        if remove_if_empty and self.created and not self.records:
            with contextlib.suppress(OSError):
                self.path.unlink()
                return False
        return True


def _new_default_log():
    """The default undo log, created (never an existing file) in the current folder."""
    name = default_undo_log_name()
    stem = name[: -len(".jsonl")]
    for attempt in range(1, 1000):
        path = Path(name if attempt == 1 else f"{stem}-{attempt}.jsonl")
        try:
            return path, open(path, "x", encoding="utf-8")
        except FileExistsError:
            continue
        except OSError as err:
            raise UndoLogError(f"cannot create the undo log {os.path.abspath(path)!r}: {err.strerror or err}; give "
                               "another with --undo-log FILE") from err
    raise UndoLogError(f"too many undo logs named {stem}*.jsonl in {os.getcwd()!r}; give one with --undo-log FILE")


def _is_undo_log(path: Path) -> bool:
    """Whether ``path`` starts with an undo log's header line."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            first = handle.readline(1 << 16)
    except OSError:
        return False
    try:
        header = json.loads(first)
    except ValueError:
        return False
    return isinstance(header, dict) and UNDO_LOG_KEY in header


@dataclass(frozen=True)
class UndoRecord:
    """One change from an undo log.

    Attributes
    ----------
    path : pathlib.Path
        The file (exactly, whatever bytes its name holds).
    field : str
        The genre field written.
    old, new : tuple of str
        The values before and after the write.
    line : int
        Its line in the log, from 1.
    """

    path: Path
    field: str
    old: tuple[str, ...]
    new: tuple[str, ...]
    line: int


def read_undo_log(path: str | os.PathLike) -> tuple[list[UndoRecord], list[str]]:
    """The changes an undo log records, oldest first, and a note for each damaged line (which is skipped).

    A run killed while writing a record leaves its last line cut short; that record's file was not changed (the
    record is written before the file).

    Raises
    ------
    UndoLogError
        The file cannot be read, or is not a genreslice undo log.
    """
    shown = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise UndoLogError(f"cannot read the undo log {shown!r}: {err.strerror or err}") from err
    lines = data.decode("utf-8", errors="replace").split("\n")
    if not _is_undo_log(Path(path)):
        raise UndoLogError(f"{shown!r} is not a genreslice undo log (its first line is not a genreslice undo log "
                           "header); give the file 'genreslice predict --write-tags' named")
    records: list[UndoRecord] = []
    problems: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            if isinstance(entry, dict) and UNDO_LOG_KEY in entry:
                continue  # a run's header
            records.append(_undo_record(entry, number))
        except (ValueError, TypeError, KeyError) as err:
            problems.append(f"{shown}: line {number} is damaged ({_damage(err)}), skipped; a run killed while "
                            "writing a record leaves such a line, and its file was not changed")
    return records, problems


def _damage(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"not JSON: {err.msg} at column {err.colno}"
    return f"not a change record: {err}" if str(err) else "not a change record"


def _undo_record(entry, number: int) -> UndoRecord:
    if not isinstance(entry, dict):
        raise TypeError("not a JSON object")

    def strings(key: str) -> tuple[str, ...]:
        value = entry[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError(f"{key!r} is not a list of strings")
        return tuple(value)

    if not isinstance(entry.get("path"), str) or not isinstance(entry.get("field"), str):
        raise TypeError("no 'path' and 'field' strings")
    return UndoRecord(_record_path(entry), entry["field"], strings("old"), strings("new"), number)


@dataclass(frozen=True)
class UndoResult:
    """What undoing the records of one file did.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    outcome : str
        ``restored`` (the old values are back), ``already`` (it already held them), ``changed`` (its genre was
        changed since the write, so it was left alone) or ``failed`` (it could not be read or written).
    before, after : tuple of str
        Its genre values before and after the undo (equal unless ``restored``).
    detail : str
        For ``changed``, the values the write left; for ``failed``, why; else empty.
    """

    path: Path
    outcome: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    detail: str = ""


def undo_changes(records: Sequence[UndoRecord]) -> Iterator[UndoResult]:
    """Put back the old genre values the ``records`` (oldest first, as :func:`read_undo_log` gives them) changed,
    yielding one result per file, the most recently changed file first.

    A file's records are undone newest first, each while the file holds the values that record wrote (a file
    tagged by two runs goes back through both, to its values before the first). A file whose genre is none the
    log knows (changed by someone else since) is left alone; one that holds its old values already is left as it
    is, so undoing twice, or again after an interrupted undo, is safe. Each file is rewritten at most once, as
    :func:`write_genres` writes.
    """
    histories: dict[str, list[UndoRecord]] = {}
    latest: dict[str, int] = {}
    for index, record in enumerate(records):
        key = os.path.abspath(record.path)
        histories.setdefault(key, []).append(record)
        latest[key] = index
    for key in sorted(latest, key=latest.__getitem__, reverse=True):
        yield _undo_file(histories[key][::-1])


def _undo_file(history: list[UndoRecord]) -> UndoResult:
    """Undo one file's records, newest first."""
    path = history[0].path
    try:
        current = read_genres(path).values
    except TagWriteError as err:
        return UndoResult(path, "failed", detail=err.reason)
    # The newest record that knows the file's values: it holds what that write made it, or what it was before.
    start = next((index for index, record in enumerate(history) if current in (record.new, record.old)), None)
    if start is None:  # changed by someone else since the last write: left alone
        return UndoResult(path, "changed", current, current, detail=show_values(history[0].new))
    wanted = current
    for record in history[start:]:
        if wanted == record.new:
            wanted = record.old
        elif wanted != record.old:  # changed by hand between two runs: that change stays
            break
    if wanted == current:
        return UndoResult(path, "already", current, current)
    try:
        change = write_genres(path, wanted, expect=current)
    except TagChangedError:  # changed between the reading and the writing
        return UndoResult(path, "changed", current, current, detail=show_values(history[0].new))
    except TagWriteError as err:
        return UndoResult(path, "failed", current, current, detail=err.reason)
    return UndoResult(path, "restored", change.old, change.new)

"""Finding the audio files under a folder, in a deterministic order."""
from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from genreslice.pipeline.errors import AudioFolderError

logger = logging.getLogger(__name__)

#: Extensions (lower case) SoX reads itself.
SOX_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".au"})
#: Extensions (lower case) FFmpeg decodes for SoX: AAC or ALAC in MP4 (.m4a), raw AAC (ADTS), Opus, WMA.
FFMPEG_EXTENSIONS = frozenset({".m4a", ".aac", ".opus", ".wma"})
#: Extensions (lower case) the build picks up; matched case-insensitively.
AUDIO_EXTENSIONS = SOX_EXTENSIONS | FFMPEG_EXTENSIONS


@dataclass(frozen=True)
class AudioFile:
    """One discovered file.

    Attributes
    ----------
    path : Path
        The file as reached from the audio folder (symbolic links not resolved).
    rel_path : str
        POSIX path relative to the audio folder; the file's identity in every output.
    size, mtime_ns : int
        From ``stat``; a resumed build redoes a file whose size or modification time changed.
    problem : str
        Why the file cannot be used (a broken link, not a regular file, ``stat`` failed, its folder cannot be
        read); empty for a usable file.
    """

    path: Path
    rel_path: str
    size: int
    mtime_ns: int
    problem: str = ""


@dataclass(frozen=True)
class AudioScan:
    """What a scan of the audio folder found.

    Attributes
    ----------
    files : list of AudioFile
        Audio files, sorted by relative path.
    unreadable : dict
        ``rel_folder/ -> reason`` for every folder below the root that could not be listed: the files in it
        are unknown, not gone.
    """

    files: list[AudioFile]
    unreadable: dict[str, str] = field(default_factory=dict)

    def unreadable_folder_of(self, rel_path: str) -> str | None:
        """The unreadable folder ``rel_path`` lies in, if any (its files could not be listed)."""
        return next((folder for folder in self.unreadable if rel_path.startswith(folder)), None)


_SPECIAL_FILES = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                  (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _file_kind(mode: int) -> str:
    return next((name for test, name in _SPECIAL_FILES if test(mode)), "not a regular file")


def discover_audio(root: str | os.PathLike, *, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[AudioFile]:
    """The audio files under ``root``, recursively, sorted by relative path; see :func:`scan_audio`."""
    return scan_audio(root, extensions=extensions).files


def scan_audio(root: str | os.PathLike, *, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> AudioScan:
    """List the audio files under ``root``, recursively, sorted by relative path, and the folders that could not
    be read.

    The real folder tree is walked first; symbolic links to folders are followed afterwards, in sorted order,
    and only when they resolve inside ``root`` to a folder not walked yet (so link loops end, and a link never
    renames a file). A file reachable by several paths is listed once, under its path without links if it
    has one, else its first path in sorted order. Links that point outside ``root`` are ignored. A file with an
    audio extension that cannot be used (a broken link, a named pipe, a device, a link to one, ``stat`` failed)
    is listed with a ``problem``; it is never opened. A folder that cannot be read is recorded in
    ``AudioScan.unreadable`` (and logged).

    Raises
    ------
    NotADirectoryError
        ``root`` is not a folder.
    AudioFolderError
        ``root`` itself cannot be read (permissions, an unmounted network drive).
    """
    if not Path(root).is_dir():
        raise NotADirectoryError(f"audio folder {os.fspath(root)!r} is not a folder")
    return _AudioWalk(root, extensions).scan()


class _AudioWalk:
    """One walk of :func:`scan_audio`: the folders still to read, the folders seen, the files found."""

    def __init__(self, root: str | os.PathLike, extensions: frozenset[str]) -> None:
        self.root = root
        self.extensions = extensions
        root_real = os.path.realpath(Path(root))
        self.inside = root_real.rstrip(os.sep) + os.sep
        self.visited_dirs = {root_real}
        self.found: dict[str, tuple[tuple[bool, str], AudioFile]] = {}  # real path -> (preference key, file)
        self.unreadable: dict[str, str] = {}
        self.folders: list[tuple[Path, str, bool]] = [(Path(root), "", False)]  # (folder, rel_folder/, via_link)
        self.linked_folders: list[tuple[str, Path, bool]] = []

    def scan(self) -> AudioScan:
        """Walk the real folders, then the linked ones, and list the files found."""
        while self.folders or self.linked_folders:
            if not self.folders:
                self._queue_linked_folder()
                continue
            folder, rel_folder, via_link = self.folders.pop()
            for entry in self._entries(folder, rel_folder):
                self._add(entry, rel_folder, via_link=via_link)
        files = sorted((audio for _, audio in self.found.values()), key=lambda audio: audio.rel_path)
        return AudioScan(files=files, unreadable=self.unreadable)

    def _queue_linked_folder(self) -> None:
        """Queue the first linked folder in sorted order, unless its real folder was walked already."""
        self.linked_folders.sort(key=lambda item: item[0])
        rel_folder, folder, via_link = self.linked_folders.pop(0)
        real = os.path.realpath(folder)
        if real not in self.visited_dirs:
            self.visited_dirs.add(real)
            self.folders.append((folder, rel_folder, via_link))

    def _entries(self, folder: Path, rel_folder: str) -> list[os.DirEntry]:
        """The folder's entries sorted by name; none for a folder below the root that cannot be read (recorded).

        Raises
        ------
        AudioFolderError
            The root itself cannot be read.
        """
        try:
            with os.scandir(folder) as scan:
                return sorted(scan, key=lambda entry: entry.name)
        except OSError as err:
            reason = err.strerror or str(err)
            if not rel_folder:
                raise AudioFolderError(
                    f"cannot read audio folder {os.fspath(self.root)!r}: {reason}; check that it is mounted and that "
                    "you may read it") from err
            logger.warning("cannot read folder %s: %s", folder, reason)
            self.unreadable[rel_folder] = reason
            return []

    def _add(self, entry: os.DirEntry, rel_folder: str, *, via_link: bool) -> None:
        """Queue a folder, or list an audio file under its preferred path (see :func:`scan_audio`)."""
        rel_path = f"{rel_folder}{entry.name}"
        is_link = entry.is_symlink()
        real = os.path.realpath(entry.path)
        if is_link and not real.startswith(self.inside):
            logger.debug("not following %s: it points outside the audio folder", entry.path)
            return
        try:
            is_dir = entry.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            if is_link:
                self.linked_folders.append((rel_path + "/", Path(entry.path), True))
            elif real not in self.visited_dirs:
                self.visited_dirs.add(real)
                self.folders.append((Path(entry.path), rel_path + "/", via_link))
            return
        if os.path.splitext(entry.name)[1].lower() not in self.extensions:
            return
        key = (via_link or is_link, rel_path)
        if real not in self.found or key < self.found[real][0]:
            self.found[real] = (key, _examine(entry, rel_path, is_link=is_link))


def _examine(entry: os.DirEntry, rel_path: str, *, is_link: bool) -> AudioFile:
    """The file found at ``entry``, with the problem that makes it unusable, if any; never opened."""
    try:
        status = entry.stat()  # follows a link; never opens the file (a FIFO would block)
    except OSError as err:
        reason = err.strerror or str(err)
        gone = isinstance(err, FileNotFoundError) and is_link
        problem = f"broken symbolic link: {reason}" if gone else f"cannot examine the file: {reason}"
        return AudioFile(path=Path(entry.path), rel_path=rel_path, size=-1, mtime_ns=-1, problem=problem)
    kind = "" if stat.S_ISREG(status.st_mode) else _file_kind(status.st_mode)
    problem = (f"a symbolic link to {kind}" if is_link else f"{kind}, not a regular file") if kind else ""
    return AudioFile(path=Path(entry.path), rel_path=rel_path, size=status.st_size, mtime_ns=status.st_mtime_ns,
                     problem=problem)

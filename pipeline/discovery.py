"""Finding the audio files under a folder, in a deterministic order."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

#: Extensions (lower case) the build picks up; matched case-insensitively.
AUDIO_EXTENSIONS = frozenset({".mp3", ".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff"})


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
        Why the file cannot be used (a broken link, ``stat`` failed); empty for a usable file.
    """

    path: Path
    rel_path: str
    size: int
    mtime_ns: int
    problem: str = ""


def discover_audio(root: str | os.PathLike, *, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[AudioFile]:
    """List the audio files under ``root``, recursively, sorted by relative path.

    The real folder tree is walked first; symbolic links to folders are followed afterwards, in sorted order,
    and only when they resolve inside ``root`` to a folder not walked yet (so link loops end, and a link never
    renames a file). A file reachable by several paths is listed once, under its path without links if it
    has one, else its first path in sorted order. Links that point outside ``root`` are ignored; a broken link
    or a file that cannot be examined is listed with a ``problem``. Unreadable folders are logged and skipped.

    Raises
    ------
    NotADirectoryError
        ``root`` is not a folder.
    """
    root_path = Path(root)
    if not root_path.is_dir():
        raise NotADirectoryError(f"audio folder {os.fspath(root)!r} is not a folder")
    root_real = os.path.realpath(root_path)
    inside = root_real.rstrip(os.sep) + os.sep
    visited_dirs = {root_real}
    found: dict[str, tuple[tuple[bool, str], AudioFile]] = {}  # real path -> (preference key, file)
    folders = [(root_path, "", False)]
    linked_folders: list[tuple[str, Path, bool]] = []
    while folders or linked_folders:
        if not folders:
            linked_folders.sort(key=lambda item: item[0])
            rel_folder, folder, via_link = linked_folders.pop(0)
            real = os.path.realpath(folder)
            if real in visited_dirs:
                continue
            visited_dirs.add(real)
            folders.append((folder, rel_folder, via_link))
        folder, rel_folder, via_link = folders.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as err:
            logger.warning("cannot read folder %s: %s", folder, err)
            continue
        for entry in entries:
            rel_path = f"{rel_folder}{entry.name}"
            is_link = entry.is_symlink()
            real = os.path.realpath(entry.path)
            if is_link and not real.startswith(inside):
                logger.debug("not following %s: it points outside the audio folder", entry.path)
                continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if is_link:
                    linked_folders.append((rel_path + "/", Path(entry.path), True))
                elif real not in visited_dirs:
                    visited_dirs.add(real)
                    folders.append((Path(entry.path), rel_path + "/", via_link))
                continue
            if os.path.splitext(entry.name)[1].lower() not in extensions:
                continue
            try:
                if not entry.is_file():
                    if not is_link:
                        continue  # a device, a fifo: not audio
                    raise FileNotFoundError("the link's target does not exist")
                stat = entry.stat()
                audio = AudioFile(Path(entry.path), rel_path, stat.st_size, stat.st_mtime_ns)
            except OSError as err:
                reason = err.strerror or str(err)
                problem = f"broken symbolic link: {reason}" if is_link else f"cannot examine the file: {reason}"
                audio = AudioFile(Path(entry.path), rel_path, -1, -1, problem=problem)
            key = (via_link or is_link, rel_path)
            if real not in found or key < found[real][0]:
                found[real] = (key, audio)
    return sorted((audio for _, audio in found.values()), key=lambda audio: audio.rel_path)

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
    """

    path: Path
    rel_path: str
    size: int
    mtime_ns: int


def discover_audio(root: str | os.PathLike, *, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[AudioFile]:
    """List the audio files under ``root``, recursively, sorted by relative path.

    Symbolic links are followed only when they resolve inside ``root``; a folder already visited (a link
    loop, or a second way into the same folder) is not walked again, and a file reached twice is listed
    once, under its first relative path in sorted order. Unreadable folders are logged and skipped.

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
    found: dict[str, tuple[str, AudioFile]] = {}  # real path -> (rel_path, file)
    stack = [(root_path, "")]
    while stack:
        folder, rel_folder = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as err:
            logger.warning("cannot read folder %s: %s", folder, err)
            continue
        for entry in entries:
            rel_path = f"{rel_folder}{entry.name}"
            real = os.path.realpath(entry.path)
            if entry.is_symlink() and not real.startswith(inside):
                logger.debug("not following %s: it points outside the audio folder", entry.path)
                continue
            try:
                if entry.is_dir():
                    if real not in visited_dirs:
                        visited_dirs.add(real)
                        stack.append((Path(entry.path), rel_path + "/"))
                    continue
                if not entry.is_file() or os.path.splitext(entry.name)[1].lower() not in extensions:
                    continue
                stat = entry.stat()
            except OSError as err:
                logger.warning("cannot stat %s: %s", entry.path, err)
                continue
            audio = AudioFile(Path(entry.path), rel_path, stat.st_size, stat.st_mtime_ns)
            if real not in found or rel_path < found[real][0]:
                found[real] = (rel_path, audio)
    return sorted((audio for _, audio in found.values()), key=lambda audio: audio.rel_path)

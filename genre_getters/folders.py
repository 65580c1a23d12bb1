"""Classes from folder names: a file's class is the name of the folder it lies in below the audio folder.

The layout of GTZAN and of most hand-made collections: ``genres/jazz/jazz.00042.au`` is a ``jazz`` track when
``genres`` is the audio folder. ``folder_depth`` picks the level for nested layouts: 1 (the default) is the folders
right below the audio folder, 2 the folders inside those (``ballroom/Waltz/...`` at depth 2 is ``Waltz``), and so
on; a file anywhere below its class folder belongs to it. A file above that depth (directly in the audio folder at
depth 1) has no class and is skipped with the reason.

The classes are the folder names as they are: no genre taxonomy, no mapping. ``--genres`` and ``--exclude-genres``
select among them by exact name, or with case, spacing and punctuation ignored when that matches one class only. A folder name that is not text (bytes
that are not UTF-8) or holds control characters (a newline, a tab) cannot be a class: its files are skipped with
the reason, and renaming the folder brings them in.

The artist comes from the file's tags when it has one (track artist, else album artist: the same tags ``--labels
id3`` reads), so splits stay artist-disjoint; a file without one is split on its own. A file whose tags cannot be
read is still labelled by its folder: whether its audio is usable is SoX's call.
"""
from __future__ import annotations

import numbers
import os
import unicodedata
from pathlib import Path, PurePosixPath

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import TrackLabel, normalize_text
from genreslice.genre_getters.id3 import read_tag_values
from genreslice.metadata import Taxonomy


def class_name_problem(name: str) -> str:
    """Why the folder name ``name`` cannot be a class, or ``""`` when it can."""
    if name.startswith("."):
        return f"its class folder {name!r} is hidden (its name starts with a dot); rename the folder"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"its class folder name {name!r} is not UTF-8 text; rename the folder"
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in name):
        return f"its class folder name {name!r} holds control characters; rename the folder"
    if not name.strip():
        return f"its class folder name {name!r} is blank; rename the folder"
    return ""


def folder_classes(audio_dir: str | os.PathLike, folder_depth: int) -> tuple[tuple[str, ...], list[str]]:
    """The names of the folders ``folder_depth`` levels below ``audio_dir`` that can be classes, sorted, and why the
    others at that level cannot (:func:`class_name_problem`). Folders that cannot be listed, hidden ones (``.``
    first) and links are passed over, at every level: the build lists a file reached through a link inside
    ``audio_dir`` under its path without links, and none outside it."""
    level = [Path(audio_dir)]
    for _ in range(folder_depth):
        below = []
        for folder in level:
            try:
                with os.scandir(folder) as entries:
                    below.extend(Path(entry.path) for entry in entries
                                 if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False))
            except OSError:
                continue
        level = below
    problems = sorted({class_name_problem(path.name) for path in level} - {""})
    return tuple(sorted({path.name for path in level if not class_name_problem(path.name)})), problems


class FolderLabelSource:
    """Classes from folder names (``--labels folders``).

    Parameters
    ----------
    audio_dir : str or os.PathLike
        The audio folder; its folders ``folder_depth`` levels down name the classes (links to folders do not).
    folder_depth : int
        Which level of folders names the class: 1 (default) the folders right below ``audio_dir``.

    Raises
    ------
    ParameterError
        ``folder_depth`` is not a whole number from 1 to 32, or no folder at that depth can be a class.
    """

    name = "folders"
    reads_audio = True  # for the artist in the tags
    metadata_problems: tuple[str, ...] = ()

    def __init__(self, audio_dir: str | os.PathLike, *, folder_depth: int = 1) -> None:
        if isinstance(folder_depth, bool) or not isinstance(folder_depth, numbers.Integral) \
                or not 1 <= folder_depth <= 32:
            raise ParameterError(f"folder_depth={folder_depth!r} must be a whole number from 1 to 32")
        folder_depth = int(folder_depth)
        self.folder_depth = folder_depth
        classes, problems = folder_classes(audio_dir, folder_depth)
        if not classes and problems:
            raise ParameterError(f"{os.fspath(audio_dir)}: no folder {folder_depth} level"
                                 f"{'s' if folder_depth > 1 else ''} down can be a class; for example, the "
                                 f"{problems[0].removeprefix('its ')}")
        if not classes:
            raise ParameterError(
                f"{os.fspath(audio_dir)}: no class folders {folder_depth} level{'s' if folder_depth > 1 else ''} "
                "down: with --labels folders each file lies in a folder named after its class (genres/jazz/"
                "jazz.00042.au), and AUDIO_DIR is the folder holding the class folders"
                + (", or lower --folder-depth" if folder_depth > 1 else ""))
        self.taxonomy = Taxonomy.of_classes(classes)

    def settings(self) -> dict:
        return {"source": self.name, "taxonomy": "folders", "folder_depth": self.folder_depth}

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return []

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        relative = PurePosixPath(rel_path)
        if relative.is_absolute() or ".." in relative.parts:
            return TrackLabel(genre=None, artist=None, reason=f"{rel_path!r} is not a path inside the audio folder")
        folders = relative.parts[:-1]
        if len(folders) < self.folder_depth:
            depth = self.folder_depth
            where = "directly in the audio folder" if not folders else \
                f"{len(folders)} folder{'s' if len(folders) > 1 else ''} deep"
            return TrackLabel(genre=None, artist=None,
                              reason=f"not in a class folder: the class is the name of the folder {depth} "
                                     f"level{'s' if depth > 1 else ''} below the audio folder (--folder-depth "
                                     f"{depth}), and this file lies {where}")
        name = folders[self.folder_depth - 1]
        problem = class_name_problem(name) or next(
            (f"it lies in the hidden folder {folder!r}" for folder in folders[: self.folder_depth - 1]
             if folder.startswith(".")), "")
        if problem:
            return TrackLabel(genre=None, artist=None, reason=problem)
        if name not in self.taxonomy.genres:  # a folder made after the build started
            return TrackLabel(genre=None, artist=None,
                              reason=f"its class folder {name!r} was not there when the build started; run it again")
        return TrackLabel(genre=name, artist=_tag_artist(path))


def _tag_artist(path: Path) -> str | None:
    """The first artist in the file's tags, or None (no tag, or tags that cannot be read)."""
    try:
        _, artists = read_tag_values(path)
    except Exception:  # noqa: BLE001 - mutagen raises many kinds on damaged files; the folder still labels it
        return None
    return next((normalize_text(artist) for artist in artists if normalize_text(artist)), None)

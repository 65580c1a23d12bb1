"""What every label source returns, and the interface the build relies on."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol, runtime_checkable

from genreslice.metadata import Taxonomy

#: The data set's split names, in order: the one definition every package uses (a label source may give a
#: track's official split by one of these names; the build writes them into tracks.csv and dataset.json).
SPLITS = ("train", "validation", "test")
#: What joins a track's several labels (tags) in a cell: of a label CSV, and of the build's tracks.csv and
#: slices.csv; so no label may hold it.
TAG_SEPARATOR = ";"


@dataclass(frozen=True)
class TrackLabel:
    """The label of one audio file.

    Attributes
    ----------
    genre : str or None
        Top-level genre (one of the source's ``taxonomy.genres``), or None when the track has no usable genre (and
        in a multi-label source's labels, which set ``tags``).
    artist : str or None
        Artist name or id (splits are drawn by artist), or None when unknown.
    reason : str
        Why ``genre`` is None; empty when it is set.
    track_id : str or None
        The source's own id for the track (e.g. FMA's numeric id); None lets the build derive one from the path.
    split : str or None
        The official split from the metadata (one of ``SPLITS``), or None to let the build draw one.
    unlisted : bool
        True when the source's metadata has no row for the file (counted and reported by the build).
    failed : bool
        True when the file could not be read or parsed at all (``reason`` says why): the build records the track
        as ``failed``, not ``skipped`` (which means "no usable label").
    tags : tuple of str
        A multi-label source's labels of the track (classes of its ``taxonomy``, in the metadata's order, without
        repeats); empty in single-label sources, and when the track has none (``reason`` says why).
    """

    genre: str | None
    artist: str | None
    reason: str = ""
    track_id: str | None = None
    split: str | None = None
    unlisted: bool = False
    failed: bool = False
    tags: tuple[str, ...] = ()

    @property
    def labelled(self) -> bool:
        """Whether the track has a label to build with: a genre, or (multi-label) at least one tag."""
        return bool(self.genre or self.tags)


@runtime_checkable
class LabelSource(Protocol):
    """An object that labels audio files.

    Attributes
    ----------
    name : str
        The ``--labels`` name.
    reads_audio : bool
        True when ``label`` opens the audio file (tags): the build then runs it on its worker processes, so
        the object must pickle small. False for table look-ups, which run in the build's main process.
    taxonomy : metadata.Taxonomy
        The top-level genres labels are drawn from (``--genres`` names are checked against it).
    metadata_problems : tuple of str
        Metadata rows that were reported and skipped while loading (file, line and what is wrong).
    multilabel : bool, optional
        True when ``label`` gives ``tags`` (several classes per track) rather than one ``genre``; a source without
        the attribute is single-label.
    """

    name: str
    reads_audio: bool
    taxonomy: Taxonomy
    metadata_problems: tuple[str, ...]

    def settings(self) -> dict:
        """JSON-ready settings, recorded in ``dataset.json``."""

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        """Label the file at ``path`` (``rel_path``: its POSIX path relative to the audio folder).

        Never raises for a bad file: an unreadable one gets a label with ``genre=None``, ``failed=True`` and a
        reason.
        """

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        """Track ids the metadata lists (within any subset chosen) that are not in ``labelled_ids``, sorted."""


_SPACES = re.compile(r"\s+")


def normalize_text(value: str) -> str:
    """Strip, drop NULs and collapse runs of whitespace to one space."""
    return _SPACES.sub(" ", value.replace("\x00", " ")).strip()


def inside_audio_folder(rel_path: str) -> str | None:
    """A metadata file's path of an audio file, as the POSIX path relative to the audio folder it must be; None when
    it is empty or could lead outside that folder (absolute, ``..``, ``~``, a backslash or a NUL)."""
    if not rel_path or "\\" in rel_path or "\x00" in rel_path:
        return None
    pure = PurePosixPath(rel_path)
    if pure.is_absolute() or ".." in pure.parts or rel_path.startswith("~"):
        return None
    return pure.as_posix()

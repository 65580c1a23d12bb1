"""What every label source returns, and the interface the build relies on."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class TrackLabel:
    """The label of one audio file.

    Attributes
    ----------
    genre : str or None
        Top-level genre, or None when the track has no usable genre.
    artist : str or None
        Artist name or id (splits are drawn by artist), or None when unknown.
    reason : str
        Why ``genre`` is None; empty when it is set.
    track_id : str or None
        The source's own id for the track (e.g. FMA's numeric id); None lets the build derive one from the path.
    """

    genre: str | None
    artist: str | None
    reason: str = ""
    track_id: str | None = None


@runtime_checkable
class LabelSource(Protocol):
    """A picklable object that labels audio files; instances travel to worker processes."""

    name: str

    def settings(self) -> dict:
        """JSON-ready settings; a build refuses to resume with different ones."""

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        """Label the file at ``path`` (``rel_path``: its POSIX path relative to the audio folder).

        Never raises for a bad file: an unreadable one gets a label with ``genre=None`` and a reason.
        """


_SPACES = re.compile(r"\s+")


def normalize_text(value: str) -> str:
    """Strip, drop NULs and collapse runs of whitespace to one space."""
    return _SPACES.sub(" ", value.replace("\x00", " ")).strip()

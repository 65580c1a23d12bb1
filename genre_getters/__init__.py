"""Label sources: where a track's genre and artist come from.

Every source module has the same shape (constants, small pure ``read_*`` functions, then one class with
``name``, ``settings()`` and ``label()``) and registers its class in ``LABEL_SOURCES``.
"""
from __future__ import annotations

from genre_getters.base import LabelSource, TrackLabel
from genre_getters.id3 import Id3LabelSource

LABEL_SOURCES: dict[str, type] = {Id3LabelSource.name: Id3LabelSource}

__all__ = ["LABEL_SOURCES", "LabelSource", "TrackLabel", "Id3LabelSource", "make_label_source"]


def make_label_source(name: str, **options) -> LabelSource:
    """Instantiate the label source registered as ``name``."""
    try:
        source_class = LABEL_SOURCES[name]
    except KeyError:
        raise ValueError(f"label source {name!r} is unknown; choose one of {', '.join(sorted(LABEL_SOURCES))}") from None
    return source_class(**options)

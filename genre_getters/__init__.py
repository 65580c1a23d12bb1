"""Label sources: where a track's genre, artist and (official) split come from.

Every source module has the same shape (constants, small pure ``read_*`` functions, then one class with
``name``, ``reads_audio``, ``taxonomy``, ``settings()``, ``label()`` and ``missing_audio()``) and registers its
class in ``LABEL_SOURCES``.
"""
from __future__ import annotations

import inspect
import os

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import SPLITS, LabelSource, TrackLabel
from genreslice.genre_getters.csv_labels import CsvLabelSource
from genreslice.genre_getters.fma import FmaLabelSource
from genreslice.genre_getters.folders import FolderLabelSource
from genreslice.genre_getters.id3 import Id3LabelSource
from genreslice.genre_getters.jamendo import JamendoLabelSource
from genreslice.metadata import MetadataError

LABEL_SOURCES: dict[str, type] = {
    source.name: source for source in (Id3LabelSource, FmaLabelSource, JamendoLabelSource, FolderLabelSource,
                                            CsvLabelSource)
}

__all__ = ["LABEL_SOURCES", "SPLITS", "LabelSource", "TrackLabel", "MetadataError", "Id3LabelSource",
           "FmaLabelSource", "JamendoLabelSource", "FolderLabelSource", "CsvLabelSource",
           "make_label_source"]


def make_label_source(name: str, *, audio_dir: str | os.PathLike | None = None, **options) -> LabelSource:
    """Instantiate the label source registered as ``name`` with its keyword options (``None`` and ``False`` values
    dropped: an option left at its default).

    ``audio_dir``, the folder being built, goes to the sources that read its layout (``folders``) and is ignored
    by the others; such a source without it raises ``ParameterError``.

    Raises
    ------
    ValueError
        Unknown source, or an option the source does not take.
    MetadataError
        The source's metadata cannot be read.
    """
    try:
        source_class = LABEL_SOURCES[name]
    except KeyError:
        raise ParameterError(f"label source {name!r} is unknown; choose one of {', '.join(sorted(LABEL_SOURCES))}") from None
    options = {key: value for key, value in options.items() if value is not None and value is not False}
    accepted = inspect.signature(source_class).parameters
    if options.get("multilabel") and "multilabel" not in accepted:
        several = sorted(key for key, value in LABEL_SOURCES.items()
                         if "multilabel" in inspect.signature(value).parameters)
        raise ParameterError(f"--task multilabel needs a source that gives a track several labels (--labels "
                             f"{' or '.join(several)}); --labels {name} gives one")
    unused = sorted(key for key in options if key not in accepted)
    if unused:
        raise ParameterError(f"--labels {name} does not use {', '.join('--' + key.replace('_', '-') for key in unused)}")
    if "audio_dir" in accepted:
        if audio_dir is None:
            raise ParameterError(f"--labels {name} needs the audio folder (audio_dir)")
        return source_class(audio_dir, **options)
    return source_class(**options)

"""Exceptions raised by training."""
from __future__ import annotations

from genreslice.errors import GenresliceError, ParameterError

__all__ = ["DatasetError", "ModelDirError", "ParameterError", "TrainingError"]


class TrainingError(GenresliceError):
    """Base class for every error training raises on purpose; the message names the file and the problem."""


class DatasetError(TrainingError):
    """The data set folder cannot be trained on (no ``dataset.json``, an empty split, unreadable tables)."""


class ModelDirError(TrainingError):
    """The model folder holds a model or an unfinished run that does not match this request."""

"""Exceptions raised by the build pipeline."""
from __future__ import annotations

from genreslice.errors import GenresliceError, ParameterError

__all__ = ["AudioFolderError", "BuildLockedError", "ExecutorError", "MissingAudioError", "OutputError",
           "ParameterError", "PipelineError", "SettingsMismatchError", "SoxError", "SoxUnavailableError",
           "WorkerDiedError"]


class PipelineError(GenresliceError):
    """Base class for every error the pipeline raises on purpose (bad settings raise :class:`ParameterError`)."""


class SoxError(PipelineError):
    """SoX failed on one file: carries the command and SoX's own stderr.

    ``transient`` is True when the failure says nothing about the file's content (a timeout, SoX killed by a
    signal, SoX not started, the file unreadable at the time): a later build tries such a file again.
    """

    def __init__(self, message: str, *, command: list[str] | None = None, stderr: str = "",
                 transient: bool = False) -> None:
        super().__init__(message)
        self.command = command or []
        self.stderr = stderr
        self.transient = transient


class AudioFolderError(PipelineError):
    """The audio folder holds nothing to build, or cannot be read; fatal, detected before any work."""


class MissingAudioError(PipelineError):
    """A build would drop most built tracks from the data set (their files are gone or unreadable); the user
    must confirm it."""


class SoxUnavailableError(PipelineError):
    """SoX is missing or lacks a format the build needs; fatal, detected before any work."""


class BuildLockedError(PipelineError):
    """Another build holds the lock on the output folder."""


class SettingsMismatchError(PipelineError):
    """The output folder was built with other settings; mixing them would corrupt the data set."""


class OutputError(PipelineError):
    """The output folder cannot be created or written."""


class ExecutorError(PipelineError):
    """The chosen executor cannot run: Dask missing, a scheduler out of reach or without workers."""


class WorkerDiedError(PipelineError):
    """A task's worker process died ``deaths`` times while running it; the track is recorded as failed."""

    def __init__(self, message: str, *, deaths: int) -> None:
        super().__init__(message)
        self.deaths = deaths

"""The base of every error genreslice raises on purpose.

It lives in the root package, which every sub-package imports by construction and which imports nothing, so each
sub-package (``metadata`` included) derives its errors from it without depending on a sibling. The command line
catches :class:`GenresliceError` once: :class:`ParameterError` is a usage error (exit status 2), any other one a
failed command (exit status 1). Each message names the file or the setting and the bad value.
"""
from __future__ import annotations


class GenresliceError(Exception):
    """Base class for every error genreslice raises on purpose; the message is meant for the user as it is."""


class ParameterError(GenresliceError, ValueError):
    """A setting has a value genreslice cannot use; the message names the setting and the value received.

    Also a ``ValueError``, so callers of the library that catch that keep working.
    """

"""Loading TensorFlow with its native start-up lines held back, for the command line and the Python API alike.

TensorFlow writes lines such as "Could not find cuda drivers on your machine" and "This TensorFlow binary is
optimized to use available CPU instructions" straight to file descriptor 2 while it loads, before any log setting
applies (``TF_CPP_MIN_LOG_LEVEL`` does not stop all of them). :func:`load_tensorflow` holds them back, and shows
them if the import fails. The modules of :mod:`genreslice.training` that need TensorFlow import it through
:mod:`genreslice.training.tf_modules`, so ``from genreslice.training.predict import classify`` prints nothing.
Set ``TF_CPP_MIN_LOG_LEVEL`` yourself (``0`` shows everything) before the first import to see them.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import tempfile

__all__ = ["load_tensorflow", "native_stderr_captured", "retracing_warnings_held"]


@contextlib.contextmanager
def native_stderr_captured(enabled: bool = True):
    """Send file descriptor 2 to a temporary file while the block runs; replay it if the block raises."""
    if not enabled:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (a closed or replaced stderr): nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_tensorflow(*, quiet: bool | None = None) -> str:
    """Import TensorFlow and find its devices; returns them in words, e.g. "1 CPU" or "2 GPUs and 1 CPU".

    Parameters
    ----------
    quiet : bool, optional
        Hold back TensorFlow's native start-up lines (shown if the import fails). By default they are held back
        unless ``TF_CPP_MIN_LOG_LEVEL`` is set in the environment. Only the first import can be quietened.
    """
    if quiet is None:
        quiet = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    first = "tensorflow" not in sys.modules
    if quiet:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured(quiet and first):
        import tensorflow as tf  # only what needs a model pays for this import

        kinds = collections.Counter(device.device_type for device in tf.config.list_physical_devices())
    return " and ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in sorted(kinds.items(), reverse=True))


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def retracing_warnings_held():
    """Hold back TensorFlow's "N out of the last N calls to ... triggered tf.function retracing" warnings while the
    block runs. Every model genreslice loads or builds is traced anew, and the last batch of a split is smaller: a
    notebook that trains or evaluates a few models in one session would get them, with nothing to do about them.
    Other TensorFlow warnings pass."""
    logger = logging.getLogger("tensorflow")
    held = _RetracingFilter()
    logger.addFilter(held)
    try:
        yield
    finally:
        logger.removeFilter(held)

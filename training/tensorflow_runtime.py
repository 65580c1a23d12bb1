"""Loading TensorFlow with its native start-up lines held back, for the command line and the Python API alike.

TensorFlow writes lines such as "Could not find cuda drivers on your machine" and "This TensorFlow binary is
optimized to use available CPU instructions" straight to file descriptor 2 while it loads, before any log setting
applies (``TF_CPP_MIN_LOG_LEVEL`` does not stop all of them). :func:`load_tensorflow` holds them back: what else was
written to descriptor 2 meanwhile (another thread's output) is written out afterwards, and everything is if the
import fails. The modules of :mod:`genreslice.training` that need TensorFlow import it through
:mod:`genreslice.training.tf_modules`, so ``from genreslice.training.predict import classify`` prints nothing.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import sys
import tempfile

__all__ = ["load_tensorflow", "native_stderr_captured", "retracing_warnings_held", "tensorflow_lines_wanted"]

#: TensorFlow's native lines (from its C++ sources, ``.cc``): absl's
#: ``I0000 00:00:1795991614.316838   18159 cudart_stub.cc:31] ...``, the older
#: ``2024-01-31 12:00:00.000000: I tensorflow/core/util/port.cc:113] ...``, absl's note before its set-up, and the
#: second line of the CPU-instructions note.
_TENSORFLOW_LINE = re.compile(
    rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+\.cc:\d+\] "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+\.cc:\d+\] "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    rb"|To enable the following instructions: .*(?:rebuild TensorFlow|compiler flags))"
)


def _write_fd2(data: bytes) -> None:
    while data:
        try:
            data = data[os.write(2, data):]
        except OSError:  # stderr gone: nowhere to show it
            return


@contextlib.contextmanager
def native_stderr_captured(enabled: bool = True):
    """Send file descriptor 2 to a temporary file while the block runs. Afterwards, write out what was written
    meanwhile except TensorFlow's native lines; all of it if the block raises."""
    if not enabled:
        yield
        return
    if sys.stderr is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (started with 2>&-): nothing to hold back
            yield
            return
        failed = False
        try:
            os.dup2(captured.fileno(), 2)
            yield
        except Exception:  # an import that fails shows everything; Ctrl-C is no failure of TensorFlow's
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().splitlines(keepends=True)
            _write_fd2(b"".join(line for line in lines if failed or not _TENSORFLOW_LINE.match(line)))


def tensorflow_lines_wanted() -> bool:
    """Whether the user asked for TensorFlow's native lines: ``TF_CPP_MIN_LOG_LEVEL`` set to 0 or 1 (INFO or
    WARNING) in the environment. Unset, 2 or 3: they are held back."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() in ("0", "1")


def load_tensorflow(*, quiet: bool | None = None) -> str:
    """Import TensorFlow and find its devices; returns them in words, e.g. "1 CPU" or "2 GPUs and 1 CPU".

    Parameters
    ----------
    quiet : bool, optional
        Hold back TensorFlow's native start-up lines (all shown if the import fails), and have TensorFlow's later
        C++ INFO and WARNING lines left out (``TF_CPP_MIN_LOG_LEVEL`` 2 where it is not set). By default quiet
        unless ``TF_CPP_MIN_LOG_LEVEL`` is 0 or 1 (:func:`tensorflow_lines_wanted`). Only the first import of
        TensorFlow in a process can be quietened; later calls only find the devices.
    """
    first = "tensorflow" not in sys.modules
    if quiet is None:
        quiet = not tensorflow_lines_wanted()
    if quiet and first:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured(quiet and first):
        import tensorflow as tf  # only what needs a model pays for this import

        kinds = collections.Counter(device.device_type for device in tf.config.list_physical_devices())
    shown = sorted(kinds.items(), reverse=True)
    return " and ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in shown)


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

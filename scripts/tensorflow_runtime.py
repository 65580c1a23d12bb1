"""Loading TensorFlow for the commands that need a model, with its native start-up noise held back."""
from __future__ import annotations

import collections
import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def native_stderr_captured(enabled: bool = True):
    """Send file descriptor 2 to a temporary file while the block runs; replay it if the block raises."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
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


def load_tensorflow(*, verbose: bool = False) -> str:
    """Import TensorFlow and find its devices; returns them in words, e.g. "1 CPU" or "2 GPUs and 1 CPU".

    TensorFlow's native start-up lines (CPU instruction sets, no CUDA driver found, oneDNN notes) are written to
    stderr before its log settings apply; they are held back unless ``-v`` is given, and shown if the import fails.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured(not verbose):
        import tensorflow as tf  # only the commands that need a model pay for this import

        kinds = collections.Counter(device.device_type for device in tf.config.list_physical_devices())
    return " and ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in sorted(kinds.items(), reverse=True))

"""TensorFlow and Keras for the modules of :mod:`genreslice.training`, loaded quietly by
:func:`genreslice.training.tensorflow_runtime.load_tensorflow`: import them from here, not directly."""
from genreslice.training.tensorflow_runtime import load_tensorflow

load_tensorflow()

import keras  # noqa: E402  (after load_tensorflow, which holds back TensorFlow's start-up lines)
import tensorflow as tf  # noqa: E402

__all__ = ["keras", "tf"]

"""Model presets: the networks ``genreslice train --model`` can build, each with the settings it was designed with.

One entry of :data:`PRESETS` holds a preset's builder *and* its defaults (optimizer, learning rate, batch
size), so adding a preset is adding one entry; ``tests/training/test_models.py`` builds, trains, saves and loads
every entry. Importable without TensorFlow: the command line lists the presets before it loads Keras, which the
builders import when they run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genreslice.errors import ParameterError

if TYPE_CHECKING:
    from genreslice.training.tf_modules import keras

#: The optimizers a preset may name, and the ``keras.optimizers`` class of each (as help text spells it too).
OPTIMIZERS = {"adam": "Adam", "rmsprop": "RMSprop"}


def build_despoisj(n_classes: int, slice_size: int = 128) -> keras.Model:
    """The network of despoisj/DeepAudioClassification, the method genreslice descends from (README: How it works).

    Four blocks of Conv2D (2x2 kernel, 'same' padding as tflearn's default; 64, 128, 256, 512 filters; ELU,
    Xavier initialisation) each followed by 2x2 max-pooling, then Flatten, Dense 1024 (ELU), Dropout 0.5 and
    a softmax over the classes. On 128x128 slices the dense layer alone has 32768 x 1024 weights (about
    34.2 M parameters in all).
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for filters in (64, 128, 256, 512):
        x = layers.Conv2D(
            filters, 2, padding="same", activation="elu", kernel_initializer="glorot_normal", name=f"conv_{filters}"
        )(x)
        x = layers.MaxPooling2D(2, name=f"pool_{filters}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, activation="elu", name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="despoisj")


def build_compact(n_classes: int, slice_size: int = 128) -> keras.Model:
    """A small network that trains in minutes on a laptop CPU (about 135 k parameters).

    Five blocks of 3x3 Conv2D + ReLU + 2x2 max-pooling (16, 32, 64, 64, 128 filters), then global average
    pooling instead of a huge dense layer, Dropout 0.3 and a softmax. No batch normalization: with the few
    hundred steps of a small data set its moving statistics lag behind the weights, and validation accuracy
    stayed at chance in our trials while the same network without it reached 100% in three epochs.
    """
    from genreslice.training.tf_modules import keras
    from keras import layers

    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for block, filters in enumerate((16, 32, 64, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="average")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="compact")


@dataclass(frozen=True)
class ModelPreset:
    """A network and the training settings it was designed with.

    Attributes
    ----------
    name : str
        What ``--model`` calls it.
    builder : callable
        ``builder(n_classes, slice_size)`` returns the uncompiled network, whose input is a batch of
        ``(slice_size, slice_size, 1)`` slices and whose output is a softmax over ``n_classes``.
    optimizer : str
        One of :data:`OPTIMIZERS`.
    learning_rate : float
        The optimizer's learning rate when ``--learning-rate`` is not given.
    batch_size : int
        Slices per step (per device) when ``--batch-size`` is not given.
    about : str
        What the network is, in a few words; :attr:`description` adds the settings.
    """

    name: str
    builder: Callable[[int, int], keras.Model]
    optimizer: str
    learning_rate: float
    batch_size: int
    about: str

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"optimizer={self.optimizer!r} must be one of {', '.join(OPTIMIZERS)}")

    @property
    def description(self) -> str:
        """One line for ``genreslice train --help``: :attr:`about`, then the optimizer, learning rate and batch."""
        mantissa, exponent = f"{self.learning_rate:e}".split("e")
        rate = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{self.about} ({OPTIMIZERS[self.optimizer]} {rate}, batch {self.batch_size})"

    def build(self, n_classes: int, *, slice_size: int = 128, learning_rate: float | None = None) -> keras.Model:
        """The network, compiled with this preset's optimizer (at ``learning_rate``, or the preset's when None)."""
        from genreslice.training.tf_modules import keras

        model = self.builder(n_classes, slice_size)
        rate = self.learning_rate if learning_rate is None else learning_rate
        optimizer = getattr(keras.optimizers, OPTIMIZERS[self.optimizer])(rate)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


#: The presets by name.
PRESETS: dict[str, ModelPreset] = {preset.name: preset for preset in (
    ModelPreset(
        name="compact", builder=build_compact, optimizer="adam", learning_rate=1e-3, batch_size=64,
        about="small CNN with global average pooling, 135 k parameters; minutes on a CPU",
    ),
    ModelPreset(
        name="despoisj", builder=build_despoisj, optimizer="rmsprop", learning_rate=1e-3, batch_size=128,
        about="DeepAudioClassification's 4-block CNN with a 1024-unit dense layer, 34.2 M parameters",
    ),
)}


def build_model(name: str, n_classes: int, *, slice_size: int = 128, learning_rate: float | None = None) -> keras.Model:
    """Build and compile the network of preset ``name`` (see :meth:`ModelPreset.build`).

    Labels are class indices (sparse categorical cross-entropy); the reported metric is ``accuracy``.

    Raises
    ------
    ParameterError
        Unknown preset name, or fewer than 2 classes.
    """
    if name not in PRESETS:
        raise ParameterError(f"model={name!r} is not one of {', '.join(sorted(PRESETS))}")
    if n_classes < 2:
        raise ParameterError(f"n_classes={n_classes} must be at least 2 to train a classifier")
    return PRESETS[name].build(n_classes, slice_size=slice_size, learning_rate=learning_rate)

"""The networks ``genreslice train --model`` can build, compiled and ready to fit."""
from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from genreslice.training.settings import MODEL_DEFAULTS


def build_despoisj(n_classes: int, slice_size: int = 128) -> keras.Model:
    """The lineage's network (despoisj/DeepAudioClassification).

    Four blocks of Conv2D (2x2 kernel, 'same' padding as tflearn's default; 64, 128, 256, 512 filters; ELU,
    Xavier initialisation) each followed by 2x2 max-pooling, then Flatten, Dense 1024 (ELU), Dropout 0.5 and
    a softmax over the classes. On 128x128 slices the dense layer alone has 32768 x 1024 weights (about
    34.2 M parameters in all).
    """
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
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for block, filters in enumerate((16, 32, 64, 64, 128), start=1):
        x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = layers.GlobalAveragePooling2D(name="average")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="compact")


#: Architectures by name; their optimizer settings are in :data:`training.settings.MODEL_DEFAULTS`.
MODELS: dict[str, Callable[[int, int], keras.Model]] = {"compact": build_compact, "despoisj": build_despoisj}


def build_model(name: str, n_classes: int, *, slice_size: int = 128, learning_rate: float | None = None) -> keras.Model:
    """Build and compile one of :data:`MODELS`.

    Labels are class indices (sparse categorical cross-entropy); the reported metric is ``accuracy``.

    Raises
    ------
    ValueError
        Unknown model name, or fewer than 2 classes.
    """
    if name not in MODELS:
        raise ValueError(f"model={name!r} is not one of {', '.join(sorted(MODELS))}")
    if n_classes < 2:
        raise ValueError(f"n_classes={n_classes} must be at least 2 to train a classifier")
    defaults = MODEL_DEFAULTS[name]
    model = MODELS[name](n_classes, slice_size)
    rate = defaults.learning_rate if learning_rate is None else learning_rate
    optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[defaults.optimizer](rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

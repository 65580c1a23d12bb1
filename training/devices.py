"""The devices a training run uses, and the ``tf.distribute`` strategy that spreads it over them."""
from __future__ import annotations

from genreslice.training.errors import TrainingError
from genreslice.training.tf_modules import tf


def training_devices(request: int | None = None) -> list[str]:
    """Names of the logical devices to train on: TensorFlow's GPUs, or its CPUs when it sees no GPU.

    Parameters
    ----------
    request : int, optional
        How many: None takes them all, N the first N.

    Returns
    -------
    list of str
        Device names such as ``/device:GPU:0``; at least one.

    Raises
    ------
    TrainingError
        More devices requested than TensorFlow sees.
    """
    kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    devices = [device.name for device in tf.config.list_logical_devices(kind)]
    if request is None:
        return devices
    if not 1 <= request <= len(devices):
        seen = f"{len(devices)} {kind}{'s' if len(devices) > 1 else ''}"
        raise TrainingError(f"devices={request}: TensorFlow sees {seen} ({', '.join(devices)}); ask for at most "
                            f"{len(devices)}")
    return devices[:request]


def distribution_strategy(devices: list[str]) -> tf.distribute.Strategy:
    """``MirroredStrategy`` over ``devices`` when there are several: a replica of the model on each, every batch
    split between them and the gradients summed. One device gets TensorFlow's default strategy, so a run on one
    device is the same as without distribution."""
    if len(devices) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()

"""Training settings, importable without TensorFlow (the command line parses options before loading it)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from genreslice.errors import ParameterError

CLASS_WEIGHTS = ("balanced", "none")
#: Slices per model call when evaluating and predicting (no gradients: larger than training batches).
INFERENCE_BATCH_SIZE = 256


@dataclass(frozen=True)
class ModelDefaults:
    """The optimizer settings an architecture was designed with, and a one-line description."""

    optimizer: str
    learning_rate: float
    batch_size: int
    description: str


MODEL_DEFAULTS: dict[str, ModelDefaults] = {
    "compact": ModelDefaults(
        "adam", 1e-3, 64, "small CNN with global average pooling, 135 k parameters; minutes on a CPU (Adam 1e-3, batch 64)"
    ),
    "despoisj": ModelDefaults(
        "rmsprop", 1e-3, 128,
        "the lineage's 4-block CNN with a 1024-unit dense layer, 34.2 M parameters (RMSprop 1e-3, batch 128)",
    ),
}


def default_loader_workers() -> int:
    """Loader threads by default: the cores, at most 4 (decoding is cheap next to the model's work)."""
    return max(1, min(4, os.cpu_count() or 1))


def check_stop_rules(target_accuracy: float | None, target_loss: float | None, patience: int) -> None:
    """Raise ValueError naming the first stop-rule value out of range."""
    if target_accuracy is not None and not 0.0 <= target_accuracy <= 1.0:
        raise ParameterError(f"target_accuracy={target_accuracy} must be between 0 and 1")
    if target_loss is not None and not target_loss >= 0.0:
        raise ParameterError(f"target_loss={target_loss} must be 0 or more")
    if patience < 0:
        raise ParameterError(f"patience={patience} must be 0 or more")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Everything except ``epochs``, ``loader_workers`` and ``devices`` must stay the same for a run to be resumed.

    Attributes
    ----------
    model : str
        A name in :data:`MODEL_DEFAULTS`.
    epochs : int
        Most epochs to train in all (a resumed run counts the epochs done before).
    batch_size, learning_rate : int or None, float or None
        None takes the model's own default.
    seed : int
        Seeds weight initialisation, dropout and the per-epoch shuffles.
    target_accuracy, target_loss : float or None
        The target stop rule (validation accuracy >= target_accuracy and validation loss <= target_loss);
        None disables a bound, and no accuracy bound disables the rule.
    patience : int
        Epochs without a better validation loss before stopping; 0 disables.
    class_weights : str
        ``balanced`` weighs each class by ``n_slices / (n_classes * n_slices_of_class)`` of the training
        split, so a rare genre counts as much as a common one; ``none`` weighs every slice the same.
    loader_workers : int
        Threads that load batches ahead of the model.
    devices : int or None
        How many GPUs (or CPUs, when TensorFlow sees no GPU) to train on, with one model replica each; None takes
        all. ``batch_size`` is per device: a step takes ``batch_size * devices`` slices. A resumed run may use
        another number of devices.
    """

    model: str = "compact"
    epochs: int = 50
    batch_size: int | None = None
    learning_rate: float | None = None
    seed: int = 0
    target_accuracy: float | None = 0.95
    target_loss: float | None = 0.2
    patience: int = 5
    class_weights: str = "balanced"
    loader_workers: int = field(default_factory=default_loader_workers)
    devices: int | None = None

    def __post_init__(self) -> None:
        if self.model not in MODEL_DEFAULTS:
            raise ParameterError(f"model={self.model!r} is not one of {', '.join(sorted(MODEL_DEFAULTS))}")
        if self.epochs < 1:
            raise ParameterError(f"epochs={self.epochs} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ParameterError(f"batch_size={self.batch_size} must be at least 1")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ParameterError(f"learning_rate={self.learning_rate} must be positive")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ParameterError(f"class_weights={self.class_weights!r} must be one of {', '.join(CLASS_WEIGHTS)}")
        if self.loader_workers < 1:
            raise ParameterError(f"loader_workers={self.loader_workers} must be at least 1")
        if self.devices is not None and self.devices < 1:
            raise ParameterError(f"devices={self.devices} must be at least 1")
        check_stop_rules(self.target_accuracy, self.target_loss, self.patience)

    def resolved(self) -> TrainConfig:
        """The same settings with the model's default batch size and learning rate filled in."""
        defaults = MODEL_DEFAULTS[self.model]
        return replace(
            self,
            batch_size=self.batch_size or defaults.batch_size,
            learning_rate=self.learning_rate or defaults.learning_rate,
        )

    def run_settings(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        settings = asdict(self.resolved())
        del settings["epochs"], settings["loader_workers"], settings["devices"]
        return settings

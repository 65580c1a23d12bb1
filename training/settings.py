"""Training settings, importable without TensorFlow (the command line parses options before loading it)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace

from genreslice.errors import ParameterError
from genreslice.training.models import PRESETS

CLASS_WEIGHTS = ("balanced", "none")
#: Slices per model call when evaluating and predicting (no gradients: larger than training batches).
INFERENCE_BATCH_SIZE = 256

#: Why training ended, as recorded in ``model.json`` and ``checkpoint/state.json``.
STOP_TARGET = "target"
STOP_PATIENCE = "patience"
STOP_MAX_EPOCHS = "max_epochs"
STOP_DIVERGED = "diverged"
STOP_REASONS = (STOP_TARGET, STOP_PATIENCE, STOP_MAX_EPOCHS, STOP_DIVERGED)


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


def _check_at_least_one(name: str, value: int | None) -> None:
    """Raise ParameterError unless ``value`` (None: not set) is at least 1."""
    if value is not None and value < 1:
        raise ParameterError(f"{name}={value} must be at least 1")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Everything except ``epochs``, ``loader_workers`` and ``devices`` must stay the same for a run to be resumed.

    Attributes
    ----------
    model : str
        A name in :data:`~genreslice.training.models.PRESETS`.
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
        if self.model not in PRESETS:
            raise ParameterError(f"model={self.model!r} is not one of {', '.join(sorted(PRESETS))}")
        for name in ("epochs", "batch_size"):
            _check_at_least_one(name, getattr(self, name))
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ParameterError(f"learning_rate={self.learning_rate} must be positive")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ParameterError(f"class_weights={self.class_weights!r} must be one of {', '.join(CLASS_WEIGHTS)}")
        for name in ("loader_workers", "devices"):
            _check_at_least_one(name, getattr(self, name))
        check_stop_rules(self.target_accuracy, self.target_loss, self.patience)

    def resolved(self) -> TrainConfig:
        """The same settings with the model's default batch size and learning rate filled in."""
        preset = PRESETS[self.model]
        return replace(
            self,
            batch_size=self.batch_size or preset.batch_size,
            learning_rate=self.learning_rate or preset.learning_rate,
        )

    def run_settings(self) -> dict:
        """The settings a resumed run must share with the run it continues."""
        settings = asdict(self.resolved())
        del settings["epochs"], settings["loader_workers"], settings["devices"]
        return settings

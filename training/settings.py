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

#: What the best epoch is judged by, as Keras's ``monitor``: the lowest validation loss, or the highest validation
#: accuracy (ties broken by the lower validation loss).
MONITORS = ("val_loss", "val_accuracy")
#: Which epoch's weights the model folder keeps: the best by the monitored metric, or the last one trained.
KEEP_RULES = ("best", "last")
#: What a new run monitors and keeps unless told otherwise: the Keras convention. The loss is the smooth measure:
#: on a small validation set the accuracy moves in steps of one song's slices, and patience counted on it stops
#: runs whose loss still falls. When another epoch had a better accuracy, the run says so (see
#: :func:`genreslice.training.checkpoints.accuracy_hint`).
NEW_RUN_CHOICES = {"monitor": "val_loss", "keep": "best"}
#: What a run recorded before ``monitor`` and ``keep`` existed did, and does when continued.
EARLIER_RUN_CHOICES = {"monitor": "val_loss", "keep": "best"}


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
        Epochs without a better ``monitor`` value before stopping; 0 disables.
    monitor : str or None
        ``val_loss`` or ``val_accuracy``: what makes an epoch the best (see :data:`MONITORS`). None: the value a
        continued run recorded, or ``val_loss`` for a new run (see :meth:`for_run`).
    keep : str or None
        ``best``: the final model has the best epoch's weights; ``last``: the last epoch's. None: as ``monitor``.
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
    monitor: str | None = None
    keep: str | None = None
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
        if self.monitor is not None and self.monitor not in MONITORS:
            raise ParameterError(f"monitor={self.monitor!r} must be one of {', '.join(MONITORS)}")
        if self.keep is not None and self.keep not in KEEP_RULES:
            raise ParameterError(f"keep={self.keep!r} must be one of {', '.join(KEEP_RULES)}")
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

    def for_run(self, recorded: dict | None) -> TrainConfig:
        """The same settings with ``monitor`` and ``keep``, where None, taken from the run being continued.

        Parameters
        ----------
        recorded : dict or None
            The ``settings`` a continued run recorded in its ``state.json``; None for a new run, which gets
            :data:`NEW_RUN_CHOICES`. A run recorded without them (an earlier version) gets
            :data:`EARLIER_RUN_CHOICES`, what it did then.
        """
        choices = NEW_RUN_CHOICES if recorded is None else recorded_choices(recorded)
        return replace(self, monitor=self.monitor or choices["monitor"], keep=self.keep or choices["keep"])

    def run_settings(self) -> dict:
        """The settings a resumed run must share with the run it continues (``monitor`` and ``keep`` left None
        are those of a new run)."""
        settings = asdict(self.resolved().for_run(None) if self.monitor is None or self.keep is None
                          else self.resolved())
        del settings["epochs"], settings["loader_workers"], settings["devices"]
        return settings


def recorded_choices(settings) -> dict:
    """``monitor`` and ``keep`` of a run's recorded settings; :data:`EARLIER_RUN_CHOICES` where not recorded."""
    settings = settings if isinstance(settings, dict) else {}
    return {key: settings.get(key) or default for key, default in EARLIER_RUN_CHOICES.items()}

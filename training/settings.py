"""Training settings, importable without TensorFlow (the command line parses options before loading it)."""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

from genreslice.errors import ParameterError
from genreslice.training.models import PRESETS

#: The preset a new run trains when none is named: the CRNN, best of the presets on ``make bench-models``'s
#: comparison (README, "Which representation and model") and a few minutes of training on a CPU.
DEFAULT_MODEL = "crnn"
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
#: accuracy (ties broken by the lower validation loss), or (multi-label data sets) the highest validation macro
#: ROC-AUC over the slices (the same tie rule).
MONITORS = ("val_loss", "val_accuracy", "val_roc_auc")
#: What a new run on a multi-label data set monitors unless told otherwise: the score tagging is judged by.
MULTILABEL_MONITOR = "val_roc_auc"
#: Which epoch's weights the model folder keeps: the best by the monitored metric, or the last one trained.
KEEP_RULES = ("best", "last")
#: What a new run monitors and keeps unless told otherwise: the Keras convention. The loss is the smooth measure:
#: on a small validation set the accuracy moves in steps of one song's slices, and patience counted on it stops
#: runs whose loss still falls. When another epoch had a better accuracy, the run says so (see
#: :func:`genreslice.training.checkpoints.accuracy_hint`).
NEW_RUN_CHOICES = {"monitor": "val_loss", "keep": "best"}
#: What a run recorded before ``monitor`` and ``keep`` existed did, and does when continued.
EARLIER_RUN_CHOICES = {"monitor": "val_loss", "keep": "best"}

#: How the learning rate changes over a run: ``constant``; ``plateau`` halves it when the monitored metric has not
#: improved for 2 epochs (down to 1e-6); ``cosine`` decays it along a half cosine to 0 at the run's last step.
LR_SCHEDULES = ("constant", "plateau", "cosine")
#: On-the-fly changes of the training slices (never of the validation, test or predicted ones), in the order they
#: are applied: ``offset`` crops the slice at a random column offset from it and its neighbour in the track;
#: ``gain`` adds a random offset in gray levels (a gain in dB); ``specaugment`` zeroes random bands of rows and
#: columns (see :mod:`genreslice.training.data_source`).
AUGMENTATIONS = ("offset", "gain", "specaugment")
#: The training options added with the model presets, and their values when not given. A run's settings record
#: them only where they differ from these, so a run with the defaults records what earlier versions did, and a
#: run recorded before they existed continues with these (see :func:`recorded_settings`).
OPTION_DEFAULTS = {"l2": 0.0, "lr_schedule": "constant", "width": 1.0, "augment": []}


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


def augment_names(augment: str | Sequence[str] | None) -> tuple[str, ...]:
    """The augmentations of ``augment`` in the order they are applied (:data:`AUGMENTATIONS`), without repeats.

    Parameters
    ----------
    augment : str or sequence of str or None
        Names, or a comma-separated list of them (``"specaugment,gain"``); ``"none"``, an empty string or list,
        or None mean no augmentation.

    Raises
    ------
    ParameterError
        A name that is not one of :data:`AUGMENTATIONS`, or ``none`` listed with others.
    """
    if augment is None:
        return ()
    names = [name.strip().lower() for name in (augment.split(",") if isinstance(augment, str) else augment)]
    names = [name for name in names if name]
    if "none" in names:
        if len(names) > 1:
            raise ParameterError(f"augment={augment!r}: 'none' cannot be listed with other augmentations")
        return ()
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ParameterError(f"augment={augment!r}: {', '.join(map(repr, unknown))} is not one of "
                             f"{', '.join(AUGMENTATIONS)} (or none)")
    return tuple(name for name in AUGMENTATIONS if name in names)


def _check_at_least_one(name: str, value: int | None) -> None:
    """Raise ParameterError unless ``value`` (None: not set) is at least 1."""
    if value is not None and value < 1:
        raise ParameterError(f"{name}={value} must be at least 1")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Everything except ``epochs``, ``loader_workers`` and ``devices`` must stay the same for a run to be resumed:
    a run continued with another ``l2``, ``lr_schedule``, ``width`` or ``augment`` is refused, naming it.

    Attributes
    ----------
    model : str or None
        A name in :data:`~genreslice.training.models.PRESETS`. None: the model the run being continued recorded,
        or :data:`DEFAULT_MODEL` for a new run (see :meth:`for_folder`).
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
        ``val_loss``, ``val_accuracy`` or ``val_roc_auc`` (multi-label): what makes an epoch the best (see
        :data:`MONITORS`). None: the value a continued run recorded, or ``val_loss`` for a new run
        (``val_roc_auc`` on a multi-label data set; see :meth:`for_run`).
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
    l2 : float
        Factor of an L2 penalty on the kernels of every convolution, dense and recurrent layer of the network;
        0 (the default) adds none.
    lr_schedule : str
        One of :data:`LR_SCHEDULES`. ``plateau`` halves the rate after 2 epochs without a better ``monitor``
        value (not below 1e-6); a resumed run keeps the rate it reached (in the optimizer's saved state) and counts
        the epochs without improvement again from its history. ``cosine`` decays the rate from ``learning_rate``
        to 0 over ``epochs`` times the batches of an epoch, as a function of the optimizer's step count, so a
        resumed run continues the same curve; a run continued with a higher ``epochs`` stretches the curve to the
        new end from the step reached (the rate then jumps to the stretched curve's value).
    width : float
        Multiplies the filters of every convolution and the units of every recurrent layer:
        ``max(1, round(n * width))``; 1 is the network as published.
    augment : tuple of str
        Augmentations of the training slices, of :data:`AUGMENTATIONS` (a comma-separated string is accepted);
        empty (the default) for none. Seeded by ``seed`` and the epoch, so a resumed run sees the same slices.
    """

    model: str | None = None
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
    l2: float = 0.0
    lr_schedule: str = "constant"
    width: float = 1.0
    augment: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model is not None and self.model not in PRESETS:
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
        if not (isinstance(self.l2, (int, float)) and math.isfinite(self.l2) and self.l2 >= 0):
            raise ParameterError(f"l2={self.l2!r} must be a number, 0 or more")
        if not (isinstance(self.width, (int, float)) and math.isfinite(self.width) and self.width > 0):
            raise ParameterError(f"width={self.width!r} must be a positive number")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ParameterError(f"lr_schedule={self.lr_schedule!r} must be one of {', '.join(LR_SCHEDULES)}")
        object.__setattr__(self, "l2", float(self.l2))
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "augment", augment_names(self.augment))

    def for_folder(self, recorded_model: str | None) -> TrainConfig:
        """The same settings with ``model``, where None, the one the run in the model folder recorded
        (``recorded_model``; None or not a preset: :data:`DEFAULT_MODEL`)."""
        if self.model is not None:
            return self
        known = isinstance(recorded_model, str) and recorded_model in PRESETS
        return replace(self, model=recorded_model if known else DEFAULT_MODEL)

    def resolved(self) -> TrainConfig:
        """The same settings with the model (None: :data:`DEFAULT_MODEL`) and its default batch size and learning
        rate filled in."""
        model = self.model or DEFAULT_MODEL
        preset = PRESETS[model]
        return replace(
            self,
            model=model,
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
        are those of a new run), as ``checkpoint/state.json`` and ``model.json`` record them: the options of
        :data:`OPTION_DEFAULTS` only where they differ from their defaults (``augment`` as a list)."""
        settings = asdict(self.resolved().for_run(None) if self.monitor is None or self.keep is None
                          else self.resolved())
        del settings["epochs"], settings["loader_workers"], settings["devices"]
        settings["augment"] = list(settings["augment"])
        for key, default in OPTION_DEFAULTS.items():
            if settings[key] == default:
                del settings[key]
        return settings


def recorded_choices(settings) -> dict:
    """``monitor`` and ``keep`` of a run's recorded settings; :data:`EARLIER_RUN_CHOICES` where not recorded."""
    settings = settings if isinstance(settings, dict) else {}
    return {key: settings.get(key) or default for key, default in EARLIER_RUN_CHOICES.items()}


def recorded_settings(settings) -> dict:
    """A run's recorded settings (``state.json``'s ``settings``, ``model.json``'s ``training``) in full: the
    options of :data:`OPTION_DEFAULTS` that it does not record have their defaults, and ``monitor`` and ``keep``
    are as :func:`recorded_choices` says. Not a dict (a damaged record): the defaults alone."""
    settings = settings if isinstance(settings, dict) else {}
    return {**OPTION_DEFAULTS, **settings, **recorded_choices(settings)}

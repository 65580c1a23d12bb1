"""Keras callbacks of a training run, one job each (as Keras splits its own): the early-stop rule, the per-epoch
history, the checkpoint that makes runs resumable, ``history.csv``, ``curves.png`` and progress reports.

:func:`epoch_callbacks` lists them in the order their files must be written: an epoch's model file and
``checkpoint/state.json`` (the commit) first, then the files derived from the committed history, so a crash
between two writes loses nothing a re-run cannot rebuild.
"""
from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from genreslice.errors import ParameterError
from genreslice.training.checkpoints import (
    best_metrics,
    copy_atomic,
    epoch_file,
    kept_epoch,
    kept_file,
    remove_checkpoints,
    save_model_atomic,
    sha256,
    write_state,
)
from genreslice.training.model_dir import (
    CHECKPOINT_DIR,
    CURVES_PNG,
    HISTORY_COLUMNS,
    TAGGING_COLUMNS,
    HISTORY_CSV,
    LOG_DIR,
    MODEL_FILE,
    MODEL_FORMAT_VERSION,
    write_record,
    writing,
)
from genreslice.training.plots import plot_training_curves
from genreslice.training.settings import MONITORS, STOP_DIVERGED, STOP_PATIENCE, STOP_TARGET, check_stop_rules
from genreslice.training.tf_modules import keras

logger = logging.getLogger(__name__)


class GoalEarlyStopping(keras.callbacks.Callback):
    """Stop when validation results are good enough, or when the monitored metric stops improving.

    Two rules, checked after every epoch (epochs count from 1 in messages):

    * **target** (the predecessor's rule): validation accuracy >= ``target_accuracy`` *and* validation loss
      <= ``target_loss``.
    * **patience**: the ``monitor`` metric has not improved on its best for ``patience`` epochs.

    The best epoch is the one with the lowest validation loss (``monitor="val_loss"``, the Keras convention), or
    the highest validation accuracy (``monitor="val_accuracy"``), an equal accuracy with a lower validation loss
    counting as better: on a small validation set accuracies tie often, and the lower loss is the more confident
    right answer.

    A validation loss that is NaN or infinite stops training at once (``diverged``): no later epoch can recover.

    With ``restore_best_weights``, the weights of the best epoch are kept in memory and restored when training
    ends (by either rule or by running out of epochs), so the model that leaves ``fit`` is the best one seen.

    Parameters
    ----------
    target_accuracy : float or None
        Validation accuracy to reach, in ``[0, 1]``; None disables the target rule.
    target_loss : float or None
        Validation loss to get under; None means any loss (only accuracy counts).
    patience : int
        Epochs without improvement before stopping; 0 disables the patience rule.
    monitor : str
        ``"val_loss"`` or ``"val_accuracy"``: what makes an epoch the best.
    min_delta : float
        Smallest change of the monitored metric that counts as an improvement.
    restore_best_weights : bool
        Restore the best epoch's weights at the end of training.
    """

    def __init__(
        self,
        *,
        target_accuracy: float | None = 0.95,
        target_loss: float | None = 0.2,
        patience: int = 5,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ) -> None:
        super().__init__()
        check_stop_rules(target_accuracy, target_loss, patience)
        if monitor not in MONITORS:
            raise ParameterError(f"monitor={monitor!r} must be one of {', '.join(MONITORS)}")
        if min_delta < 0:
            raise ParameterError(f"min_delta={min_delta} must be 0 or more")
        self.target_accuracy = target_accuracy
        self.target_loss = target_loss
        self.patience = int(patience)
        self.monitor = monitor
        #: The score a monitor of the highest value compares (ties broken by the loss); with ``val_loss``, the
        #: accuracy the target rule reads.
        self.score_key = "val_accuracy" if monitor == "val_loss" else monitor
        self.min_delta = float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.best_loss = math.inf
        self.best_accuracy = -math.inf
        self.best_epoch: int | None = None  # 0-based, like Keras's epoch argument
        self.wait = 0
        self.best_weights: list | None = None
        self.stop_reason: str | None = None
        self.stopped_epoch: int | None = None
        self.message = ""

    # The state a resumed run needs, apart from the best weights (kept on disk as the best checkpoint).
    def get_state(self) -> dict:
        return {
            "monitor": self.monitor,
            "best_loss": None if math.isinf(self.best_loss) else self.best_loss,
            "best_accuracy": None if math.isinf(self.best_accuracy) else self.best_accuracy,
            "best_epoch": self.best_epoch,
            "wait": self.wait,
            "stop_reason": self.stop_reason,
            "stopped_epoch": self.stopped_epoch,
            "message": self.message,
        }

    def set_state(self, state: dict, best_weights: list | None = None) -> None:
        """Take a state from :meth:`get_state` (one recorded by an earlier version has no ``best_accuracy``: it
        monitored the loss). The monitor is the callback's own; a state of another monitor is refused."""
        recorded = state.get("monitor", "val_loss") if state else self.monitor
        if recorded != self.monitor:
            raise ValueError(f"the state is of monitor={recorded!r}, the rule's is {self.monitor!r}. "
                             f"Received: {state!r}")
        self.best_loss = math.inf if state.get("best_loss") is None else float(state["best_loss"])
        self.best_accuracy = -math.inf if state.get("best_accuracy") is None else float(state["best_accuracy"])
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.stop_reason = state.get("stop_reason")
        self.stopped_epoch = state.get("stopped_epoch")
        self.message = state.get("message", "")
        self.best_weights = best_weights

    def replay(self, history: Sequence[Mapping]) -> None:
        """Set the rule's state to what it was after the epochs of ``history``, as training them left it.

        For a run resumed from an epoch whose recorded state is missing, or from an earlier epoch than it last
        committed (a damaged checkpoint). Call it before training, while the callback has no model: the
        best weights are not known here and are left None.

        Parameters
        ----------
        history : sequence of mapping
            One row per epoch from the first, each with ``val_loss`` and ``val_accuracy``.
        """
        if self.model is not None:
            raise ValueError("replay() must be called before the callback is given a model. "
                             f"Received: a callback set to {self.model.name!r}")
        self.set_state({})
        for epoch, row in enumerate(history):
            self.on_epoch_end(epoch, {key: row.get(key) for key in {"val_loss", "val_accuracy", self.score_key}})

    @property
    def best_value(self) -> float:
        """The monitored metric's best value so far (inf or -inf before the first finite epoch)."""
        return self.best_loss if self.monitor == "val_loss" else self.best_accuracy

    def improved(self, val_loss: float, val_accuracy: float) -> bool:
        """Whether an epoch with these validation results is better than the best so far (``val_accuracy``: the
        value of :attr:`score_key`)."""
        if self.monitor == "val_loss":
            return val_loss < self.best_loss - self.min_delta
        if self.best_epoch is None or val_accuracy > self.best_accuracy + self.min_delta:
            return True
        return val_accuracy == self.best_accuracy and val_loss < self.best_loss

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if any(logs.get(key) is None for key in ("val_loss", "val_accuracy", self.score_key)):
            raise ValueError(
                "GoalEarlyStopping needs validation results: fit() must get validation_data and the "
                f"'accuracy' metric (and {self.score_key!r} for that monitor). Received logs with keys: "
                f"{sorted(logs)}"
            )
        val_loss = float(logs["val_loss"])
        val_accuracy = float(logs["val_accuracy"])
        score = float(logs[self.score_key])
        if not math.isfinite(val_loss):
            self._stop(epoch, STOP_DIVERGED, f"validation loss is {val_loss}: training diverged (try a lower "
                                             "--learning-rate)")
            return
        if self.improved(val_loss, score):
            self.best_loss, self.best_accuracy = val_loss, score
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights and self.model is not None:
                self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
        if self.target_reached(val_accuracy, val_loss):
            loss_rule = "" if self.target_loss is None else f" and loss {val_loss:.4f} <= {self.target_loss}"
            self._stop(
                epoch,
                STOP_TARGET,
                f"validation accuracy {val_accuracy:.4f} >= {self.target_accuracy}{loss_rule}",
            )
        elif self.patience and self.wait >= self.patience:
            metric = {"val_loss": "loss", "val_accuracy": "accuracy"}.get(self.monitor, "ROC-AUC")
            self._stop(
                epoch,
                STOP_PATIENCE,
                f"validation {metric} has not improved for {self.wait} epochs (best {self.best_value:.4f} "
                f"at epoch {self.best_epoch + 1})",
            )

    def target_reached(self, val_accuracy: float, val_loss: float) -> bool:
        """Whether one epoch's validation results meet the target rule."""
        if self.target_accuracy is None or val_accuracy < self.target_accuracy:
            return False
        return self.target_loss is None or val_loss <= self.target_loss

    def _stop(self, epoch: int, reason: str, why: str) -> None:
        self.stop_reason = reason
        self.stopped_epoch = epoch
        self.message = f"stopped after epoch {epoch + 1} by the {reason} rule: {why}"
        logger.info("%s", self.message)
        if self.model is not None:
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch is not None \
                and self.model is not None:
            self.model.set_weights(self.best_weights)
            logger.info("restored the weights of epoch %d (best %s %.4f)", self.best_epoch + 1, self.monitor,
                        self.best_value)


class PlateauSchedule(keras.callbacks.Callback):
    """Lower the learning rate when the monitored metric stops improving (``--lr-schedule plateau``), as Keras's
    ``ReduceLROnPlateau`` does, with a state that a resumed run rebuilds from its history.

    After every epoch: an epoch better than the best so far (a lower ``val_loss``, or a higher ``val_accuracy``)
    resets the count; otherwise the count grows, and when it reaches ``patience`` the optimizer's rate is
    multiplied by ``factor`` (not below ``min_rate``) and the count starts again. The rate itself lives in the
    optimizer, whose state each epoch's checkpoint saves: a resumed run keeps the rate it reached and
    :meth:`replay` recounts the epochs without improvement from its history. Place it after the callback that
    records the epoch's rate (:class:`EpochHistory`) and before the checkpoint: the history shows the rate the
    epoch trained with, the checkpoint the rate the next epoch starts from.

    Parameters
    ----------
    monitor : str
        ``"val_loss"`` or ``"val_accuracy"``.
    factor : float
        What the rate is multiplied by, between 0 and 1.
    patience : int
        Epochs without improvement before the rate is lowered; at least 1.
    min_rate : float
        The lowest rate it lowers to.
    """

    def __init__(self, *, monitor: str = "val_loss", factor: float = 0.5, patience: int = 2,
                 min_rate: float = 1e-6) -> None:
        super().__init__()
        if monitor not in MONITORS:
            raise ParameterError(f"monitor={monitor!r} must be one of {', '.join(MONITORS)}")
        if not 0 < factor < 1:
            raise ParameterError(f"factor={factor} must be between 0 and 1")
        if patience < 1:
            raise ParameterError(f"patience={patience} must be at least 1")
        self.monitor, self.factor, self.patience, self.min_rate = monitor, float(factor), int(patience), min_rate
        self.best: float | None = None
        self.wait = 0

    def count(self, value: float) -> bool:
        """Count one epoch whose monitored metric is ``value``; True when the rate is to be lowered now."""
        if math.isfinite(value) and (self.best is None
                                     or (value < self.best if self.monitor == "val_loss" else value > self.best)):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait < self.patience:
            return False
        self.wait = 0
        return True

    def replay(self, history: Sequence[Mapping]) -> None:
        """Set the count to what the epochs of ``history`` (rows with the monitored metric) left it at."""
        self.best, self.wait = None, 0
        for row in history:
            self.count(float(row[self.monitor]))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"PlateauSchedule needs {self.monitor} in the epoch's logs. Received logs with keys: "
                             f"{sorted(logs)}")
        if self.count(float(logs[self.monitor])):
            rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            lowered = max(rate * self.factor, self.min_rate)
            if lowered < rate:
                self.model.optimizer.learning_rate = lowered
                logger.info("epoch %d: %s has not improved for %d epochs; learning rate %.3g -> %.3g", epoch + 1,
                            self.monitor, self.patience, rate, lowered)


def peak_memory_mib() -> float | None:
    """The peak resident memory of this process so far, in MiB; None where the system does not say (Windows)."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class EpochHistory(keras.callbacks.Callback):
    """Appends one row per completed epoch to ``history``, as Keras's ``History`` does, with the learning rate,
    the epoch's seconds and the training process's peak resident memory so far (``peak_memory_mib``, kept in the
    run's state and ``model.json``, not in ``history.csv``).

    Parameters
    ----------
    history : list of dict
        The run's history so far (a resumed run's committed rows); rows have the keys of
        :data:`~genreslice.training.model_dir.HISTORY_COLUMNS` and ``peak_memory_mib``, ``None`` where Keras (or
        the system) reported nothing.
    """

    def __init__(self, history: list[dict]) -> None:
        super().__init__()
        self.history = history
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rate = logs.get("learning_rate")
        if rate is None:
            with contextlib.suppress(Exception):
                rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1}
        for key in HISTORY_COLUMNS[1:5]:
            row[key] = float(logs[key]) if key in logs else None
        for key in TAGGING_COLUMNS:  # recorded only by multi-label runs, whose model reports them
            if key in logs:
                row[key] = float(logs[key])
        row["learning_rate"] = None if rate is None else float(rate)
        row["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        row["peak_memory_mib"] = peak_memory_mib()
        self.history.append(row)


class EpochCheckpoint(keras.callbacks.Callback):
    """Commits every completed epoch, as Keras's ``BackupAndRestore`` does, so that a re-run continues after it.

    The epoch's model file is saved to ``checkpoint/``, then ``checkpoint/state.json`` is rewritten: that is the
    commit. Then the epoch files the state no longer names are removed, and the epoch the run keeps (a new best
    epoch; every epoch with ``keep="last"``) is copied to ``model.keras``.

    Parameters
    ----------
    model_dir : Path
        The model folder.
    history : list of dict
        The run's history, with this epoch's row already appended (by :class:`EpochHistory`).
    stopper : GoalEarlyStopping
        The rule that knows the best epoch and why training stopped; it must see each epoch first.
    settings : dict
        The run settings a resumed run must share (``TrainConfig.run_settings()``), ``keep`` among them.
    fingerprint : str
        The data set's fingerprint.
    state : dict or None
        The committed state of the run being continued; None for a new run.

    Attributes
    ----------
    state : dict
        The committed state; replaced at every epoch's commit.
    """

    def __init__(self, model_dir: Path, *, history: list[dict], stopper: GoalEarlyStopping, settings: dict,
                 fingerprint: str, state: dict | None = None) -> None:
        super().__init__()
        self.model_dir = model_dir
        self.history = history
        self.stopper = stopper
        self.settings = settings
        self.fingerprint = fingerprint
        self.state = state or {}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        checkpoint_dir = self.model_dir / CHECKPOINT_DIR
        name = epoch_file(epoch + 1)
        save_model_atomic(self.model, checkpoint_dir / name)
        self.state = self._state_after(epoch, name)
        write_state(self.model_dir, self.state)
        # Derived files: regenerated from the committed state, so a crash here loses nothing.
        remove_checkpoints(checkpoint_dir, keep=(name, self.state["best"]))
        if kept_file(self.state) == name:
            copy_atomic(checkpoint_dir / name, self.model_dir / MODEL_FILE)

    def _state_after(self, epoch: int, name: str) -> dict:
        """The state to commit once epoch ``epoch`` (from 0) is saved as ``name``."""
        best_epoch = self.stopper.best_epoch
        best_name = epoch_file(best_epoch + 1) if best_epoch is not None else name
        # Of the files the state names: the best epoch's was recorded when it was written.
        digests = {best_name: self.state.get("sha256", {}).get(best_name),
                   name: sha256(self.model_dir / CHECKPOINT_DIR / name)}
        state = {
            "format_version": MODEL_FORMAT_VERSION,
            "epochs_done": epoch + 1,
            "last": name,
            "best": best_name,
            "best_epoch": None if best_epoch is None else best_epoch + 1,
            "history": self.history,
            "early_stop": self.stopper.get_state(),
            "stop_reason": self.stopper.stop_reason,
            "stop_message": self.stopper.message if self.stopper.stop_reason else "",
            "settings": self.settings,
            "fingerprint": self.fingerprint,
            "sha256": {file: digest for file, digest in digests.items() if digest},
        }
        state["kept_epoch"] = kept_epoch(state)
        state["metrics"] = best_metrics(self.history, state["kept_epoch"] - 1)
        return state


def history_csv_text(history: Sequence[dict]) -> str:
    """``history.csv``: a header of :data:`~genreslice.training.model_dir.HISTORY_COLUMNS` (and, for a multi-label
    run, :data:`~genreslice.training.model_dir.TAGGING_COLUMNS`), a row per epoch."""

    def cell(value) -> str:
        return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)

    columns = HISTORY_COLUMNS + tuple(key for key in TAGGING_COLUMNS if any(key in row for row in history))
    lines = [",".join(columns)]
    lines.extend(",".join(cell(row.get(key)) for key in columns) for row in history)
    return "\n".join(lines) + "\n"


def write_history_csv(path: Path, history: Sequence[dict]) -> None:
    """Write ``history.csv`` atomically; a failure is a ``ModelDirError``."""
    write_record(path, history_csv_text(history))


def write_training_curves(path: Path, history: Sequence[dict]) -> None:
    """Draw ``curves.png`` atomically; a failure is a ``ModelDirError``."""
    with writing(path):
        plot_training_curves(history, path)


class _FileFromHistory(keras.callbacks.Callback):
    """Rewrites a file made from the run's history after every epoch, so that it always shows the committed epochs,
    even after a crash between the commit and the rewrite. Subclasses say how the file is written."""

    def __init__(self, path: Path, *, history: list[dict]) -> None:
        super().__init__()
        self.path = path
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.write(self.path, self.history)

    @staticmethod
    def write(path: Path, history: Sequence[dict]) -> None:
        raise NotImplementedError


class HistoryCSV(_FileFromHistory):
    """``history.csv``, one row per epoch (as Keras's ``CSVLogger``, but rewritten whole from the history)."""

    write = staticmethod(write_history_csv)


class TrainingCurves(_FileFromHistory):
    """``curves.png``: loss and accuracy per epoch, training and validation."""

    write = staticmethod(write_training_curves)


class TrainObserver:
    """Hooks for progress display; the command line draws bars with them. Every method is optional."""

    def on_run_start(self, summary: dict) -> None:
        """``summary`` has keys model, n_train, n_validation, batches, first_epoch, epochs, resumed."""

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        """``epoch`` is 1-based."""

    def on_batch_end(self, batch: int, logs: dict) -> None:
        """``batch`` is 0-based within the epoch; ``logs`` has running loss and accuracy."""

    def on_epoch_end(self, row: dict) -> None:
        """``row`` is the epoch's history row."""


class ProgressReport(keras.callbacks.Callback):
    """Tells a :class:`TrainObserver` of each epoch and batch; of an epoch's end once its files are written.

    Parameters
    ----------
    observer : TrainObserver
        Receives the events.
    history : list of dict
        The run's history, whose last row is the epoch that ended.
    n_batches : int
        Batches per epoch.
    """

    def __init__(self, observer: TrainObserver, *, history: list[dict], n_batches: int) -> None:
        super().__init__()
        self.observer = observer
        self.history = history
        self.n_batches = n_batches

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.observer.on_epoch_start(epoch + 1, self.n_batches)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.observer.on_batch_end(batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.observer.on_epoch_end(self.history[-1])


def epoch_callbacks(model_dir: Path, *, stopper: GoalEarlyStopping, checkpoint: EpochCheckpoint,
                    observer: TrainObserver, n_batches: int,
                    schedule: PlateauSchedule | None = None) -> list[keras.callbacks.Callback]:
    """The callbacks of a run, in the order Keras must call them after each epoch.

    The stop rule first (the checkpoint records its verdict); the history row before the files made from it;
    the learning-rate ``schedule`` (if any) after the row records the epoch's rate and before the commit saves
    the optimizer; the commit (``checkpoint``) before the derived files; the observer once the epoch is on disk;
    TensorBoard last.
    """
    history = checkpoint.history
    return [
        stopper,
        EpochHistory(history),
        *([schedule] if schedule is not None else []),
        checkpoint,
        HistoryCSV(model_dir / HISTORY_CSV, history=history),
        TrainingCurves(model_dir / CURVES_PNG, history=history),
        ProgressReport(observer, history=history, n_batches=n_batches),
        keras.callbacks.TensorBoard(str(model_dir / LOG_DIR)),
    ]

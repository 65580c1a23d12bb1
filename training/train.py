"""``genreslice train``: fit a model on a built data set, resumably, and write its artifacts.

A model folder holds::

    model.keras      the best model so far (lowest validation loss); the final model when training ends
    model.json       classes in output order, the data set's spectrogram settings and fingerprint,
                     the training settings, status and final metrics
    history.csv      one row per completed epoch
    curves.png       loss and accuracy per epoch, training and validation
    logs/            TensorBoard logs (``tensorboard --logdir MODEL_DIR/logs``)
    checkpoint/      state.json plus the last and best epochs as .keras files; what a re-run resumes from
    lock             held while a run is training in the folder

Each completed epoch is committed by rewriting ``checkpoint/state.json`` atomically after the epoch's
model files are on disk, so an interrupted run (Ctrl-C, a crash, a killed job, a full disk) resumes from its last
completed epoch when the same command is run again. ``state.json`` records the SHA-256 of the epoch files it
names: a file damaged on disk is replaced by an intact copy of the same epoch, or the run goes back to its best
epoch (see :func:`_restore`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genreslice.pipeline import layout
from genreslice.training.callbacks import STOP_MAX_EPOCHS, STOP_REASONS, GoalEarlyStopping
from genreslice.training.data_source import SliceDataSource, explain_slice_error
from genreslice.training.dataset import DatasetInfo, load_dataset_info, reading_dataset
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.devices import distribution_strategy, training_devices
from genreslice.training.models import build_model
from genreslice.training.plots import plot_training_curves
from genreslice.training.settings import CLASS_WEIGHTS, TrainConfig

logger = logging.getLogger(__name__)

MODEL_FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
HISTORY_CSV = "history.csv"
CURVES_PNG = "curves.png"
LOG_DIR = "logs"
CHECKPOINT_DIR = "checkpoint"
STATE_JSON = "state.json"
LOCK_FILE = "lock"
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
_OWN_NAMES = {MODEL_FILE, MODEL_JSON, HISTORY_CSV, CURVES_PNG, LOG_DIR, CHECKPOINT_DIR, LOCK_FILE}


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


@dataclass
class TrainResult:
    """What a call to :func:`train_model` did."""

    model_dir: Path
    status: str  # "finished" or "already_finished"
    epochs_run: int
    epochs_this_call: int
    resumed_from: int
    stop_reason: str
    stop_message: str
    best_epoch: int | None
    metrics: dict
    history: list[dict]
    notes: tuple[str, ...] = ()  # damaged files this call found and what it did about them (also logged)


def train_model(
    dataset_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    observer: TrainObserver | None = None,
) -> TrainResult:
    """Train a model on a built data set, or continue an interrupted run in ``model_dir``.

    Parameters
    ----------
    dataset_dir : str or os.PathLike
        Output folder of ``genreslice build`` (``dataset.json``, ``slices.csv``, ``slices/``).
    model_dir : str or os.PathLike
        Where the model and its records go; created if missing. If it holds an unfinished run of the same
        data set and settings, training continues from that run's last completed epoch.
    config : TrainConfig, optional
        Training settings; defaults to ``TrainConfig()``.
    observer : TrainObserver, optional
        Receives progress events.

    Returns
    -------
    TrainResult
        Its ``notes`` say which damaged checkpoint files were replaced, or that the run went back to its best
        epoch because its last one was damaged.

    Raises
    ------
    DatasetError
        No ``dataset.json``, fewer than two classes, an empty training or validation split, a build is
        changing the data set, or a slice cannot be read (training stops; the message says how to repair it).
    ModelDirError
        ``model_dir`` holds a model for other classes or spectrogram settings, a run with other settings or
        of another version of the data set, files that are not a model's, a damaged ``checkpoint/state.json``,
        no intact copy of the epoch to continue from, or another run is training in it: nothing in ``model_dir``
        is changed. Or a file cannot be written (a full disk): the epochs committed so far are kept.
    """
    config = (config or TrainConfig()).resolved()
    observer = observer or TrainObserver()
    # Held to the end, before anything is read: a build must not remove or re-render slices meanwhile.
    with reading_dataset(dataset_dir):
        info = load_dataset_info(dataset_dir)
        if len(info.classes) < 2:
            raise DatasetError(
                f"{info.root}: a classifier needs at least 2 genres; the data set has {list(info.classes)}"
            )
        devices = training_devices(config.devices)
        # Each device takes batch_size slices of every step.
        common = {"batch_size": config.batch_size * len(devices), "workers": config.loader_workers}
        train_data = SliceDataSource.from_dataset(info, "train", shuffle=True, seed=config.seed, **common)
        val_data = SliceDataSource.from_dataset(info, "validation", shuffle=False, **common)
        out = Path(model_dir)
        _check_model_dir_shape(out)
        _check_recorded_model(out, info)
        _check_resumable(out, _load_state(out), info, config)  # before anything is created in the folder
        with writing(out):
            out.mkdir(parents=True, exist_ok=True)
            (out / CHECKPOINT_DIR).mkdir(exist_ok=True)
        with _locked(out):
            state = _load_state(out)  # again: another run may have finished an epoch meanwhile
            _check_resumable(out, state, info, config)
            _remove_temporary_files(out)
            return _run(out, info, config, state, train_data, val_data, observer, devices)


#: What to do after a failed write of a training run.
_AFTER_FAILED_WRITE = ("Free space on its disk (or fix what the error names), then run the same command again: "
                       "training continues from its last completed epoch")


@contextlib.contextmanager
def writing(path: Path, then: str = _AFTER_FAILED_WRITE) -> Iterator[None]:
    """Turn an :class:`OSError` of the block, which writes ``path``, into a :class:`ModelDirError`.

    The message names the file or folder, the system's reason (``No space left on device``) and ``then``: what
    to do about it.
    """
    try:
        yield
    except OSError as err:
        reason = err.strerror or " ".join(str(err).split())
        raise ModelDirError(f"{path}: cannot be written ({reason}). {then}") from err


def _is_temporary(name: str) -> bool:
    """Names of our half-written files: ``.model.json.xxxx.tmp``, ``.epoch-0003.123.tmp.keras``."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".tmp.keras"))


def _remove_temporary_files(out: Path) -> None:
    """Files a killed run left half-written; nothing refers to them."""
    for folder in (out, out / CHECKPOINT_DIR):
        for path in folder.iterdir():
            if path.is_file() and _is_temporary(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()


def _check_model_dir_shape(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ModelDirError(f"model folder {out} exists and is not a folder")
    if out.is_dir() and not (out / MODEL_JSON).exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_NAMES and not _is_temporary(p.name))
        if foreign:
            raise ModelDirError(
                f"model folder {out} is not empty and holds no genreslice model (it has {', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); choose a new or empty folder"
            )


def read_model_json(model_dir: str | os.PathLike) -> dict:
    """Read a model folder's ``model.json``.

    Raises
    ------
    ModelDirError
        Missing or not a JSON object with a class list.
    """
    path = Path(model_dir) / MODEL_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelDirError(f"{Path(model_dir)}: no {MODEL_JSON}; is this a folder made by 'genreslice train'?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: cannot be read as JSON ({err})") from err
    if not isinstance(record, dict) or not isinstance(record.get("classes"), list):
        raise ModelDirError(f"{path}: no 'classes' list")
    return record


@dataclass(frozen=True)
class TrainedModel:
    """A trained model and what its folder records about it.

    Attributes
    ----------
    model_dir : Path
        The folder ``genreslice train`` wrote.
    record : dict
        ``model.json``.
    classes : tuple of str
        Genre of each output unit, in order.
    model : keras.Model
        The network, loaded for inference only (no optimizer state).
    """

    model_dir: Path
    record: dict
    classes: tuple[str, ...]
    model: keras.Model


def load_trained_model(model_dir: str | os.PathLike) -> TrainedModel:
    """Load ``model.keras`` and ``model.json`` for evaluation or prediction.

    A folder whose run is still training (or was interrupted) holds its best epoch so far; it loads too.

    Raises
    ------
    ModelDirError
        ``model.json`` is missing or damaged, the model file is missing or unreadable, or the network's output
        does not have one unit per recorded class.
    """
    out = Path(model_dir)
    record = read_model_json(out)
    path = out / MODEL_FILE
    if not path.is_file():
        raise ModelDirError(f"{out}: no {path.name}; training has not finished its first epoch")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises ValueError, OSError, zipfile and h5py errors for damaged files
        raise ModelDirError(f"{path}: cannot be loaded as a Keras model ({type(err).__name__}: {err})") from err
    classes = tuple(record["classes"])
    units = model.output_shape[-1] if isinstance(model.output_shape, tuple) else None
    if units != len(classes):
        raise ModelDirError(
            f"{path}: the network has {units} outputs but {MODEL_JSON} names {len(classes)} classes {list(classes)}"
        )
    return TrainedModel(model_dir=out, record=record, classes=classes, model=model)


def unfinished_training_note(record: dict) -> str:
    """A caution for a model whose run has not finished (its weights are the best so far); empty otherwise."""
    if record.get("status") == "finished":
        return ""
    return (f"the model's training is not finished (status {record.get('status')!r}): "
            "its weights are the best so far")


def check_compatible(record: dict, info: DatasetInfo, *, where: str) -> None:
    """Refuse a model whose classes or spectrogram settings differ from the data set's.

    Raises
    ------
    ModelDirError
        The message lists each difference.
    """
    problems = []
    if list(record.get("classes", [])) != list(info.classes):
        problems.append(f"classes: model {record.get('classes')}, data set {list(info.classes)}")
    for key, model_value, data_value in layout.setting_differences(record.get("spectrogram"), info.spectrogram):
        problems.append(f"spectrogram.{key}: model {model_value!r}, data set {data_value!r}")
    if problems:
        raise ModelDirError(
            f"{where} holds a model for another data set ({'; '.join(problems)}); slices made differently "
            "cannot be classified by it. Choose another model folder, or rebuild the data set with the model's settings."
        )


def _check_recorded_model(out: Path, info: DatasetInfo) -> None:
    if (out / MODEL_JSON).exists():
        check_compatible(read_model_json(out), info, where=str(out))


@contextlib.contextmanager
def _locked(out: Path):
    try:
        with layout.exclusive_lock(out / LOCK_FILE):
            yield
    except layout.LockHeldError as err:
        raise ModelDirError(
            f"another training run is using {out} (process {err.holder} holds {err.path}); wait for it or stop it"
        ) from None


def _load_state(out: Path) -> dict | None:
    """The committed state of the run in ``out``; None if no epoch was committed.

    Raises
    ------
    ModelDirError
        ``checkpoint/state.json`` cannot be read, or lacks or mistypes what resuming needs. Its ``early_stop``
        record is not checked here: :func:`_run` recomputes it from the history when it is unusable.
    """
    path = out / CHECKPOINT_DIR / STATE_JSON
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: the run's state cannot be read ({err}); train into a new folder") from err
    problem = _state_problem(state)
    if problem:
        raise ModelDirError(f"{path}: not a usable training state ({problem}); train into a new folder")
    return state


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _state_problem(state) -> str:
    """What makes a loaded ``state.json`` unusable for resuming or finishing a run; empty if nothing."""
    if not isinstance(state, dict):
        return f"a JSON object is expected. Received: {type(state).__name__}"
    if state.get("format_version", MODEL_FORMAT_VERSION) != MODEL_FORMAT_VERSION:
        return (f"format_version={state['format_version']!r} is not {MODEL_FORMAT_VERSION}; another version of "
                "genreslice wrote it")
    done = state.get("epochs_done")
    if not _is_int(done) or done < 1:
        return f"epochs_done={done!r} is not a number of epochs"
    history = state.get("history")
    if not isinstance(history, list) or len(history) != done:
        return f"history must be a list of {done} epochs. Received: {repr(history)[:80]}"
    for number, row in enumerate(history, 1):
        if not isinstance(row, dict) or row.get("epoch") != number or not all(
                _is_number(row.get(key)) for key in ("val_loss", "val_accuracy", "seconds")) or not all(
                row.get(key) is None or _is_number(row[key]) for key in HISTORY_COLUMNS):
            return (f"history row {number} must be epoch {number} with numbers for {', '.join(HISTORY_COLUMNS[1:])}. "
                    f"Received: {repr(row)[:80]}")
    if state.get("last") != _epoch_file(done):
        return f"last={state.get('last')!r} is not {_epoch_file(done)!r}, the file of epoch {done}"
    best_epoch = state.get("best_epoch")
    if best_epoch is not None and not (_is_int(best_epoch) and 1 <= best_epoch <= done):
        return f"best_epoch={best_epoch!r} is not an epoch from 1 to {done}"
    best = _epoch_file(best_epoch) if best_epoch else state["last"]
    if state.get("best") != best:
        return f"best={state.get('best')!r} is not {best!r}, the file of its best epoch"
    if state.get("stop_reason") not in (None, *STOP_REASONS) or not isinstance(state.get("stop_message", ""), str):
        return (f"stop_reason={state.get('stop_reason')!r} must be none or one of {', '.join(STOP_REASONS)}, and "
                "stop_message text")
    if not isinstance(state.get("metrics"), dict):
        return f"metrics={state.get('metrics')!r} is not a JSON object"
    digests = state.get("sha256", {})
    if not isinstance(digests, dict) or not all(isinstance(value, str) for value in digests.values()):
        return f"sha256={repr(digests)[:80]} is not a JSON object of file names and digests"
    return ""


def _early_stop_usable(state: dict) -> bool:
    """Whether ``state``'s record of the early-stop rule can be given back to it (and agrees with the state)."""
    record = state.get("early_stop")
    if not isinstance(record, dict) or not {"best_loss", "best_epoch", "wait"} <= record.keys():
        return False
    best_epoch = None if state["best_epoch"] is None else state["best_epoch"] - 1  # the rule counts from 0
    return ((record["best_epoch"] is None if best_epoch is None else _is_int(record["best_epoch"]))
            and record["best_epoch"] == best_epoch
            and (record["best_loss"] is None or _is_number(record["best_loss"]))
            and _is_int(record["wait"]) and record["wait"] >= 0)


def _check_resumable(out: Path, state: dict | None, info: DatasetInfo, config: TrainConfig) -> None:
    if state is None:
        # A run interrupted in its first epoch leaves model.json saying "training" and nothing else worth
        # keeping; it starts over. A finished model without its state is never trained over.
        if (out / MODEL_JSON).exists() and read_model_json(out).get("status") != "training":
            raise ModelDirError(f"{out} holds a model but no training state to continue; train into a new folder")
        return
    if state.get("fingerprint") != info.fingerprint:
        raise ModelDirError(
            f"{out} holds a run on another version of the data set ({info.root / 'slices.csv'} changed since it "
            "started); train into a new folder"
        )
    differences = list(layout.setting_differences(state.get("settings"), config.run_settings()))
    if differences:
        listed = "; ".join(f"{key}: was {old!r}, now {new!r}" for key, old, new in differences)
        raise ModelDirError(
            f"{out} holds a run with other settings ({listed}). Re-run with the same settings to continue it, "
            "or train into a new folder."
        )


def class_weights_for(counts: np.ndarray, mode: str) -> dict[int, float] | None:
    """Per-class loss weights from the training split's slice counts.

    ``balanced``: ``n / (k * n_c)`` for the ``k`` classes present (mean weight per slice is 1); a class with no
    training slices gets weight 1 (it never occurs in training). ``none``: None.
    """
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"class_weights={mode!r} must be one of {', '.join(CLASS_WEIGHTS)}")
    present = counts > 0
    total, n_present = counts.sum(), int(present.sum())
    return {
        index: float(total / (n_present * count)) if count else 1.0 for index, count in enumerate(counts.tolist())
    }


def _run(
    out: Path,
    info: DatasetInfo,
    config: TrainConfig,
    state: dict | None,
    train_data: SliceDataSource,
    val_data: SliceDataSource,
    observer: TrainObserver,
    devices: list[str],
) -> TrainResult:
    checkpoint_dir = out / CHECKPOINT_DIR
    stopper = GoalEarlyStopping(
        target_accuracy=config.target_accuracy, target_loss=config.target_loss, patience=config.patience
    )
    if state and (state.get("stop_reason") not in (None, STOP_MAX_EPOCHS) or state["epochs_done"] >= config.epochs):
        history, epochs_done = list(state["history"]), state["epochs_done"]
        if read_model_json(out).get("status") != "finished":
            # The last epoch was committed but the run ended before its final files were written.
            counts = train_data.class_counts(len(info.classes))
            recorder = _EpochRecorder(out, info, config, state, history, stopper, train_data, val_data, observer,
                                      counts, devices)
            final_state = recorder.finish()
            return _result(out, "finished", final_state, history, epochs_this_call=0, resumed_from=epochs_done,
                           notes=recorder.notes)
        logger.info("%s: training already finished (%s)", out, state.get("stop_message", ""))
        _remove_checkpoints(checkpoint_dir, keep=_resumable_files(state))  # those an interrupted finish left
        return _result(out, "already_finished", state, history, epochs_this_call=0, resumed_from=epochs_done)

    strategy = distribution_strategy(devices)
    notes: list[str] = []
    if state:
        model, best_weights, restored, notes = _restore(out, state, strategy)
        if restored is not state or not _early_stop_usable(state):
            stopper.replay(restored["history"])
            restored["early_stop"] = stopper.get_state()
            if restored is state:
                notes.append(f"{checkpoint_dir / STATE_JSON}: its early-stop record was missing or damaged; "
                             "recomputed it from the run's history")
            _write_text(checkpoint_dir / STATE_JSON, _state_text(restored))
            _remove_checkpoints(checkpoint_dir, keep=(restored["last"], restored["best"]))
        state = restored
        for note in notes:
            logger.warning("%s", note)
        has_best = state["early_stop"].get("best_epoch") is not None  # None: every val_loss so far was NaN
        stopper.set_state(state["early_stop"], best_weights if has_best else None)
        stopper.stop_reason = None
        logger.info("%s: continuing from epoch %d", out, state["epochs_done"])
    history = list(state["history"]) if state else []
    epochs_done = state["epochs_done"] if state else 0
    keras.utils.set_random_seed(config.seed + epochs_done)
    if not state:
        with strategy.scope():  # variables made in the scope are mirrored on every device
            model = build_model(
                config.model, len(info.classes), slice_size=info.slice_size, learning_rate=config.learning_rate
            )
    train_data.set_epoch(epochs_done)
    counts = train_data.class_counts(len(info.classes))
    recorder = _EpochRecorder(out, info, config, state, history, stopper, train_data, val_data, observer, counts,
                                      devices)
    # Until this run finishes, model.json must not claim an earlier finish (a continued run changes model.keras).
    _write_model_json(out, info, config, recorder.base_record(), status="training")
    observer.on_run_start(
        {
            "model": config.model,
            "n_train": len(train_data.paths),
            "n_validation": len(val_data.paths),
            "batches": len(train_data),
            "first_epoch": epochs_done + 1,
            "epochs": config.epochs,
            "resumed": bool(state),
            "devices": list(devices),
            "batch_size": config.batch_size * len(devices),
        }
    )
    try:
        model.fit(
            train_data,
            validation_data=val_data,
            epochs=config.epochs,
            initial_epoch=epochs_done,
            class_weight=class_weights_for(counts, config.class_weights),
            callbacks=[stopper, recorder, keras.callbacks.TensorBoard(str(out / LOG_DIR))],
            shuffle=False,  # the data source permutes the samples itself, per epoch and seeded
            verbose=0,
        )
    except (DatasetError, tf.errors.OpError) as err:
        # A bad slice: Keras reads the first batches itself, the rest reach us wrapped in TensorFlow's errors.
        explained = explain_slice_error(err, (train_data, val_data), info.root)
        if explained is None:
            raise
        raise DatasetError(
            f"{explained}. Training stopped; it continues from its last completed epoch, kept in {out}"
        ) from err
    final_state = recorder.finish()
    return _result(
        out, "finished", final_state, recorder.history,
        epochs_this_call=final_state["epochs_done"] - epochs_done, resumed_from=epochs_done,
        notes=[*notes, *recorder.notes],
    )


def _result(out: Path, status: str, state: dict, history: list[dict], *, epochs_this_call: int, resumed_from: int,
            notes: Sequence[str] = ()) -> TrainResult:
    return TrainResult(
        model_dir=out,
        status=status,
        epochs_run=int(state["epochs_done"]),
        epochs_this_call=epochs_this_call,
        resumed_from=resumed_from,
        stop_reason=state.get("stop_reason") or STOP_MAX_EPOCHS,
        stop_message=state.get("stop_message", ""),
        best_epoch=state.get("best_epoch"),
        metrics=state.get("metrics", {}),
        history=history,
        notes=tuple(notes),
    )


def _restore(out: Path, state: dict, strategy) -> tuple[keras.Model, list, dict, list[str]]:
    """Load a committed run to continue it: its last epoch, and its best epoch's weights, past damaged files.

    Disk corruption can damage an epoch file during a long run. Each epoch file is checked against the SHA-256
    ``state.json`` recorded when it was written (a state written without one: against Keras's loader only).
    The best epoch has a second copy, ``model.keras``; a damaged file is replaced by an intact copy of the same
    epoch. When the last epoch is damaged and is not the best one, the run goes back to its best epoch: the
    history is cut there, and the caller recomputes the early-stop record for it and commits the state.
    ``model.keras`` is rewritten if it does not hold the best epoch (damaged, or an interrupted run's).

    Returns
    -------
    model : keras.Model
        The epoch to continue from, made in ``strategy``'s scope, with its optimizer state.
    best_weights : list
        The best epoch's weights.
    state : dict
        ``state`` itself, or a new state rewound to the best epoch (not yet committed).
    notes : list of str
        What was damaged and what was done about it; empty when nothing was.

    Raises
    ------
    ModelDirError
        No intact copy of the epoch to continue from, or of the best epoch, is left.
    """
    checkpoint_dir = out / CHECKPOINT_DIR
    last, best = state["last"], state["best"]
    damaged: dict[Path, str] = {}

    def nothing_left() -> ModelDirError:
        listed = "; ".join(f"{path} ({why})" for path, why in damaged.items())
        return ModelDirError(f"{out}: no intact copy of the epochs the run could continue from is left: {listed}. "
                             "Train into a new folder")

    loaded = _load_epoch(out, state, last, damaged, strategy.scope)
    rewound = loaded is None and best != last
    if rewound:
        loaded = _load_epoch(out, state, best, damaged, strategy.scope)
    if loaded is None:
        raise nothing_left()
    model, source = loaded
    if best == last or rewound:
        best_weights, best_source = model.get_weights(), source
    else:
        loaded_best = _load_epoch(out, state, best, damaged, contextlib.nullcontext)
        if loaded_best is None:
            raise nothing_left()
        best_weights, best_source = loaded_best[0].get_weights(), loaded_best[1]

    notes = []
    best_file, model_file = checkpoint_dir / best, out / MODEL_FILE
    for path, why in damaged.items():
        if rewound and path.name == last:
            done, back = state["epochs_done"], state["best_epoch"]
            again = f"epoch {done}" if done == back + 1 else f"epochs {back + 1}-{done}"
            notes.append(f"{path} is damaged ({why}): the run went back to epoch {back}, its best epoch, and trains "
                         f"{again} again")
        else:
            notes.append(f"{path} is damaged ({why}); replaced it with {model_file}, a copy of the same epoch")
    if best_source == model_file:
        _copy_atomic(model_file, best_file)
    elif not model_file.is_file() or _sha256(model_file) != _sha256(best_file):
        logger.info("%s does not hold the best epoch (damaged, or an interrupted run's); rewriting it from %s",
                    model_file, best_file)
        _copy_atomic(best_file, model_file)
    if rewound:
        back = state["best_epoch"]
        history = state["history"][:back]
        state = {**state, "epochs_done": back, "last": best, "history": history, "early_stop": None,
                 "stop_reason": None, "stop_message": "", "metrics": _metrics(history, back - 1),
                 "sha256": {best: _sha256(best_file)}}
    return model, best_weights, state, notes


def _load_epoch(out: Path, state: dict, name: str, damaged: dict[Path, str],
                scope) -> tuple[keras.Model, Path] | None:
    """The model of committed epoch file ``name`` from its first intact copy, and that copy's path; None if none.

    The copies are ``checkpoint/<name>`` and, for the best epoch, ``model.keras``. Each damaged copy is added to
    ``damaged`` with the reason, and not tried twice. ``scope`` makes the context the model is loaded in.
    """
    copies = [out / CHECKPOINT_DIR / name] + ([out / MODEL_FILE] if name == state["best"] else [])
    for path in copies:
        if path in damaged:
            continue
        digest = state.get("sha256", {}).get(name)
        damaged[path] = _damage(path, digest)
        if damaged[path]:
            continue
        try:
            with scope():
                model = keras.models.load_model(path)
        except Exception as err:  # Keras raises zipfile, OSError, ValueError, KeyError, h5py errors for damaged files
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            if digest is not None:  # the file is as it was written: what fails is not the file
                raise ModelDirError(
                    f"{path} is intact (its SHA-256 is the one recorded) but cannot be loaded ({reason}). Is this "
                    f"the Keras and TensorFlow that trained it ({MODEL_JSON} records them), with the same memory? "
                    "Nothing was changed; fix that, then run the same command again") from err
            damaged[path] = reason
            continue
        del damaged[path]
        return model, path
    return None


def _damage(path: Path, digest: str | None) -> str:
    """What is wrong with an epoch file whose SHA-256 was recorded as ``digest`` (None: not recorded); empty if
    nothing is seen (a file that matches may still fail to load)."""
    try:
        if digest is None:
            return "" if path.is_file() else "missing"
        return "" if _sha256(path) == digest else "its SHA-256 is not the one recorded when it was written"
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _resumable_files(state: dict) -> tuple[str, ...]:
    """The epoch files a committed run keeps: its last and best, unless a stop rule ended it for good (a run
    stopped by its epoch limit keeps them, so that a re-run with a higher ``--epochs`` can continue it)."""
    return (state["last"], state["best"]) if state.get("stop_reason") in (None, STOP_MAX_EPOCHS) else ()


def _remove_checkpoints(checkpoint_dir: Path, *, keep: tuple[str, ...]) -> None:
    """Remove the epoch files but ``keep``: older epochs, or damaged files the committed state no longer names."""
    for stale in checkpoint_dir.glob("epoch-*.keras"):
        if stale.name not in keep:
            stale.unlink()


def _epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.keras"


def _save_model_atomic(model: keras.Model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        with writing(path):
            model.save(tmp)
            _fsync(tmp)
            os.replace(tmp, path)
            _fsync(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (a checkpoint must survive a power cut once committed)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_atomic(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with writing(target):
            shutil.copyfile(source, tmp)
            _fsync(tmp)
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_text(path: Path, text: str) -> None:
    with writing(path):
        layout.write_text_atomic(path, text)


def _state_text(state: dict) -> str:
    return json.dumps(state, indent=1) + "\n"


def _history_csv(history: list[dict]) -> str:
    lines = [",".join(HISTORY_COLUMNS)]
    for row in history:
        lines.append(",".join("" if row.get(key) is None else f"{row[key]:.6g}" if isinstance(row[key], float) else str(row[key]) for key in HISTORY_COLUMNS))
    return "\n".join(lines) + "\n"


class _EpochRecorder(keras.callbacks.Callback):
    """Commits every completed epoch to disk: model files, then state.json, then the derived files."""

    def __init__(self, out, info, config, state, history, stopper, train_data, val_data, observer, counts,
                 devices) -> None:
        super().__init__()
        self.devices = devices
        self.out = out
        self.info = info
        self.config = config
        self.history = history
        self.stopper = stopper
        self.train_data = train_data
        self.val_data = val_data
        self.observer = observer
        self.counts = counts
        self.checkpoint_dir = out / CHECKPOINT_DIR
        self.state = state or {}  # the committed state; replaced at every epoch's commit
        self.notes: list[str] = []  # damaged files met while finishing
        self._epoch_started = 0.0

    def base_record(self) -> dict:
        return {
            "dataset": {
                "path": str(self.info.root.resolve()),
                "fingerprint": self.info.fingerprint,
                "train_slices": int(len(self.train_data.paths)),
                "validation_slices": int(len(self.val_data.paths)),
                "train_slices_per_class": dict(zip(self.info.classes, (int(c) for c in self.counts))),
            },
            # Of the last run: a resumed run may use another number of devices.
            "devices": {
                "names": list(self.devices),
                "replicas": len(self.devices),
                "global_batch_size": self.config.batch_size * len(self.devices),
            },
        }

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_started = time.perf_counter()
        self.observer.on_epoch_start(epoch + 1, len(self.train_data))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.observer.on_batch_end(batch, logs or {})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        rate = logs.get("learning_rate")
        if rate is None:
            with contextlib.suppress(Exception):
                rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row = {"epoch": epoch + 1}
        for key in HISTORY_COLUMNS[1:5]:
            row[key] = float(logs[key]) if key in logs else None
        row["learning_rate"] = None if rate is None else float(rate)
        row["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        self.history.append(row)

        name = _epoch_file(epoch + 1)
        _save_model_atomic(self.model, self.checkpoint_dir / name)
        best_epoch = self.stopper.best_epoch
        best_name = _epoch_file(best_epoch + 1) if best_epoch is not None else name
        # Of the files the state names: the best epoch's was recorded when it was written.
        digests = {best_name: self.state.get("sha256", {}).get(best_name), name: _sha256(self.checkpoint_dir / name)}
        self.state = {
            "format_version": MODEL_FORMAT_VERSION,
            "epochs_done": epoch + 1,
            "last": name,
            "best": best_name,
            "best_epoch": None if best_epoch is None else best_epoch + 1,
            "history": self.history,
            "early_stop": self.stopper.get_state(),
            "stop_reason": self.stopper.stop_reason,
            "stop_message": self.stopper.message if self.stopper.stop_reason else "",
            "settings": self.config.run_settings(),
            "fingerprint": self.info.fingerprint,
            "metrics": _metrics(self.history, best_epoch),
            "sha256": {file: digest for file, digest in digests.items() if digest},
        }
        _write_text(self.checkpoint_dir / STATE_JSON, _state_text(self.state))
        # Derived files: regenerated from the committed state, so a crash here loses nothing.
        _remove_checkpoints(self.checkpoint_dir, keep=(name, best_name))
        if best_name == name:
            _copy_atomic(self.checkpoint_dir / name, self.out / MODEL_FILE)
        self.write_derived_files()
        self.observer.on_epoch_end(row)

    def write_derived_files(self) -> None:
        """history.csv and curves.png, from the committed history."""
        _write_text(self.out / HISTORY_CSV, _history_csv(self.history))
        with writing(self.out / CURVES_PNG):
            plot_training_curves(self.history, self.out / CURVES_PNG)

    def finish(self) -> dict:
        """After fit: record why training ended, write the final model and model.json.

        Each step can be redone: a run that ends between them is finished by the next call, until model.json
        says ``finished``, which is written last.
        """
        state = self.state
        if not state.get("stop_reason"):
            state["stop_reason"] = STOP_MAX_EPOCHS
            done, limit = state["epochs_done"], self.config.epochs
            state["stop_message"] = (
                f"reached the last epoch ({done})" if done == limit
                else f"the epoch limit is {limit} and {done} epochs were already done"
            )
        _write_text(self.checkpoint_dir / STATE_JSON, _state_text(state))
        # The callback restored the best weights; the best epoch's file holds the same weights. Once copied, it
        # is removed if a stop rule ended the run (an earlier finish may have done so already).
        best_file, model_file = self.checkpoint_dir / state["best"], self.out / MODEL_FILE
        digest = state.get("sha256", {}).get(state["best"])
        best_damage = _damage(best_file, digest)
        if not best_damage:
            if digest is not None or not model_file.is_file():
                # Without a recorded digest (a state of an earlier version) the copy cannot be checked; model.keras
                # was copied from it when its epoch was committed as the best.
                _copy_atomic(best_file, model_file)
        elif _damage(model_file, digest):
            raise ModelDirError(
                f"no intact copy of the best epoch ({state['best_epoch']}) is left to be the final model "
                f"({best_file}: {best_damage}; {model_file}: {_damage(model_file, digest)}). Train into a new folder"
            )
        elif best_damage != "missing":  # missing: removed by an earlier finish, after it was copied
            self.notes.append(f"{best_file} is damaged ({best_damage}); {model_file}, a copy of the same epoch, is "
                              "the final model")
            logger.warning("%s", self.notes[-1])
        _remove_checkpoints(self.checkpoint_dir, keep=_resumable_files(state))
        record = self.base_record()
        record.update(
            {
                "stop": {"reason": state["stop_reason"], "message": state["stop_message"]},
                "epochs_run": state["epochs_done"],
                "best_epoch": state["best_epoch"],
                "metrics": state["metrics"],
                "training_seconds": round(sum(row["seconds"] for row in self.history), 1),
            }
        )
        self.write_derived_files()
        _write_model_json(self.out, self.info, self.config, record, status="finished")
        return state


def _metrics(history: list[dict], best_epoch: int | None) -> dict:
    if best_epoch is None or best_epoch >= len(history):
        return {}
    row = history[best_epoch]
    return {key: row[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy") if row.get(key) is not None}


def _write_model_json(out: Path, info: DatasetInfo, config: TrainConfig, extra: dict, *, status: str) -> None:
    import tensorflow as tf

    record = {
        "format_version": MODEL_FORMAT_VERSION,
        "status": status,
        "classes": list(info.classes),
        "spectrogram": info.spectrogram,
        "training": {**config.run_settings(), "epochs": config.epochs},
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "model_file": MODEL_FILE,
    }
    record.update(extra)
    _write_text(out / MODEL_JSON, json.dumps(record, indent=2) + "\n")

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
model files are on disk, so an interrupted run (Ctrl-C, a crash, a killed job) resumes from its last completed
epoch when the same command is run again.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import layout
from training.callbacks import STOP_MAX_EPOCHS, GoalEarlyStopping
from training.data_source import SliceDataSource
from training.dataset import DatasetInfo, load_dataset_info
from training.errors import DatasetError, ModelDirError
from training.devices import distribution_strategy, training_devices
from training.models import build_model
from training.plots import plot_training_curves
from training.settings import CLASS_WEIGHTS, TrainConfig

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

    Raises
    ------
    DatasetError
        No ``dataset.json``, fewer than two classes, or an empty training or validation split.
    ModelDirError
        ``model_dir`` holds a model for other classes or spectrogram settings, a run with other settings or
        of another version of the data set, files that are not a model's, or another run is training in it.
        Nothing in ``model_dir`` is changed.
    """
    config = (config or TrainConfig()).resolved()
    observer = observer or TrainObserver()
    info = load_dataset_info(dataset_dir)
    if len(info.classes) < 2:
        raise DatasetError(f"{info.root}: a classifier needs at least 2 genres; the data set has {list(info.classes)}")
    devices = training_devices(config.devices)
    # Each device takes batch_size slices of every step.
    common = {"batch_size": config.batch_size * len(devices), "workers": config.loader_workers}
    train_data = SliceDataSource.from_dataset(info, "train", shuffle=True, seed=config.seed, **common)
    val_data = SliceDataSource.from_dataset(info, "validation", shuffle=False, **common)
    out = Path(model_dir)
    _check_model_dir_shape(out)
    _check_recorded_model(out, info)
    _check_resumable(out, _load_state(out), info, config)  # before anything is created in the folder
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / CHECKPOINT_DIR).mkdir(exist_ok=True)
    except OSError as err:
        raise ModelDirError(f"cannot create model folder {out}: {err}") from err
    with _locked(out):
        state = _load_state(out)  # again: another run may have finished an epoch meanwhile
        _check_resumable(out, state, info, config)
        _remove_temporary_files(out)
        return _run(out, info, config, state, train_data, val_data, observer, devices)


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
    path = out / CHECKPOINT_DIR / STATE_JSON
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: the run's state cannot be read ({err}); train into a new folder") from err
    if not isinstance(state, dict) or "epochs_done" not in state:
        raise ModelDirError(f"{path}: not a training state; train into a new folder")
    return state


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
    history: list[dict] = list(state["history"]) if state else []
    epochs_done = int(state["epochs_done"]) if state else 0
    if state and (state.get("stop_reason") not in (None, STOP_MAX_EPOCHS) or epochs_done >= config.epochs):
        if read_model_json(out).get("status") != "finished":
            # The last epoch was committed but the run ended before its final files were written.
            counts = train_data.class_counts(len(info.classes))
            recorder = _EpochRecorder(out, info, config, state, history, stopper, train_data, val_data, observer,
                                      counts, devices)
            final_state = recorder.finish()
            return _result(out, "finished", final_state, history, epochs_this_call=0, resumed_from=epochs_done)
        logger.info("%s: training already finished (%s)", out, state.get("stop_message", ""))
        return _result(out, "already_finished", state, history, epochs_this_call=0, resumed_from=epochs_done)

    keras.utils.set_random_seed(config.seed + epochs_done)
    strategy = distribution_strategy(devices)
    if state:
        try:
            with strategy.scope():  # variables made in the scope are mirrored on every device
                model = keras.models.load_model(checkpoint_dir / state["last"])
            best_weights = keras.models.load_model(checkpoint_dir / state["best"]).get_weights()
        except (OSError, ValueError, KeyError) as err:
            raise ModelDirError(
                f"{checkpoint_dir}: the checkpoint of epoch {epochs_done} cannot be loaded ({err}); train into a new folder"
            ) from err
        has_best = state["early_stop"].get("best_epoch") is not None  # None: every val_loss so far was NaN
        stopper.set_state(state["early_stop"], best_weights if has_best else None)
        stopper.stop_reason = None
        logger.info("%s: continuing from epoch %d", out, epochs_done)
    else:
        with strategy.scope():
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
        if isinstance(err, DatasetError):
            reported = str(err)
        else:
            reported = next((line.split("DatasetError: ", 1)[1] for line in str(err.message).splitlines()
                             if "DatasetError: " in line), None)
            if reported is None:
                raise
        raise DatasetError(
            f"{reported}. Training stopped; the epochs completed so far are kept in {out}. Restore the file or "
            "rebuild the data set, then run the same command again."
        ) from err
    final_state = recorder.finish()
    return _result(
        out, "finished", final_state, recorder.history,
        epochs_this_call=final_state["epochs_done"] - epochs_done, resumed_from=epochs_done,
    )


def _result(out: Path, status: str, state: dict, history: list[dict], *, epochs_this_call: int, resumed_from: int) -> TrainResult:
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
    )


def _epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.keras"


def _save_model_atomic(model: keras.Model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
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
        shutil.copyfile(source, tmp)
        _fsync(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
        }
        layout.write_text_atomic(self.checkpoint_dir / STATE_JSON, json.dumps(self.state, indent=1) + "\n")
        # Derived files: regenerated from the committed state, so a crash here loses nothing.
        for stale in self.checkpoint_dir.glob("epoch-*.keras"):
            if stale.name not in (name, best_name):
                stale.unlink()
        if best_name == name:
            _copy_atomic(self.checkpoint_dir / name, self.out / MODEL_FILE)
        self.write_derived_files()
        self.observer.on_epoch_end(row)

    def write_derived_files(self) -> None:
        """history.csv and curves.png, from the committed history."""
        layout.write_text_atomic(self.out / HISTORY_CSV, _history_csv(self.history))
        plot_training_curves(self.history, self.out / CURVES_PNG)

    def finish(self) -> dict:
        """After fit: record why training ended, write the final model and model.json.

        Each step can be redone: a run that ends between them is finished by the next call.
        """
        state = self.state
        if not state.get("stop_reason"):
            state["stop_reason"] = STOP_MAX_EPOCHS
            done, limit = state["epochs_done"], self.config.epochs
            state["stop_message"] = (
                f"reached the last epoch ({done})" if done == limit
                else f"the epoch limit is {limit} and {done} epochs were already done"
            )
        layout.write_text_atomic(self.checkpoint_dir / STATE_JSON, json.dumps(state, indent=1) + "\n")
        # The callback restored the best weights; the best epoch's file holds the same weights.
        best_file = self.checkpoint_dir / state["best"]
        if best_file.exists() or not (self.out / MODEL_FILE).exists():
            _copy_atomic(best_file, self.out / MODEL_FILE)
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
        if state["stop_reason"] != STOP_MAX_EPOCHS:
            # Finished for good: the resumable copies are no longer needed (a run stopped by its epoch limit
            # keeps them, so that a re-run with a higher --epochs can continue it).
            for stale in self.checkpoint_dir.glob("epoch-*.keras"):
                stale.unlink()
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
    layout.write_text_atomic(out / MODEL_JSON, json.dumps(record, indent=2) + "\n")

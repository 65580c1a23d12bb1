"""A model folder: its file names, its ``model.json``, the trained model it holds, and what it refuses.

What :mod:`genreslice.pipeline.layout` is for a data set, this module is for the folder ``genreslice train``
writes and ``genreslice evaluate`` and ``genreslice predict`` read::

    model.keras      the kept epoch so far (the best by the monitored metric, or the last with --keep last);
                     the final model when training ends
    model.json       classes in output order, the data set's spectrogram settings and fingerprint,
                     the training settings, status and final metrics, wall time per epoch and in all,
                     peak memory
    history.csv      one row per completed epoch
    curves.png       loss and accuracy per epoch, training and validation
    logs/            TensorBoard logs (``tensorboard --logdir MODEL_DIR/logs``)
    checkpoint/      state.json plus the last and best epochs as .keras files; what a re-run resumes from
                     (see :mod:`genreslice.training.checkpoints`)
    lock             held while a run is training in the folder
    eval/            the results of ``genreslice evaluate``, one folder per split

Evaluation and prediction need only :func:`load_trained_model`, :func:`check_compatible` and
:func:`unfinished_training_note`; the training loop writes the folder with the rest.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genreslice.pipeline import layout
from genreslice.pipeline.spectrogram import spectrogram_differences
from genreslice.training.dataset import DatasetInfo
from genreslice.training.errors import ModelDirError
from genreslice.training.settings import TrainConfig
from genreslice.training.tf_modules import keras

MODEL_FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
MODEL_JSON = "model.json"
HISTORY_CSV = "history.csv"
CURVES_PNG = "curves.png"
LOG_DIR = "logs"
CHECKPOINT_DIR = "checkpoint"
STATE_JSON = "state.json"
LOCK_FILE = "lock"
#: The columns of ``history.csv``, and the keys of each row of a run's history (which also has ``peak_memory_mib``,
#: kept in ``checkpoint/state.json`` and summed up in ``model.json``, not a column).
HISTORY_COLUMNS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
#: The columns a multi-label run's history adds: the slices' macro ROC-AUC, training and validation.
TAGGING_COLUMNS = ("roc_auc", "val_roc_auc")
#: What a folder without ``model.json`` may hold and still be a model folder (a run interrupted early).
_OWN_NAMES = {MODEL_FILE, MODEL_JSON, HISTORY_CSV, CURVES_PNG, LOG_DIR, CHECKPOINT_DIR, LOCK_FILE}

#: What to do after a failed write of a training run.
AFTER_FAILED_WRITE = ("Free space on its disk (or fix what the error names), then run the same command again: "
                      "training continues from its last completed epoch")


@contextlib.contextmanager
def writing(path: Path, then: str = AFTER_FAILED_WRITE) -> Iterator[None]:
    """Turn an :class:`OSError` of the block, which writes ``path``, into a :class:`ModelDirError`.

    The message names the file or folder, the system's reason (``No space left on device``) and ``then``: what
    to do about it.
    """
    try:
        yield
    except OSError as err:
        reason = err.strerror or " ".join(str(err).split())
        raise ModelDirError(f"{path}: cannot be written ({reason}). {then}") from err


def write_record(path: Path, text: str) -> None:
    """Write one of the folder's text files (``model.json``, ``state.json``, ``history.csv``) atomically.

    Raises
    ------
    ModelDirError
        The file cannot be written; the message says what to do.
    """
    with writing(path):
        layout.write_text_atomic(path, text)


def is_temporary_name(name: str) -> bool:
    """Names of our half-written files: ``.model.json.xxxx.tmp``, ``.epoch-0003.keras.xxxx.tmp.keras`` (the
    temporary names of :func:`genreslice.pipeline.layout.replacing`), and earlier versions'
    ``.epoch-0003.123.tmp.keras``."""
    return name.startswith(".") and (name.endswith(".tmp") or name.endswith(".tmp.keras"))


def remove_temporary_files(out: Path) -> None:
    """Remove the files a killed run left half-written; nothing refers to them."""
    for folder in (out, out / CHECKPOINT_DIR):
        for path in folder.iterdir():
            if path.is_file() and is_temporary_name(path.name):
                with contextlib.suppress(OSError):
                    path.unlink()


def check_model_dir_shape(out: Path) -> None:
    """Refuse a path that is not a folder, or a folder that holds other things than a model's files.

    Raises
    ------
    ModelDirError
        The message names up to five of the foreign entries.
    """
    if out.exists() and not out.is_dir():
        raise ModelDirError(f"model folder {out} exists and is not a folder")
    if out.is_dir() and not (out / MODEL_JSON).exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in _OWN_NAMES and not is_temporary_name(p.name))
        if foreign:
            raise ModelDirError(
                f"model folder {out} is not empty and holds no genreslice model (it has {', '.join(foreign[:5])}"
                f"{', ...' if len(foreign) > 5 else ''}); choose a new or empty folder"
            )


@contextlib.contextmanager
def training_lock(out: Path) -> Iterator[None]:
    """Hold the folder's lock while the block trains in it.

    Raises
    ------
    ModelDirError
        Another run holds it; the message names its process.
    """
    try:
        with layout.exclusive_lock(out / LOCK_FILE):
            yield
    except layout.LockHeldError as err:
        raise ModelDirError(
            f"another training run is using {out} (process {err.holder} holds {err.path}); wait for it or stop it"
        ) from None


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


def write_model_json(out: Path, info: DatasetInfo, config: TrainConfig, extra: dict, *, status: str) -> None:
    """Write ``model.json``: what the model was trained on and how, with ``extra`` (data set counts, devices,
    and once finished the stop reason and metrics) and ``status`` (``"training"`` or ``"finished"``)."""
    from genreslice.training.tf_modules import tf

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
    write_record(out / MODEL_JSON, json.dumps(record, indent=2) + "\n")


def unfinished_training_note(record: dict) -> str:
    """A caution for a model whose run has not finished (its weights are the best so far); empty otherwise."""
    if record.get("status") == "finished":
        return ""
    return (f"the model's training is not finished (status {record.get('status')!r}): "
            "its weights are the best so far")


def check_compatible(record: dict, info: DatasetInfo, *, where: str, fewer_classes: bool = False) -> None:
    """Refuse a model whose classes or spectrogram settings (its representation, ``sox`` or ``mel``, included)
    differ from the data set's.

    Parameters
    ----------
    record : dict
        The model's ``model.json``.
    info : DatasetInfo
        The data set.
    where : str
        The model folder, as the message names it.
    fewer_classes : bool
        Accept a data set of some of the model's classes (evaluation scores a model on them; training needs the
        same classes). A class the model does not know is refused either way.

    Raises
    ------
    ModelDirError
        The message lists each difference.
    """
    model_task = record.get("task", "single")
    if model_task != info.task:
        kinds = {"single": "single-label (a genre per song)", "multilabel": "multi-label (tags)"}
        described = kinds.get(model_task) if isinstance(model_task, str) else None
        raise ModelDirError(f"{where} holds a {described or repr(model_task)} model and the data set "
                            f"{info.root} is {kinds[info.task]}; choose a model trained on a data set of the same "
                            "task")
    problems = []
    model_classes, data_classes = list(record.get("classes", [])), list(info.classes)
    unknown = [name for name in data_classes if name not in model_classes]
    if model_classes != data_classes and (unknown or not fewer_classes):
        lacked = f" (the model was not trained on {unknown})" if unknown and fewer_classes else ""
        problems.append(f"classes: model {record.get('classes')}, data set {data_classes}{lacked}")
    # A block without "features" is sox: a sox model and a mel data set (or the reverse) differ in features.
    spectrogram = [f"spectrogram.{key}: model {model_value!r}, data set {data_value!r}"
                   for key, model_value, data_value in spectrogram_differences(record.get("spectrogram"),
                                                                               info.spectrogram)]
    if spectrogram:
        raise ModelDirError(
            f"{where} holds a model for another data set ({'; '.join(problems + spectrogram)}); slices made "
            "differently cannot be classified by it. Choose another model folder, or rebuild the data set with the "
            "model's settings."
        )
    if problems:
        raise ModelDirError(
            f"{where} holds a model for another data set ({problems[0]}); it cannot tell genres it was not trained "
            "on. Choose another model folder"
            + (", or a data set of the model's genres or some of them." if fewer_classes else ".")
        )


def check_recorded_model(out: Path, info: DatasetInfo) -> None:
    """Refuse to train in a folder whose recorded model is for other classes or spectrogram settings."""
    if (out / MODEL_JSON).exists():
        check_compatible(read_model_json(out), info, where=str(out))


@dataclass(frozen=True)
class TrainedModel:
    """A network loaded for inference, with what its folder records about it.

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

"""``genreslice train``: fit a model on a built data set, resumably, and write its artifacts.

The model folder it writes is described in :mod:`genreslice.training.model_dir`; how each epoch is committed, and
how an interrupted or damaged run is continued, in :mod:`genreslice.training.checkpoints`. The callbacks that
write the folder during ``fit`` are in :mod:`genreslice.training.callbacks`.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from genreslice.errors import ParameterError
from genreslice.pipeline.progress import check_verbose, observed
from genreslice.training.callbacks import (
    EpochCheckpoint,
    GoalEarlyStopping,
    PlateauSchedule,
    TrainObserver,
    epoch_callbacks,
    write_history_csv,
    write_training_curves,
)
from genreslice.training.checkpoints import (
    accuracy_hint,
    best_metrics,
    check_resumable,
    early_stop_usable,
    final_model_from_best,
    kept_epoch,
    kept_message,
    load_state,
    remove_checkpoints,
    restore,
    resumable_files,
    write_state,
)
from genreslice.training.data_source import SliceDataSource, explain_slice_error
from genreslice.training.dataset import DatasetInfo, load_dataset_info, read_split, reading_dataset
from genreslice.training.devices import distribution_strategy, training_devices
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.model_dir import (
    CHECKPOINT_DIR,
    CURVES_PNG,
    HISTORY_CSV,
    MODEL_FILE,
    STATE_JSON,
    check_model_dir_shape,
    check_recorded_model,
    read_model_json,
    remove_temporary_files,
    training_lock,
    write_model_json,
    writing,
)
from genreslice.training.models import build_model, learning_rate_schedule
from genreslice.training.progress import TrainProgress
from genreslice.training.settings import CLASS_WEIGHTS, MULTILABEL_MONITOR, STOP_MAX_EPOCHS, TrainConfig
from genreslice.training.tagging import DEFAULT_THRESHOLD, song_tags, tag_scores, tune_thresholds
from genreslice.training.tensorflow_runtime import retracing_warnings_held
from genreslice.training.tf_modules import keras, tf

__all__ = ["TrainObserver", "TrainResult", "class_weights_for", "train_model"]

logger = logging.getLogger(__name__)


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
    best_epoch: int | None  # the best by the monitored metric
    metrics: dict  # of the kept epoch
    history: list[dict]
    notes: tuple[str, ...] = ()  # damaged files this call found and what it did about them (also logged)
    kept_epoch: int | None = None  # whose weights model.keras holds
    kept_message: str = ""  # which epoch's weights were kept and why
    kept_hint: str = ""  # another epoch had a better validation accuracy, and how to keep that one


@dataclass(frozen=True)
class _Run:
    """What one call trains with: the model folder, the data set and its two splits, the settings and devices."""

    out: Path
    info: DatasetInfo
    config: TrainConfig
    train_data: SliceDataSource
    val_data: SliceDataSource
    devices: list[str]
    observer: TrainObserver


def train_model(
    dataset_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    *,
    observer: TrainObserver | None = None,
    verbose: int = 0,
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
        Receives progress events (each epoch's history row, each batch's running loss and accuracy).
    verbose : {0, 1, 2}
        0 (the default): print nothing. 1: Keras-style progress, a bar over each epoch's batches (a widget in a
        notebook) and a line per finished epoch, then which epoch's weights were kept. 2: the lines without bars.
        Either way the same events reach ``observer``.

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
    verbose = check_verbose(verbose, (0, 1, 2))
    config = (config or TrainConfig()).for_folder(_recorded_model(Path(model_dir))).resolved()
    progress = TrainProgress(bars=verbose == 1) if verbose else None
    with observed(observer, progress) as observers:
        result = _train_model(dataset_dir, Path(model_dir), config, observers)
    if progress is not None:
        done = "was already trained" if result.status == "already_finished" else "trained"
        print(f"{result.model_dir} {done}: {result.epochs_run} epochs ({result.stop_message}); "
              f"{result.kept_message}.", flush=True)
    return result


def _recorded_model(model_dir: Path) -> str | None:
    """The preset the run in ``model_dir`` recorded, which a run given no model continues; None when there is no
    readable run (a new folder: the default; a damaged state is refused, by name, further on)."""
    try:
        state = load_state(model_dir)
    except (ModelDirError, OSError):
        return None
    settings = state.get("settings") if state else None
    model = settings.get("model") if isinstance(settings, dict) else None
    return model if isinstance(model, str) else None  # anything else: refused as other settings further on


def _train_model(dataset_dir: str | os.PathLike, model_dir: Path, config: TrainConfig,
                 observer: TrainObserver) -> TrainResult:
    # Held to the end, before anything is read: a build must not remove or re-render slices meanwhile.
    with reading_dataset(dataset_dir):
        run = _prepare_run(dataset_dir, model_dir, config, observer)
        check_model_dir_shape(run.out)
        check_recorded_model(run.out, run.info)
        _checked_run(run, load_state(run.out))  # before anything is created in the folder
        with writing(run.out):
            run.out.mkdir(parents=True, exist_ok=True)
            (run.out / CHECKPOINT_DIR).mkdir(exist_ok=True)
        with training_lock(run.out):
            state = load_state(run.out)  # again: another run may have finished an epoch meanwhile
            run = _checked_run(run, state)
            remove_temporary_files(run.out)
            return _train(run, state)


def _checked_run(run: _Run, state: dict | None) -> _Run:
    """``run`` with the ``monitor`` and ``keep`` of the run ``state`` continues (None: a new run's), where its
    settings leave them open; refused if it cannot continue that run.

    On a multi-label data set a new run monitors ``val_roc_auc`` unless told otherwise, and the target rule and
    class weights, which are about one class per slice, are off (a slice's several tags cannot be weighed by one
    class, and the binary accuracy of mostly absent tags is high from the first epoch).
    """
    config = run.config
    if run.info.multilabel:
        config = replace(config, monitor=config.monitor or (None if state else MULTILABEL_MONITOR),
                         target_accuracy=None, target_loss=None, class_weights="none")
    elif config.monitor == MULTILABEL_MONITOR:
        raise ParameterError(f"--monitor {MULTILABEL_MONITOR} scores tags: {run.info.root} is a single-label data "
                             "set (build it with --task multilabel for tags); monitor val_loss or val_accuracy")
    config = config.for_run(state.get("settings") if state else None)
    check_resumable(run.out, state, run.info, config)
    return replace(run, config=config)


def _prepare_run(dataset_dir: str | os.PathLike, out: Path, config: TrainConfig, observer: TrainObserver) -> _Run:
    """Read the data set and choose the devices; nothing is written yet.

    Raises
    ------
    DatasetError
        The data set is unreadable, has fewer than two classes, or an empty training or validation split.
    """
    info = load_dataset_info(dataset_dir)
    if len(info.classes) < 2 and not info.multilabel:
        raise DatasetError(
            f"{info.root}: a classifier needs at least 2 genres; the data set has {list(info.classes)}"
        )
    devices = training_devices(config.devices)
    # Each device takes batch_size slices of every step.
    common = {"batch_size": config.batch_size * len(devices), "workers": config.loader_workers}
    # Only the training slices are augmented: validation (and evaluation, prediction) see them as they are.
    train_data = SliceDataSource.from_dataset(info, "train", shuffle=True, seed=config.seed, augment=config.augment,
                                              **common)
    val_data = SliceDataSource.from_dataset(info, "validation", shuffle=False, **common)
    return _Run(out=out, info=info, config=config, train_data=train_data, val_data=val_data, devices=devices,
                observer=observer)


def class_weights_for(counts: np.ndarray, mode: str) -> dict[int, float] | None:
    """Per-class loss weights from the training split's slice counts.

    ``balanced``: ``n / (k * n_c)`` for the ``k`` classes present (mean weight per slice is 1); a class with no
    training slices gets weight 1 (it never occurs in training). ``none``: None.
    """
    if mode == "none":
        return None
    if mode != "balanced":
        raise ParameterError(f"class_weights={mode!r} must be one of {', '.join(CLASS_WEIGHTS)}")
    present = counts > 0
    total, n_present = counts.sum(), int(present.sum())
    return {
        index: float(total / (n_present * count)) if count else 1.0 for index, count in enumerate(counts.tolist())
    }


def _train(run: _Run, state: dict | None) -> TrainResult:
    """Train from ``state``, the committed state of the run in the folder (None: a new run), to the end."""
    config = run.config
    stopper = GoalEarlyStopping(
        target_accuracy=config.target_accuracy, target_loss=config.target_loss, patience=config.patience,
        monitor=config.monitor, restore_best_weights=config.keep == "best",
    )
    if state and (state.get("stop_reason") not in (None, STOP_MAX_EPOCHS) or state["epochs_done"] >= config.epochs):
        return _conclude(run, state)
    strategy = distribution_strategy(run.devices)
    notes: list[str] = []
    if state:
        model, state, notes = _resume(run.out, state, stopper, strategy)
    keras.utils.set_random_seed(config.seed + (state["epochs_done"] if state else 0))
    total_steps = config.epochs * len(run.train_data)
    if not state:
        with strategy.scope():  # variables made in the scope are mirrored on every device
            model = build_model(
                config.model, len(run.info.classes), slice_size=run.info.slice_size,
                learning_rate=learning_rate_schedule(config.lr_schedule, config.learning_rate, total_steps=total_steps),
                width=config.width, l2=config.l2, multilabel=run.info.multilabel,
            )
    elif config.lr_schedule == "cosine":
        _stretch_cosine(run.out, model, total_steps)
    return _fit(run, model, state=state, stopper=stopper, notes=notes)


def _stretch_cosine(out: Path, model: keras.Model, total_steps: int) -> None:
    """Make a resumed run's cosine decay end at its last step: the same curve when ``epochs`` and the batches per
    epoch are those it started with, stretched to the new end (from the step reached) when they changed."""
    schedule = model.optimizer._learning_rate  # the schedule object; the public attribute is its current value
    if isinstance(schedule, keras.optimizers.schedules.CosineDecay) and schedule.decay_steps != total_steps:
        logger.info("%s: the cosine learning-rate decay now ends at step %d (it ended at %d)", out, total_steps,
                    schedule.decay_steps)
        config = {**schedule.get_config(), "decay_steps": total_steps}
        model.optimizer.learning_rate = keras.optimizers.schedules.CosineDecay.from_config(config)


def _conclude(run: _Run, state: dict) -> TrainResult:
    """A run with no epoch left to train: finish it if it ended before its final files were written."""
    history, epochs_done = list(state["history"]), state["epochs_done"]
    if read_model_json(run.out).get("status") != "finished":
        # The last epoch was committed but the run ended before its final files were written.
        final_state, notes = _finish(run, state, history)
        return _result(run.out, "finished", final_state, history, epochs_this_call=0, resumed_from=epochs_done,
                       notes=notes)
    logger.info("%s: training already finished (%s)", run.out, state.get("stop_message", ""))
    remove_checkpoints(run.out / CHECKPOINT_DIR, keep=resumable_files(state))  # those an interrupted finish left
    return _result(run.out, "already_finished", state, history, epochs_this_call=0, resumed_from=epochs_done)


def _resume(out: Path, state: dict, stopper: GoalEarlyStopping, strategy) -> tuple[keras.Model, dict, list[str]]:
    """Load the committed run past damaged files, and give the stop rule its state; returns the model to continue,
    the state it continues from (committed) and notes on what was damaged (logged)."""
    checkpoint_dir = out / CHECKPOINT_DIR
    model, best_weights, restored, notes = restore(out, state, strategy)
    if restored is not state or not early_stop_usable(state):
        stopper.replay(restored["history"])
        restored["early_stop"] = stopper.get_state()
        if restored is state:
            notes.append(f"{checkpoint_dir / STATE_JSON}: its early-stop record was missing or damaged; "
                         "recomputed it from the run's history")
        write_state(out, restored)
        remove_checkpoints(checkpoint_dir, keep=(restored["last"], restored["best"]))
    for note in notes:
        logger.warning("%s", note)
    has_best = restored["early_stop"].get("best_epoch") is not None  # None: every val_loss so far was NaN
    stopper.set_state(restored["early_stop"], best_weights if has_best else None)  # None with keep "last"
    stopper.stop_reason = None
    logger.info("%s: continuing from epoch %d", out, restored["epochs_done"])
    return model, restored, notes


def _fit(run: _Run, model: keras.Model, *, state: dict | None, stopper: GoalEarlyStopping,
         notes: list[str]) -> TrainResult:
    """Train the epochs left after ``state`` (None: all), committing each, then finish the run."""
    history = list(state["history"]) if state else []
    epochs_done = state["epochs_done"] if state else 0
    run.train_data.set_epoch(epochs_done)
    checkpoint = EpochCheckpoint(run.out, history=history, stopper=stopper, settings=run.config.run_settings(),
                                 fingerprint=run.info.fingerprint, state=state)
    schedule = None
    if run.config.lr_schedule == "plateau":
        # The rate reached is in the optimizer's saved state; the epochs without improvement are recounted.
        schedule = PlateauSchedule(monitor=run.config.monitor)
        schedule.replay(history)
    callbacks = epoch_callbacks(run.out, stopper=stopper, checkpoint=checkpoint, observer=run.observer,
                                n_batches=len(run.train_data), schedule=schedule)
    # Until this run finishes, model.json must not claim an earlier finish (a continued run changes model.keras).
    write_model_json(run.out, run.info, run.config, _base_record(run), status="training")
    run.observer.on_run_start(_summary(run, epochs_done, resumed=bool(state)))
    try:
        with retracing_warnings_held():
            model.fit(
                run.train_data,
                validation_data=run.val_data,
                epochs=run.config.epochs,
                initial_epoch=epochs_done,
                class_weight=class_weights_for(_class_counts(run), run.config.class_weights),
                callbacks=callbacks,
                shuffle=False,  # the data source permutes the samples itself, per epoch and seeded
                verbose=0,
            )
    except (DatasetError, tf.errors.OpError) as err:
        # A bad slice: Keras reads the first batches itself, the rest reach us wrapped in TensorFlow's errors.
        explained = explain_slice_error(err, (run.train_data, run.val_data), run.info.root)
        if explained is None:
            raise
        raise DatasetError(
            f"{explained}. Training stopped; it continues from its last completed epoch, kept in {run.out}"
        ) from err
    final_state, finish_notes = _finish(run, checkpoint.state, history)
    return _result(run.out, "finished", final_state, history, epochs_this_call=final_state["epochs_done"] - epochs_done,
                   resumed_from=epochs_done, notes=[*notes, *finish_notes])


def _class_counts(run: _Run) -> np.ndarray:
    """Training slices per class index."""
    return run.train_data.class_counts(len(run.info.classes))


def _summary(run: _Run, epochs_done: int, *, resumed: bool) -> dict:
    """What :meth:`TrainObserver.on_run_start` is told."""
    return {
        "model": run.config.model,
        "n_train": len(run.train_data.paths),
        "n_validation": len(run.val_data.paths),
        "batches": len(run.train_data),
        "first_epoch": epochs_done + 1,
        "epochs": run.config.epochs,
        "resumed": resumed,
        "devices": list(run.devices),
        "batch_size": run.config.batch_size * len(run.devices),
        "multilabel": run.info.multilabel,
    }


def _base_record(run: _Run) -> dict:
    """What ``model.json`` records of the data set and devices, from the start of a run."""
    return {
        **({"task": "multilabel"} if run.info.multilabel else {}),
        "dataset": {
            "path": str(run.info.root.resolve()),
            "fingerprint": run.info.fingerprint,
            "train_slices": int(len(run.train_data.paths)),
            "validation_slices": int(len(run.val_data.paths)),
            "train_slices_per_class": dict(zip(run.info.classes, (int(c) for c in _class_counts(run)))),
        },
        # Of the last run: a resumed run may use another number of devices.
        "devices": {
            "names": list(run.devices),
            "replicas": len(run.devices),
            "global_batch_size": run.config.batch_size * len(run.devices),
        },
    }


def _finish(run: _Run, state: dict, history: list[dict]) -> tuple[dict, list[str]]:
    """After fit: record why training ended, write the final model and model.json; returns the final state and
    notes on damaged files.

    Each step can be redone: a run that ends between them is finished by the next call, until model.json
    says ``finished``, which is written last.
    """
    if not state.get("stop_reason"):
        state["stop_reason"] = STOP_MAX_EPOCHS
        done, limit = state["epochs_done"], run.config.epochs
        state["stop_message"] = (
            f"reached the last epoch ({done})" if done == limit
            else f"the epoch limit is {limit} and {done} epochs were already done"
        )
    state["kept_epoch"] = kept_epoch(state)
    state["metrics"] = best_metrics(history, state["kept_epoch"] - 1) or state.get("metrics", {})
    write_state(run.out, state)
    # The kept epoch's file (the best; the last with keep "last") becomes model.keras. Once copied, it is
    # removed if a stop rule ended the run (an earlier finish may have done so already).
    notes = final_model_from_best(run.out, state)
    remove_checkpoints(run.out / CHECKPOINT_DIR, keep=resumable_files(state))
    record = _base_record(run)
    record.update(
        {
            "stop": {"reason": state["stop_reason"], "message": state["stop_message"]},
            "epochs_run": state["epochs_done"],
            "best_epoch": state["best_epoch"],
            "kept": {"epoch": state["kept_epoch"], "keep": run.config.keep, "monitor": run.config.monitor,
                     "message": kept_message(state), "hint": accuracy_hint(state)},
            "metrics": state["metrics"],
            "training_seconds": round(sum(row["seconds"] for row in history), 1),
            "epoch_seconds": [row["seconds"] for row in history],
            # The largest over every process that trained the run (a resumed run has several); None where the
            # system does not say. A run begun by a version that did not record it counts its later epochs only.
            "peak_memory_mib": max((row["peak_memory_mib"] for row in history
                                    if row.get("peak_memory_mib") is not None), default=None),
        }
    )
    if run.info.multilabel:
        record["thresholds"] = tuned_thresholds(run.out / MODEL_FILE, run.info, run.val_data)
    write_history_csv(run.out / HISTORY_CSV, history)
    write_training_curves(run.out / CURVES_PNG, history)
    write_model_json(run.out, run.info, run.config, record, status="finished")
    return state, notes


def tuned_thresholds(model_file: Path, info: DatasetInfo, val_data: SliceDataSource) -> dict:
    """Each tag's threshold, tuned on the validation songs (see :mod:`genreslice.training.tagging`), with the
    song-level scores of that split: what ``model.json`` records under ``thresholds``. A model whose probabilities
    are not finite (the kept weights of a run that diverged) keeps 0.5 for every tag, and the record says why."""
    model = keras.models.load_model(model_file, compile=False)
    with retracing_warnings_held():
        probabilities = model.predict(val_data, verbose=0)
    _, labels, track_ids = read_split(info, "validation")
    rule = ("per tag, the song score with the highest F-score on the validation split's songs (a song's score: the "
            f"mean of its slices' probabilities); {DEFAULT_THRESHOLD} for a tag no validation song has")
    try:
        songs = song_tags(probabilities, labels, track_ids)
    except ValueError as err:
        logger.warning("%s: thresholds not tuned: %s", model_file, err)
        return {"rule": f"not tuned: {err}", "by_tag": {tag: DEFAULT_THRESHOLD for tag in info.classes},
                "validation": None}
    thresholds = tune_thresholds(songs.truth, songs.probability)
    scores = tag_scores(songs.truth, songs.probability, thresholds)
    return {
        "rule": rule,
        # Unrounded: a threshold is one song's score, and rounding it up would leave that song out.
        "by_tag": {tag: float(value) for tag, value in zip(info.classes, thresholds)},
        "validation": {"songs": int(len(songs.song_ids)),
                       **{key: value for key, value in scores.items() if key not in ("per_tag", "undefined")}},
    }


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
        kept_epoch=kept_epoch(state),
        kept_message=kept_message(state),
        kept_hint=accuracy_hint(state),
    )

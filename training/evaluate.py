"""``genreslice evaluate``: slice and song accuracy of a trained model on one split of a built data set.

Writes ``MODEL_DIR/eval/<split>/`` as one unit (all its files come from one run)::

    metrics.json     slice accuracy, song accuracy under both votes, per-genre precision/recall/F1/support,
                     the confusion matrix, and which model and data set were compared

A data set may hold only some of the model's genres (the same slices, fewer genres): it is scored over the model's
classes, since the model may predict any of them; the genres the data set lacks have support 0 and empty rows in
the confusion matrix, ``metrics.json`` names them in ``missing_classes`` and a note says so. A genre the model was
not trained on, or other spectrogram settings, are refused.
    confusion.csv    song-level confusion matrix: one row per true genre, one column per predicted genre
    confusion.png    the same as a labelled heat map
    songs.csv        one row per song: true genre, slices, the majority and mean-probability verdicts

A multi-label model (``--task multilabel``) is scored per tag instead, on each song's mean slice probabilities
(see :mod:`genreslice.training.tagging`)::

    metrics.json     song-level ROC-AUC and PR-AUC per tag, macro and micro; precision, recall and F-score at the
                     thresholds tuned on the validation split (``model.json``); the slice-level macro ROC-AUC and
                     PR-AUC
    tags.tsv         ``tag roc_auc pr_auc``, as MTG-Jamendo's published per-tag baseline files
    summary.tsv      ``ROC-AUC-macro``, ``PR-AUC-macro``, ... ``F-score-micro``, as MediaEval's baseline files
    songs.csv        one row per song: its tags, the tags predicted (at the thresholds), the five most probable

The files are written into a scratch folder ``MODEL_DIR/eval/.<split>.<pid>.tmp`` that then replaces
``eval/<split>``; a scratch folder left by a killed run is removed by the next evaluation.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreslice.errors import ParameterError
from genreslice.pipeline import layout
from genreslice.pipeline.progress import check_verbose, observed
from genreslice.pipeline.tracks import TAG_SEPARATOR
from genreslice.training.data_source import SliceDataSource, explain_slice_error
from genreslice.training.dataset import check_split, load_dataset_info, read_split, reading_dataset
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.model_dir import (
    MODEL_FILE,
    check_compatible,
    load_trained_model,
    unfinished_training_note,
    writing,
)
from genreslice.training.plots import plot_confusion_matrix
from genreslice.training.progress import EvaluateProgress
from genreslice.training.settings import INFERENCE_BATCH_SIZE, default_loader_workers
from genreslice.training.tensorflow_runtime import retracing_warnings_held
from genreslice.training.tf_modules import keras, tf
from genreslice.training.tagging import (
    DEFAULT_THRESHOLD,
    SongTags,
    per_tag_tsv,
    recorded_thresholds,
    slice_scores,
    song_tags,
    summary_tsv,
    tag_scores,
)
from genreslice.training.voting import SongScores, check_vote, score_songs

EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
CONFUSION_CSV = "confusion.csv"
CONFUSION_PNG = "confusion.png"
SONGS_CSV = "songs.csv"
TAGS_TSV = "tags.tsv"
SUMMARY_TSV = "summary.tsv"
METRICS_FORMAT_VERSION = 1
# A scratch folder, or layout.replace_folder's trash beside it: ".test.HOST.PID.TOKEN.tmp[.old]".
_SCRATCH_NAME = re.compile(r"^\.(?P<split>[a-z]+)\.(?P<host>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.tmp(\.old)?$")


class EvaluateObserver:
    """Hooks for progress display; the default does nothing."""

    def on_start(self, n_slices: int, n_batches: int) -> None:
        """Classification of ``n_slices`` slices in ``n_batches`` model calls begins."""

    def on_batch_end(self, batch: int) -> None:
        """Batch ``batch`` (from 0) has been classified."""


class _BatchProgress(keras.callbacks.Callback):
    """Forwards Keras's per-batch prediction events to an :class:`EvaluateObserver`."""

    def __init__(self, observer: EvaluateObserver) -> None:
        super().__init__()
        self.observer = observer

    def on_predict_batch_end(self, batch, logs=None) -> None:
        self.observer.on_batch_end(batch)


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate_model`` measured and where it wrote it.

    Attributes
    ----------
    out_dir : Path
        ``MODEL_DIR/eval/<split>``.
    metrics : dict
        The content of ``metrics.json``.
    notes : tuple of str
        Cautions about the comparison (a split the model saw in training, another data set, an unfinished run).
    """

    out_dir: Path
    metrics: dict
    notes: tuple[str, ...]


def evaluate_model(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike, *, split: str = "test",
                   vote: str = "majority", batch_size: int = INFERENCE_BATCH_SIZE, loader_workers: int | None = None,
                   observer: EvaluateObserver | None = None, verbose: int = 0) -> EvaluationResult:
    """Classify every slice of one split, vote per song, score and write the results.

    Parameters
    ----------
    dataset_dir : str or os.PathLike
        A data set made by ``genreslice build`` with the model's spectrogram settings and classes, or some of them.
    model_dir : str or os.PathLike
        A folder made by ``genreslice train``.
    split : str
        ``"test"``, ``"validation"`` or ``"train"``.
    vote : str
        The song-level vote the per-genre scores and the confusion matrix use; both song accuracies are
        always measured.
    batch_size : int
        Slices per model call.
    loader_workers : int or None
        Threads reading slices ahead of the model (None: as for training).
    observer : EvaluateObserver, optional
        Told of the number of slices and batches, then of each batch classified.
    verbose : {0, 1}
        1: a progress bar over the batches (a widget in a notebook). 0 (the default): print nothing.

    Raises
    ------
    DatasetError
        The data set is unreadable, the split is empty, a build is changing the data set, or a slice cannot be
        read (the message says how to repair it).
    ModelDirError
        The model is missing, damaged, or made for other spectrogram settings or without a class of the data
        set; or the results cannot be written (a full disk), and the previous results of the split are kept.
    """
    check_vote(vote)
    check_split(split)
    if batch_size < 1:
        raise ParameterError(f"batch_size={batch_size} must be at least 1")
    progress = EvaluateProgress() if check_verbose(verbose) else None
    # The data set is held to the end, before anything is read: a build must not remove or re-render slices meanwhile.
    with observed(observer, progress) as observers, reading_dataset(dataset_dir):
        return _evaluate(dataset_dir, model_dir, split=split, vote=vote, batch_size=batch_size,
                         loader_workers=loader_workers, observer=observers)


def _evaluate(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike, *, split: str, vote: str,
              batch_size: int, loader_workers: int | None, observer: EvaluateObserver) -> EvaluationResult:
    started = time.monotonic()
    info = load_dataset_info(dataset_dir)
    trained = load_trained_model(model_dir)
    check_compatible(trained.record, info, where=str(trained.model_dir), fewer_classes=True)
    # Scored over the model's classes: it may predict any of them, and a data set of fewer genres must not turn
    # those predictions into another class's. The genres the data set lacks have empty rows (no true songs).
    classes = list(trained.classes)
    missing = [name for name in classes if name not in info.classes]
    paths, labels, track_ids = read_split(info, split)
    if len(paths) == 0:
        raise DatasetError(f"{info.root}: the {split} split has no slices; nothing to evaluate")
    if info.multilabel:  # the data set's tag columns, placed among the model's
        columns = np.zeros((len(paths), len(classes)), dtype=np.uint8)
        columns[:, [classes.index(name) for name in info.classes]] = labels
        labels = columns
    else:
        labels = np.array([classes.index(name) for name in info.classes], dtype=np.int32)[labels]
    source = SliceDataSource(paths, labels, batch_size=batch_size, slice_size=info.slice_size,
                             workers=loader_workers or default_loader_workers())
    observer.on_start(len(paths), len(source))
    try:
        with retracing_warnings_held():
            probabilities = trained.model.predict(source, verbose=0, callbacks=[_BatchProgress(observer)])
    except (DatasetError, tf.errors.OpError) as err:
        explained = explain_slice_error(err, (source,), info.root)
        if explained is None:
            raise
        raise DatasetError(explained) from err
    if probabilities.shape != (len(paths), len(classes)):
        raise ModelDirError(f"{trained.model_dir / MODEL_FILE}: returned predictions of shape {probabilities.shape} "
                            f"for {len(paths)} slices of {len(classes)} classes")

    record = trained.record
    same_dataset = record.get("dataset", {}).get("fingerprint") == info.fingerprint
    if info.multilabel:
        return _evaluate_tags(probabilities, labels, track_ids, trained=trained, info=info, split=split,
                              missing=missing, same_dataset=same_dataset, started=started)
    scores = score_songs(probabilities, labels, track_ids, classes, vote=vote)
    metrics = {
        "format_version": METRICS_FORMAT_VERSION,
        "split": split,
        "classes": classes,
        "dataset_classes": list(info.classes),
        "missing_classes": missing,
        **scores.metrics,
        **_compared(trained, info, same_dataset, started),
    }
    notes = _notes(split, record, same_dataset, missing)

    def write_files(folder: Path) -> None:
        layout.write_text_atomic(folder / CONFUSION_CSV, _confusion_csv(scores.confusion, classes))
        plot_confusion_matrix(scores.confusion, classes, folder / CONFUSION_PNG,
                              title=f"{split} split: {metrics['n_songs']} songs, {vote} vote")
        layout.write_text_atomic(folder / SONGS_CSV, _songs_csv(scores, classes))
        layout.write_text_atomic(folder / METRICS_JSON,
                                 json.dumps({**metrics, "notes": list(notes)}, indent=2) + "\n")

    out = trained.model_dir / EVAL_DIR / split
    _write_folder(out, write_files)
    return EvaluationResult(out_dir=out, metrics=metrics, notes=notes)


def _compared(trained, info, same_dataset: bool, started: float) -> dict:
    """What ``metrics.json`` records of the model and data set compared, and the seconds since ``started``."""
    record = trained.record
    kept = record["kept"] if isinstance(record.get("kept"), dict) else {}
    return {
        "model": {"path": str(trained.model_dir.resolve()), "status": record.get("status"),
                  "best_epoch": record.get("best_epoch"), "kept_epoch": kept.get("epoch", record.get("best_epoch"))},
        "dataset": {"path": str(info.root.resolve()), "fingerprint": info.fingerprint,
                    "same_as_training": same_dataset},
        "seconds": round(time.monotonic() - started, 3),
    }


def _evaluate_tags(probabilities: np.ndarray, labels: np.ndarray, track_ids: np.ndarray, *, trained, info,
                   split: str, missing: list[str], same_dataset: bool, started: float) -> EvaluationResult:
    """Score a multi-label model per tag on its songs' mean probabilities, and write the split's files."""
    classes = list(trained.classes)
    record = trained.record
    songs = song_tags(probabilities, labels, track_ids)
    thresholds, tuned = recorded_thresholds(record, classes)
    scores = tag_scores(songs.truth, songs.probability, thresholds)
    by_slice = slice_scores(labels, probabilities)
    metrics = {
        "format_version": METRICS_FORMAT_VERSION,
        "task": "multilabel",
        "split": split,
        "classes": classes,
        "dataset_classes": list(info.classes),
        "missing_classes": missing,
        "n_slices": int(len(probabilities)),
        "n_songs": int(len(songs.song_ids)),
        "songs": {key: value for key, value in scores.items() if key != "per_tag"},
        "slices": by_slice,
        "per_tag": {name: {key: values[index] for key, values in scores["per_tag"].items()}
                    for index, name in enumerate(classes)},
        "thresholds": "tuned on the validation split" if tuned else
                      f"{DEFAULT_THRESHOLD} (model.json records no tuned thresholds)",
        **_compared(trained, info, same_dataset, started),
    }
    notes = list(_notes(split, record, same_dataset, missing, tags=True))
    if scores["undefined"]:
        notes.append(f"{scores['undefined']} tags have no song with them, or only such songs, in the {split} split: "
                     "their ROC-AUC is undefined and left out of the macro averages")
    if split == "validation" and tuned:
        notes.append("the thresholds were tuned on these songs: precision, recall and F-score are optimistic")

    def write_files(folder: Path) -> None:
        layout.write_text_atomic(folder / TAGS_TSV, per_tag_tsv(classes, scores))
        layout.write_text_atomic(folder / SUMMARY_TSV, summary_tsv(scores))
        layout.write_text_atomic(folder / SONGS_CSV, _tag_songs_csv(songs, classes, thresholds))
        layout.write_text_atomic(folder / METRICS_JSON, json.dumps({**metrics, "notes": notes}, indent=2) + "\n")

    out = trained.model_dir / EVAL_DIR / split
    _write_folder(out, write_files)
    return EvaluationResult(out_dir=out, metrics=metrics, notes=tuple(notes))


def _tag_songs_csv(songs: SongTags, classes: list[str], thresholds: np.ndarray, top: int = 5) -> str:
    rows = []
    for index, track in enumerate(songs.song_ids):
        probability = songs.probability[index]
        order = np.argsort(-probability, kind="mergesort")[:top]
        rows.append([track, TAG_SEPARATOR.join(classes[k] for k in np.flatnonzero(songs.truth[index])),
                     int(songs.n_slices[index]),
                     TAG_SEPARATOR.join(classes[k] for k in np.flatnonzero(probability >= thresholds)),
                     " ".join(f"{classes[k]}:{probability[k]:.4f}" for k in order)])
    return layout.csv_text(("track_id", "tags", "n_slices", "predicted", "top_probabilities"), rows)


def _write_folder(out: Path, write_files: Callable[[Path], None]) -> None:
    """Write a folder as one unit: ``write_files`` fills a scratch folder next to ``out``, which then replaces it.

    A run stopped at any point (an error, Ctrl-C, ``kill -9``) leaves the previous ``out`` as it was; the
    scratch folders of killed runs are removed here, by the next run. Scratch folders are named by host, process
    and a random token, so evaluations on other machines sharing the folder, or in other threads, are left alone.
    """
    eval_dir = out.parent
    scratch = eval_dir / f".{out.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        with writing(out, then="Free space on its disk (or fix what the error names), then run the same command "
                               "again; the previous results of this split are kept until then"):
            eval_dir.mkdir(parents=True, exist_ok=True)
            _remove_leftovers(eval_dir)
            scratch.mkdir()
            write_files(scratch)
            layout.replace_folder(scratch, out)
    except BaseException:
        _restore_previous(out, scratch.with_name(scratch.name + ".old"))
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _restore_previous(out: Path, trash: Path) -> None:
    """Put the previous results back if a stop came between :func:`layout.replace_folder`'s two renames."""
    if not out.exists() and trash.is_dir():
        os.replace(trash, out)


def _remove_leftovers(eval_dir: Path) -> None:
    """Remove the scratch folders of evaluations whose process has ended (killed before they finished); previous
    results a killed run had moved aside, and not replaced yet, are put back first."""
    host = socket.gethostname()
    leftovers = [(entry, match) for entry in eval_dir.iterdir()
                 if (match := _SCRATCH_NAME.match(entry.name)) and match["host"] == host
                 and not _process_running(int(match["pid"]))]
    for entry, match in leftovers:
        if entry.name.endswith(".old"):
            _restore_previous(eval_dir / match["split"], entry)
    for entry, _ in leftovers:
        shutil.rmtree(entry, ignore_errors=True)


def _process_running(pid: int) -> bool:
    """Whether process ``pid`` of this machine runs (this one included: another thread may be evaluating); True
    when that cannot be told."""
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # os.kill(pid, 0) would not test but stop the process there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, but belongs to someone else
    return True


def _notes(split: str, record: dict, same_dataset: bool, missing: list[str], *,
           tags: bool = False) -> tuple[str, ...]:
    notes = []
    if missing and tags:
        notes.append(f"the data set lacks {len(missing)} of the model's tags ({', '.join(missing)}): no song has "
                     "them, so their ROC-AUC is undefined, and songs predicted with them count as false positives")
    elif missing:
        notes.append(f"the data set lacks {len(missing)} of the model's genres ({', '.join(missing)}): they have no "
                     "songs to score (empty rows of the confusion matrix), and songs predicted as them count as "
                     "errors")
    if split == "train":
        notes.append("the model was trained on these songs: this measures fit, not generalisation")
    elif split == "validation":
        notes.append("training chose its best epoch and stopped on these songs: the figures are optimistic")
    if not same_dataset:
        notes.append("this data set differs from the one the model was trained on (another build or other "
                     "splits): songs of this split may have been in its training split")
    if unfinished_training_note(record):
        notes.append(unfinished_training_note(record))
    return tuple(notes)


def _confusion_csv(confusion: np.ndarray, classes: list[str]) -> str:
    # Genre names come from a user's genre map: they may hold commas, quotes and line breaks.
    return layout.csv_text(["true \\ predicted", *classes],
                           ([name, *row] for name, row in zip(classes, confusion.tolist())))


def _songs_csv(scores: SongScores, classes: list[str]) -> str:
    tally, majority, mean = scores.tally, scores.winners["majority"], scores.winners["mean"]
    majority_share = tally.vote_share(majority)
    mean_probability = tally.mean_probability[np.arange(len(mean)), mean]
    return layout.csv_text(
        ("track_id", "genre", "n_slices", "majority", "majority_share", "mean", "mean_probability"),
        ([track, classes[scores.truth[i]], int(tally.n_slices[i]), classes[majority[i]], f"{majority_share[i]:.4f}",
          classes[mean[i]], f"{mean_probability[i]:.4f}"] for i, track in enumerate(tally.song_ids)),
    )

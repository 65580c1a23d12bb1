"""``genreslice evaluate``: slice and song accuracy of a trained model on one split of a built data set.

Writes ``MODEL_DIR/eval/<split>/``::

    metrics.json     slice accuracy, song accuracy under both votes, per-genre precision/recall/F1/support,
                     the confusion matrix, and which model and data set were compared
    confusion.csv    song-level confusion matrix: one row per true genre, one column per predicted genre
    confusion.png    the same as a labelled heat map
    songs.csv        one row per song: true genre, slices, the majority and mean-probability verdicts
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pipeline import layout
from training.data_source import SliceDataSource
from training.dataset import SPLITS, load_dataset_info, read_split
from training.errors import DatasetError, ModelDirError
from training.plots import plot_confusion_matrix
from training.settings import INFERENCE_BATCH_SIZE, default_loader_workers
from training.train import MODEL_FILE, check_compatible, load_trained_model, unfinished_training_note
from training.voting import SongScores, check_vote, score_songs

EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
CONFUSION_CSV = "confusion.csv"
CONFUSION_PNG = "confusion.png"
SONGS_CSV = "songs.csv"
METRICS_FORMAT_VERSION = 1


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


def evaluate_model(
    dataset_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    split: str = "test",
    vote: str = "majority",
    batch_size: int = INFERENCE_BATCH_SIZE,
    loader_workers: int | None = None,
    observer: EvaluateObserver | None = None,
) -> EvaluationResult:
    """Classify every slice of one split, vote per song, score and write the results.

    Parameters
    ----------
    dataset_dir : str or os.PathLike
        A data set made by ``genreslice build`` with the model's classes and spectrogram settings.
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

    Raises
    ------
    DatasetError
        The data set is unreadable or the split is empty.
    ModelDirError
        The model is missing, damaged, or made for other classes or spectrogram settings.
    """
    check_vote(vote)
    if split not in SPLITS:
        raise DatasetError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    observer = observer or EvaluateObserver()
    started = time.monotonic()
    info = load_dataset_info(dataset_dir)
    trained = load_trained_model(model_dir)
    check_compatible(trained.record, info, where=str(trained.model_dir))
    paths, labels, track_ids = read_split(info, split)
    if len(paths) == 0:
        raise DatasetError(f"{info.root}: the {split} split has no slices; nothing to evaluate")
    source = SliceDataSource(paths, labels, batch_size=batch_size, slice_size=info.slice_size,
                             workers=loader_workers or default_loader_workers())
    observer.on_start(len(paths), len(source))
    probabilities = trained.model.predict(source, verbose=0, callbacks=[_BatchProgress(observer)])
    if probabilities.shape != (len(paths), len(info.classes)):
        raise ModelDirError(f"{trained.model_dir / MODEL_FILE}: returned predictions of shape {probabilities.shape} "
                            f"for {len(paths)} slices of {len(info.classes)} classes")

    scores = score_songs(probabilities, labels, track_ids, info.classes, vote=vote)
    classes = list(info.classes)
    record = trained.record
    same_dataset = record.get("dataset", {}).get("fingerprint") == info.fingerprint
    metrics = {
        "format_version": METRICS_FORMAT_VERSION,
        "split": split,
        "classes": classes,
        **scores.metrics,
        "model": {"path": str(trained.model_dir.resolve()), "status": record.get("status"),
                  "best_epoch": record.get("best_epoch")},
        "dataset": {"path": str(info.root.resolve()), "fingerprint": info.fingerprint,
                    "same_as_training": same_dataset},
        "seconds": round(time.monotonic() - started, 3),
    }
    notes = _notes(split, record, same_dataset)
    out = trained.model_dir / EVAL_DIR / split
    out.mkdir(parents=True, exist_ok=True)
    layout.write_text_atomic(out / CONFUSION_CSV, _confusion_csv(scores.confusion, classes))
    plot_confusion_matrix(scores.confusion, classes, out / CONFUSION_PNG,
                          title=f"{split} split: {metrics['n_songs']} songs, {vote} vote")
    layout.write_text_atomic(out / SONGS_CSV, _songs_csv(scores, classes))
    layout.write_text_atomic(out / METRICS_JSON, json.dumps({**metrics, "notes": list(notes)}, indent=2) + "\n")
    return EvaluationResult(out_dir=out, metrics=metrics, notes=notes)


def _notes(split: str, record: dict, same_dataset: bool) -> tuple[str, ...]:
    notes = []
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
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    for name, row in zip(classes, confusion.tolist()):
        writer.writerow([name, *row])
    return buffer.getvalue()


def _songs_csv(scores: SongScores, classes: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["track_id", "genre", "n_slices", "majority", "majority_share", "mean", "mean_probability"])
    tally, majority, mean = scores.tally, scores.winners["majority"], scores.winners["mean"]
    majority_share = tally.vote_share(majority)
    mean_probability = tally.mean_probability[np.arange(len(mean)), mean]
    for i, track in enumerate(tally.song_ids):
        writer.writerow([track, classes[scores.truth[i]], int(tally.n_slices[i]), classes[majority[i]],
                         f"{majority_share[i]:.4f}", classes[mean[i]], f"{mean_probability[i]:.4f}"])
    return buffer.getvalue()

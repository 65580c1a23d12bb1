"""Progress displays of training, evaluation and prediction: the command line's, and the Python API's
``verbose=1`` (see :mod:`genreslice.pipeline.progress`). No TensorFlow here: the command line loads it later."""
from __future__ import annotations

import sys

from genreslice.pipeline.progress import ProgressBar

__all__ = ["EvaluateProgress", "PredictProgress", "TrainProgress"]


class TrainProgress(ProgressBar):
    """A :class:`~genreslice.training.callbacks.TrainObserver` that prints what the run is and one line per
    finished epoch, with a bar over each epoch's batches unless ``bars`` is False (Keras's ``verbose`` 1 and 2)."""

    def __init__(self, *, bars: bool = True) -> None:
        super().__init__(enabled=bars)
        self.epochs = 0

    def on_run_start(self, summary: dict) -> None:
        self.epochs = summary["epochs"]
        start = "continuing at" if summary["resumed"] else "starting at"
        print(f"Training {summary['model']} on {summary['n_train']} slices, validating on {summary['n_validation']}; "
              f"{summary['batches']} batches per epoch, {start} epoch {summary['first_epoch']} of at most "
              f"{summary['epochs']}.", flush=True)
        if len(summary["devices"]) > 1:
            print(f"Replicas on {len(summary['devices'])} devices (MirroredStrategy), {summary['batch_size']} slices "
                  f"per step: {', '.join(summary['devices'])}.", flush=True)
        if summary.get("multilabel"):
            print("A multi-label data set: a sigmoid per tag, binary cross-entropy, scored by ROC-AUC; no target "
                  "rule and no class weights (--target-accuracy, --target-loss and --class-weights do not apply).",
                  flush=True)

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        self.open(n_batches, f"epoch {epoch}/{self.epochs}", "batch", leave=False)

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if "loss" in logs and "accuracy" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", accuracy=f"{float(logs['accuracy']):.4f}",
                                     refresh=False)

    def on_epoch_end(self, row: dict) -> None:
        self.close()

        def shown(key: str) -> str:
            return "-" if row.get(key) is None else f"{row[key]:.4f}"

        if "val_roc_auc" in row:  # a multi-label run: its accuracy is over (slice, tag) pairs, ROC-AUC is its score
            print(f"epoch {row['epoch']}/{self.epochs}: loss {shown('loss')}, ROC-AUC {shown('roc_auc')}; "
                  f"validation loss {shown('val_loss')}, ROC-AUC {shown('val_roc_auc')} ({row['seconds']:.1f} s)",
                  flush=True)
            return
        print(f"epoch {row['epoch']}/{self.epochs}: loss {shown('loss')}, accuracy {shown('accuracy')}; "
              f"validation loss {shown('val_loss')}, accuracy {shown('val_accuracy')} ({row['seconds']:.1f} s)",
              flush=True)


class EvaluateProgress(ProgressBar):
    """An :class:`~genreslice.training.evaluate.EvaluateObserver` drawing a bar over the model's batches."""

    def on_start(self, n_slices: int, n_batches: int) -> None:
        self.open(n_batches, f"{n_slices} slices", "batch", leave=False)

    def on_batch_end(self, batch: int) -> None:
        self.advance()


class PredictProgress(ProgressBar):
    """A :class:`~genreslice.training.predict.PredictObserver` drawing a bar over the input files (on standard
    error); :meth:`write` prints result lines around it."""

    def on_start(self, n_files: int) -> None:
        self.open(n_files, "files", "file", leave=False)

    def on_song(self, song) -> None:
        self.advance()

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

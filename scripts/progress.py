"""Progress bars: one tqdm bar at a time, and the observers that draw them for build, train, evaluate and predict."""
from __future__ import annotations

import collections
import sys

from tqdm import tqdm

from genreslice.pipeline.build import BuildObserver
from genreslice.pipeline.tracks import TrackRow


class ProgressBar:
    """One tqdm bar at a time, opened anew for each stage and closed when the work ends or fails."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None
        # No monitor thread: bars update per item anyway, and a single-threaded process can fork its workers.
        tqdm.monitor_interval = 0

    def open(self, total: int, desc: str, unit: str, **options) -> None:
        self.close()
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=not self.enabled, dynamic_ncols=True, **options)

    def advance(self, count: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TqdmObserver(ProgressBar, BuildObserver):
    """Progress bars with ETA and running per-status counts."""

    def __init__(self, *, enabled: bool = True) -> None:
        super().__init__(enabled=enabled)
        self.counts: collections.Counter[str] = collections.Counter()

    def on_labels_start(self, total: int) -> None:
        self.open(total, "labels", "file", smoothing=0.05)

    def on_labelled(self, count: int) -> None:
        self.advance(count)

    def on_start(self, total: int) -> None:
        self.open(total, "tracks", "track", smoothing=0.05)

    def on_track_done(self, row: TrackRow) -> None:
        self.counts[row.status] += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(ok=self.counts["ok"], failed=self.counts["failed"], skipped=self.counts["skipped"],
                                 too_short=self.counts["too_short"], refresh=False)


class TqdmTrainObserver(ProgressBar):
    """A bar over each epoch's batches, and one printed line per finished epoch."""

    def __init__(self, *, enabled: bool = True) -> None:
        super().__init__(enabled=enabled)
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

        print(f"epoch {row['epoch']}/{self.epochs}: loss {shown('loss')}, accuracy {shown('accuracy')}; "
              f"validation loss {shown('val_loss')}, accuracy {shown('val_accuracy')} ({row['seconds']:.1f} s)",
              flush=True)


class TqdmEvaluateObserver(ProgressBar):
    """A bar over the model's batches."""

    def on_start(self, n_slices: int, n_batches: int) -> None:
        self.open(n_batches, f"{n_slices} slices", "batch", leave=False)

    def on_batch_end(self, batch: int) -> None:
        self.advance()


class TqdmPredictObserver(ProgressBar):
    """A bar over the input files, on standard error; result lines are written around it."""

    def on_start(self, n_files: int) -> None:
        self.open(n_files, "files", "file", leave=False)

    def on_song(self, song) -> None:
        self.advance()

    def write(self, line: str) -> None:
        if self.bar is not None and not self.bar.disable:
            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)

"""Progress bars: the command line's, and those the Python API draws when asked (``verbose=1``).

The API is quiet by default: :func:`~genreslice.pipeline.build.build_dataset`,
:func:`~genreslice.training.train.train_model`, :func:`~genreslice.training.evaluate.evaluate_model` and
:func:`~genreslice.training.predict.classify` print nothing unless given ``verbose=1`` (or an observer of one's
own). Bars are ``tqdm.auto``'s: a widget in a Jupyter notebook, text in a terminal.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import numbers

import numpy as np

from genreslice.errors import ParameterError

__all__ = ["BuildProgress", "ObserverGroup", "ProgressBar", "check_verbose", "observed"]


def check_verbose(verbose: int, allowed: tuple[int, ...] = (0, 1)) -> int:
    """``verbose`` as given; refused unless it is one of ``allowed`` (``True``/``False`` count as 1/0)."""
    if isinstance(verbose, (numbers.Integral, np.bool_)) and int(verbose) in allowed:
        return int(verbose)
    raise ParameterError(f"verbose must be one of {', '.join(map(str, allowed))} (0: silent), not {verbose!r}")


@functools.cache
def _bar_class() -> type:
    """``tqdm.auto``'s bar without tqdm's monitor thread: the bars update per item anyway, and a process with a
    single thread forks its build workers (:func:`~genreslice.pipeline.executors.process_pool`). A subclass, so the
    setting is not changed for anyone else's bars."""
    from tqdm.auto import tqdm

    class Bar(tqdm):
        monitor_interval = 0

    return Bar


class ProgressBar:
    """One tqdm bar at a time, opened anew for each stage and closed when the work ends or fails.

    tqdm is imported when the first enabled bar opens: in a Jupyter kernel without ipywidgets, importing
    ``tqdm.auto`` warns, which a quiet API must not do until a bar is asked for. Disabled, nothing is drawn.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bar = None

    def open(self, total: int, desc: str, unit: str, **options) -> None:
        self.close()
        if self.enabled:
            self.bar = _bar_class()(total=total, desc=desc, unit=unit, dynamic_ncols=True, **options)

    def advance(self, count: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class BuildProgress(ProgressBar):
    """A :class:`~genreslice.pipeline.build.BuildObserver` drawing bars with ETA and running per-status counts."""

    def __init__(self, *, enabled: bool = True) -> None:
        super().__init__(enabled=enabled)
        self.counts: collections.Counter[str] = collections.Counter()

    def on_labels_start(self, total: int) -> None:
        self.open(total, "labels", "file", smoothing=0.05)

    def on_labelled(self, count: int) -> None:
        self.advance(count)

    def on_start(self, total: int) -> None:
        self.open(total, "tracks", "track", smoothing=0.05)

    def on_track_done(self, row) -> None:
        self.counts[row.status] += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(ok=self.counts["ok"], failed=self.counts["failed"], skipped=self.counts["skipped"],
                                 too_short=self.counts["too_short"], refresh=False)


class ObserverGroup:
    """Passes each event to every observer that has a method for it (an observer of one's own and a bar)."""

    def __init__(self, *observers) -> None:
        self.observers = [observer for observer in observers if observer is not None]

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def call(*args, **kwargs) -> None:
            for observer in self.observers:
                method = getattr(observer, name, None)
                if callable(method):
                    method(*args, **kwargs)

        return call


@contextlib.contextmanager
def observed(observer, progress: ProgressBar | None):
    """The observer to hand the work: ``observer`` (one's own, or None) and ``progress`` (the bars of ``verbose``, or
    None) together; the bars are closed when the block ends, however it ends."""
    try:
        yield ObserverGroup(observer, progress)
    finally:
        if progress is not None:
            progress.close()

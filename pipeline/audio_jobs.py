"""The audio work of a build, one track at a time: the job a worker runs, and the runner that keeps workers fed.

:func:`process_track` is what a worker process (or a Dask worker) runs for one track: SoX spectrogram, slices,
PNGs, then one rename into the final layout. :class:`AudioJobRunner` feeds the executor from the build's queue,
a bounded window at a time, restarts a pool whose worker died and isolates the tracks that may have killed it.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import itertools
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreslice.pipeline import layout
from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.errors import OutputError, SoxError, WorkerDiedError
from genreslice.pipeline.duplicates import file_sha256
from genreslice.pipeline.executors import MAX_WORKER_DEATHS, ExecutorFactory, TaskWindow, kill_workers, process_pool
from genreslice.pipeline.fingerprint import Fingerprint, compute_fingerprint, row_frequencies
from genreslice.pipeline.journal import JournalRecord
from genreslice.pipeline.png import write_slice_png
from genreslice.pipeline.spectrogram import SpectrogramSpec, render_slices, too_short_reason
from genreslice.pipeline.tracks import TrackRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackJob:
    """The audio work for one track; small and picklable, sent to a worker process."""

    track_id: str
    path: str
    out_dir: str
    spec: SpectrogramSpec
    sox_path: str
    timeout_s: float
    columns_per_second: float
    fingerprint: bool = True


@dataclass(frozen=True)
class AudioOutcome:
    """What a worker reports back: ``status`` is ``ok``, ``failed`` or ``too_short``.

    ``slice_bytes`` is the size of each slice PNG written (a later run checks them to find damaged slices);
    ``transient`` marks a failure that says nothing about the file's content (see :class:`SoxError`), tried again
    by the next run. A built track also brings its file's SHA-256 (empty if the file could not be read again) and
    its fingerprint's record (:meth:`~genreslice.pipeline.fingerprint.Fingerprint.to_json`).
    """

    status: str
    reason: str = ""
    n_slices: int = 0
    duration_s: float | None = None
    slice_bytes: tuple[int, ...] = ()
    transient: bool = False
    sha256: str = ""
    fingerprint: dict | None = None


def process_track(job: TrackJob) -> AudioOutcome:
    """Worker entry point: spectrogram, slices, PNGs, then one rename into the final layout.

    Per-file audio problems come back as a ``failed`` or ``too_short`` outcome; only problems with the
    output folder (full disk, permissions) raise, because they would fail every other track too.
    """
    try:
        # Opened here first, so that a file we may not read (permissions, a lost network share) is told apart
        # from one SoX rejects: the first kind is tried again by the next run, the second is not.
        descriptor = os.open(job.path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.read(descriptor, 1)
        finally:
            os.close(descriptor)
    except OSError as err:
        return AudioOutcome("failed", reason=f"cannot read the file: {err.strerror or err}", transient=True)
    try:
        audio = render_slices(job.path, job.spec, sox_path=job.sox_path, timeout_s=job.timeout_s)
    except SoxError as err:
        return AudioOutcome("failed", reason=str(err), transient=err.transient)
    if len(audio.slices) == 0:
        return AudioOutcome("too_short", reason=too_short_reason(audio.duration_s,
                                                                  job.spec.slice_seconds(job.columns_per_second)),
                            duration_s=audio.duration_s)
    out = Path(job.out_dir)
    # Unique per process and machine: on a cluster, a task given up on a worker that was only unreachable may
    # still be running there while its retry runs elsewhere.
    scratch = out / layout.STATE_DIR / "tmp" / f"{job.track_id}.{socket.gethostname()}.{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    sizes = tuple(write_slice_png(pixels, scratch / layout.slice_name(job.track_id, index))
                  for index, pixels in enumerate(audio.slices))
    layout.replace_folder(scratch, out / layout.track_slice_dir(job.track_id))
    if not job.fingerprint:
        return AudioOutcome("ok", reason=audio.truncation_note(), n_slices=len(audio.slices),
                            duration_s=audio.duration_s, slice_bytes=sizes)
    return AudioOutcome("ok", reason=audio.truncation_note(), n_slices=len(audio.slices), duration_s=audio.duration_s,
                        slice_bytes=sizes, sha256=file_sha256(job.path) or "",
                        fingerprint=track_fingerprint(audio.slices, job.spec, job.columns_per_second).to_json())


def track_fingerprint(slices: np.ndarray, spec: SpectrogramSpec, columns_per_second: float) -> Fingerprint:
    """The fingerprint of a track's slices rendered with ``spec`` (see :mod:`genreslice.pipeline.fingerprint`)."""
    row_hz = row_frequencies(features=spec.features, slice_size=spec.slice_size, sample_rate=spec.sample_rate,
                             fmin=spec.mel.fmin, fmax=spec.mel.fmax)
    return compute_fingerprint(slices, row_hz=row_hz, columns_per_second=columns_per_second)


class AudioJobRunner:
    """The audio work on a pool fed from a queue: :meth:`run` yields each track's journal record as it completes.

    At most a few tasks per worker are in flight, so memory stays flat whatever the number of tracks. If a
    worker process dies (killed, out of memory), the pool is restarted and the tracks it may have been
    running are retried one at a time, so a death is only charged to the track that was running alone; a
    track at ``MAX_WORKER_DEATHS`` deaths is recorded as failed. ``executor_factory`` makes the pools after the
    first. A Dask executor never breaks: Dask reschedules a dead worker's tasks itself and reports a track that
    killed its workers as :class:`WorkerDiedError`.
    """

    def __init__(self, pending: Iterator[tuple[TrackRow, AudioFile]], *, out: Path, sox_path: str,
                 columns_per_second: float, spec: SpectrogramSpec, workers: int, timeout_s: float,
                 executor_factory: ExecutorFactory, fingerprint: bool = True) -> None:
        self._fingerprint = fingerprint
        self._pending = pending
        self._out = out
        self._out_abs = os.fspath(out.absolute())
        self._sox_path = sox_path
        self._columns_per_second = columns_per_second
        self._spec = spec
        self._workers = workers
        self._timeout_s = timeout_s
        self._executor_factory = executor_factory
        self._queue: collections.deque[tuple[TrackRow, AudioFile]] = collections.deque()
        self._suspects: collections.deque[tuple[TrackRow, AudioFile]] = collections.deque()
        self._deaths: collections.Counter[str] = collections.Counter()
        self._broken = False  # the current round's pool broke

    def run(self, executor: cf.Executor | None) -> Iterator[JournalRecord]:
        """Render every pending track; ``executor`` runs the first round and is shut down here."""
        while True:
            isolating = bool(self._suspects)
            if executor is None:
                # Isolation needs a real process, whatever ran the first round: the suspect may kill it.
                executor = process_pool(1) if isolating else self._executor_factory(self._workers)
            yield from self._round(executor, isolating=isolating)
            executor = None
            if self._broken:
                logger.warning("a worker process died; retrying the tracks it may have been running, one at a time")
            elif not isolating:
                return

    def _round(self, executor: cf.Executor, *, isolating: bool) -> Iterator[JournalRecord]:
        """Run tracks on one pool until none is left to run on it: the queue's, or, ``isolating``, the suspects
        one at a time; stop submitting when the pool breaks."""
        source = self._suspects if isolating else self._queue
        window: TaskWindow[tuple[TrackRow, AudioFile]] = TaskWindow(
            limit=1 if isolating else self._workers * 4, ordered=False)
        self._broken = False
        with executor:
            try:
                while True:
                    if not self._broken:
                        self._fill(window, source, executor)
                    if not window:
                        break
                    for item, future in window.finished():
                        outcome = self._outcome(item, future, isolating=isolating)
                        if outcome is not None:
                            yield finished_record(*item, outcome)
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM) or failed: stop the workers and their SoX now, not after their
                # current tracks; finished tracks are in the journal already.
                kill_workers(executor)
                executor.shutdown(wait=False, cancel_futures=True)
                raise

    def _fill(self, window: TaskWindow, source: collections.deque, executor: cf.Executor) -> None:
        """Submit tracks from ``source`` until the window is full; the queue takes from the pending tracks only
        what the window has room for."""
        if source is self._queue:
            self._queue.extend(itertools.islice(self._pending, max(0, window.limit - len(window) - len(self._queue))))
        try:
            window.fill(source, functools.partial(self._submit, executor))
        except cf.BrokenExecutor:  # the pool broke (e.g. while reading labels): not this track
            self._broken = True

    def _submit(self, executor: cf.Executor, item: tuple[TrackRow, AudioFile]) -> cf.Future:
        row, audio = item
        return executor.submit(process_track, TrackJob(
            track_id=row.track_id, path=os.fspath(audio.path.absolute()), out_dir=self._out_abs, spec=self._spec,
            sox_path=self._sox_path, timeout_s=self._timeout_s, columns_per_second=self._columns_per_second,
            fingerprint=self._fingerprint))

    def _outcome(self, item: tuple[TrackRow, AudioFile], future: cf.Future, *, isolating: bool) -> AudioOutcome | None:
        """The finished task's outcome; None when its worker died and the track is to run again on its own."""
        row, _ = item
        try:
            return future.result()
        except cf.BrokenExecutor:
            self._broken = True
            if not isolating:
                self._suspects.append(item)
                return None
            self._deaths[row.path] += 1
            if self._deaths[row.path] < MAX_WORKER_DEATHS:
                self._suspects.appendleft(item)
                return None
            reason = f"the worker process died {self._deaths[row.path]} times on this track"
            return AudioOutcome("failed", reason=reason, transient=True)
        except WorkerDiedError as err:  # Dask: it rescheduled the track and gave up
            return AudioOutcome("failed", reason=str(err), transient=True)
        except OSError as err:
            raise OutputError(f"cannot write slices of {row.path} under {self._out}: {err}") from err


def finished_record(row: TrackRow, audio: AudioFile, outcome: AudioOutcome) -> JournalRecord:
    """The planned row with its audio outcome, and what the journal keeps besides (see :class:`JournalRecord`)."""
    finished = row.with_outcome(status=outcome.status, reason=outcome.reason, n_slices=outcome.n_slices,
                                duration_s="" if outcome.duration_s is None else f"{outcome.duration_s:.2f}")
    return JournalRecord(row=finished, size=audio.size, mtime_ns=audio.mtime_ns, slice_bytes=outcome.slice_bytes,
                         transient=outcome.transient, sha256=outcome.sha256 or None,
                         fingerprint=outcome.fingerprint)

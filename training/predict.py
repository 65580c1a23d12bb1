"""``genreslice predict``: the genre of audio files, by slice voting, straight from audio.

Each file is rendered with SoX (and, for a ``mel`` data set, librosa) and cut into slices in memory, with the
spectrogram settings recorded in the model's ``model.json`` (those of the data set it was trained on: its
representation, ``sox`` or ``mel``, and every setting of it), so a song is seen exactly as the build would have
sliced it; no PNG is written. SoX runs in a pool of threads (``workers``) while the model
classifies the slices of many songs per call.

>>> from genreslice.training.predict import classify
>>> for song in classify(["music/"], "model/"):                      # doctest: +SKIP
...     print(song.path, song.genre if song.ok else song.reason)
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import math
import os
import subprocess
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreslice.pipeline.discovery import AUDIO_EXTENSIONS, scan_audio
from genreslice.pipeline.errors import AudioFolderError, ParameterError, SoxError
from genreslice.pipeline.executors import TaskWindow, done_future
from genreslice.pipeline.layout import DATASET_JSON
from genreslice.pipeline.png import to_model_input
from genreslice.pipeline.progress import check_verbose, observed
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.slicing import slice_spectrogram
from genreslice.pipeline.spectrogram import (
    SOX_MAX_COLUMNS,
    SOX_TIMEOUT_S,
    AudioSlices,
    SpectrogramSpec,
    prepare_rendering,
    render_spectrogram,
    too_short_reason,
)
from genreslice.training.errors import ModelDirError
from genreslice.training.model_dir import MODEL_JSON, load_trained_model, unfinished_training_note
from genreslice.training.progress import PredictProgress
from genreslice.training.settings import INFERENCE_BATCH_SIZE
from genreslice.training.tagging import DEFAULT_THRESHOLD, recorded_thresholds
from genreslice.training.tensorflow_runtime import retracing_warnings_held
from genreslice.training.voting import check_vote, vote_songs

logger = logging.getLogger(__name__)

OK, FAILED, TOO_SHORT = "ok", "failed", "too_short"


@dataclass(frozen=True)
class SongPrediction:
    """The verdict on one input file.

    Attributes
    ----------
    path : str
        The file as given, or as found under a given folder; undecodable bytes of a name shown as ``\\xNN``.
    status : str
        ``"ok"``; ``"failed"`` (unreadable, not audio, missing); ``"too_short"`` (not one spectrogram column of
        audio). A clip shorter than one slice is repeated to fill one and classified: ``ok``, with a note.
    reason : str
        Why it failed; for an ``ok`` file, a caution (a clip padded to one slice, the truncation of a very long
        file), else empty.
    genre : str or None
        The predicted genre under ``vote``; None unless ``ok``, and None when ``unsure``.
    vote : str
        ``"majority"`` or ``"mean"``.
    vote_share : float or None
        Fraction of the slices whose most probable genre is ``genre``.
    n_slices : int
        Slices classified.
    duration_s : float or None
        Length of the audio SoX decoded.
    votes : dict
        Genre -> slices voting for it, every class of the model.
    mean_probability : dict
        Genre -> probability averaged over the slices, every class of the model.
    best_guess : str or None
        The winning genre under ``vote`` even when it is not sure enough to be ``genre``; None unless ``ok``.
    min_share : float
        The threshold asked for: below it the answer is ``unsure``; 0 (the default) never is.
    unsure : bool
        The best guess's score (:attr:`score`) is below ``min_share``: ``genre`` is None, the scores stay.
    tags : tuple of str or None
        A multi-label model's answer: the tags whose mean probability reaches their threshold (tuned on the
        validation split, in ``model.json``), most probable first; ``genre`` is then None, ``vote`` is ``mean`` and
        ``votes`` is empty. None for a single-label model.
    """

    path: str
    status: str
    reason: str = ""
    genre: str | None = None
    vote: str = "majority"
    vote_share: float | None = None
    n_slices: int = 0
    duration_s: float | None = None
    votes: dict[str, int] = field(default_factory=dict)
    mean_probability: dict[str, float] = field(default_factory=dict)
    best_guess: str | None = None
    min_share: float = 0.0
    unsure: bool = False
    tags: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        """True when the file was classified."""
        return self.status == OK

    @property
    def score(self) -> float | None:
        """The best guess's score under ``vote``: its share of the slices (majority) or its mean probability
        (mean); None unless ``ok``."""
        if not self.ok or self.best_guess is None:
            return None
        return self.vote_share if self.vote == "majority" else self.mean_probability[self.best_guess]

    def scores(self) -> dict[str, float]:
        """Genre -> the score ``vote`` ranks by: share of the slices (majority) or mean probability (mean)."""
        if self.vote == "mean":
            return dict(self.mean_probability)
        return {name: round(count / self.n_slices, 4) for name, count in self.votes.items()} if self.n_slices else {}

    def top(self, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` genres ranked as ``vote`` ranks them, best first, each with its score (see :meth:`scores`).

        Majority: by votes, a tie by mean probability; mean: by mean probability. The best guess comes first,
        then the order of the classes breaks what ties remain.
        """
        order = list(self.mean_probability)
        by_votes = self.vote == "majority"

        def rank(name: str) -> tuple:
            votes = -self.votes.get(name, 0) if by_votes else 0
            return name != self.best_guess, votes, -self.mean_probability[name], order.index(name)

        ranked = sorted(order, key=rank)
        scores = self.scores()
        return [(name, scores[name]) for name in ranked[:count]]

    def to_dict(self) -> dict:
        """JSON-ready fields; ``min_share``, ``unsure`` and ``best_guess`` only when a threshold was asked for. A
        multi-label prediction has ``tags`` (a list; empty unless ``ok``) in place of the genre and its votes."""
        if self.tags is not None:
            return {"path": self.path, "status": self.status, "reason": self.reason, "tags": list(self.tags),
                    "n_slices": self.n_slices, "duration_s": self.duration_s,
                    "mean_probability": dict(self.mean_probability)}
        fields = {"path": self.path, "status": self.status, "reason": self.reason, "genre": self.genre,
                  "vote": self.vote, "vote_share": self.vote_share, "n_slices": self.n_slices,
                  "duration_s": self.duration_s, "votes": dict(self.votes),
                  "mean_probability": dict(self.mean_probability)}
        if self.min_share > 0:
            fields.update(min_share=self.min_share, unsure=self.unsure, best_guess=self.best_guess)
        return fields


@dataclass(frozen=True)
class _PaddedSlices(AudioSlices):
    """A clip shorter than one slice, repeated to fill one; ``note`` says so in its record."""

    note: str = ""


@dataclass(frozen=True)
class AudioInput:
    """One file to classify: where it is, how to show it, and why it cannot be read (empty if it can)."""

    path: Path
    shown: str
    problem: str = ""


def display_path(path: str | os.PathLike) -> str:
    """A path as text that any output accepts: bytes that are not UTF-8 are shown as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def collect_audio(paths: Iterable[str | os.PathLike]) -> list[AudioInput]:
    """The files to classify, in the order given; folders are searched recursively (sorted by path).

    A path that does not exist, a folder without audio files, or a folder (or subfolder) that cannot be read
    becomes an input with a ``problem`` so it is reported like any failed file. A file reached twice is
    classified once.
    """
    found: list[AudioInput] = []
    seen: set[str] = set()

    def add(item: AudioInput) -> None:
        real = os.path.realpath(item.path)
        if item.problem or real not in seen:
            seen.add(real)
            found.append(item)

    for given in paths:
        path = Path(given)
        try:
            if path.is_dir():
                scan = scan_audio(path)
                if not scan.files and not scan.unreadable:
                    extensions = ", ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS))
                    add(AudioInput(path, display_path(given), f"no audio files ({extensions}) in this folder"))
                # A folder that cannot be read is reported in its place among the files, not dropped.
                entries = [*((audio.rel_path, AudioInput(audio.path, display_path(audio.path), audio.problem))
                             for audio in scan.files),
                           *((folder, AudioInput(path / folder, display_path(path / folder),
                                                 f"cannot read this folder: {reason}"))
                             for folder, reason in scan.unreadable.items())]
                for _, item in sorted(entries, key=lambda entry: entry[0]):
                    add(item)
            elif path.is_file():
                add(AudioInput(path, display_path(given)))
            elif os.path.lexists(path):
                add(AudioInput(path, display_path(given), "not a regular file or folder (a broken link?)"))
            else:
                add(AudioInput(path, display_path(given), "no such file or folder"))
        except AudioFolderError as err:  # the folder itself cannot be read
            reason = getattr(err.__cause__, "strerror", None) or err
            add(AudioInput(path, display_path(given), f"cannot read this folder: {reason}"))
        except OSError as err:  # a name too long, a folder that cannot be entered
            add(AudioInput(path, display_path(given), f"cannot be examined: {err.strerror or err}"))
    return found


class PredictObserver:
    """Hooks for progress display; the default does nothing."""

    def on_start(self, n_files: int) -> None:
        """``n_files`` files were found to classify."""

    def on_song(self, song: SongPrediction) -> None:
        """One file's record is ready (files come in input order)."""


class SoxProcesses:
    """The SoX processes a prediction (or one request to ``genreslice serve``) has running, so that stopping
    early (Ctrl-C, a generator closed before its end, a request past its time limit) kills them instead of
    waiting for each to finish: SoX runs in its own process group, out of the terminal's reach, and may take
    minutes on a long file. Thread-safe: the decoding threads register, the stopping thread kills."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()
        self._stopped = False

    def started(self, process: subprocess.Popen) -> None:
        """``process`` runs; killed at once if :meth:`stop` was called already."""
        with self._lock:
            if self._stopped:
                process.kill()
            else:
                self._running.add(process)

    def finished(self, process: subprocess.Popen) -> None:
        """``process`` has ended."""
        with self._lock:
            self._running.discard(process)

    def stop(self) -> None:
        """Kill every running SoX, and any started from now on."""
        with self._lock:
            self._stopped = True
            for process in self._running:
                if process.poll() is None:
                    process.kill()
            self._running.clear()


class Classifier:
    """A trained model ready to classify audio files; load once, classify many times.

    Parameters
    ----------
    model_dir : str or os.PathLike
        A folder made by ``genreslice train``.
    batch_size : int
        Most slices per model call; the slices of several songs share a call.
    sox_path : str
        The SoX executable.
    timeout_s : float
        Seconds SoX may spend on one file before it is reported as failed.

    Attributes
    ----------
    classes : tuple of str
        The model's genres, in output order.
    spec : SpectrogramSpec
        How audio is sliced: the settings of the data set the model was trained on.
    notes : tuple of str
        Cautions to show the user: an unfinished training run, another SoX version than the data set's.

    Raises
    ------
    ModelDirError
        The model folder is missing, damaged, or records no usable spectrogram settings.
    SoxUnavailableError
        SoX is missing or cannot read MP3.
    """

    def __init__(self, model_dir: str | os.PathLike, *, batch_size: int = INFERENCE_BATCH_SIZE,
                 sox_path: str = "sox", timeout_s: float = SOX_TIMEOUT_S) -> None:
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size} must be at least 1")
        if not timeout_s > 0:
            raise ParameterError(f"timeout_s={timeout_s} must be more than 0")
        self.sox = find_sox(executable=sox_path)
        self.trained = load_trained_model(model_dir)
        recorded = self.trained.record.get("spectrogram")
        try:
            self.spec = SpectrogramSpec.from_dict(recorded)
        except ParameterError as err:
            raise ModelDirError(f"{self.trained.model_dir / MODEL_JSON}: {err}") from err
        for key in ("columns_per_second", "slice_seconds"):
            value = recorded.get(key)
            # Measured by the build; where a record lacks them, pixels_per_second stands in.
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value) and value > 0):
                raise ModelDirError(
                    f"{self.trained.model_dir / MODEL_JSON}: spectrogram.{key}={value!r} must be a number above 0. "
                    "Restore the file from a backup, or copy the value from the 'spectrogram' block of the data "
                    f"set's {DATASET_JSON}"
                )
        columns_per_second = (recorded.get("columns_per_second") or self.spec.columns_per_second()
                              or self.spec.pixels_per_second)
        self.slice_seconds = float(recorded.get("slice_seconds") or self.spec.slice_seconds(columns_per_second))
        self.classes = self.trained.classes
        #: A multi-label model answers with tags: those whose mean probability reaches their threshold.
        self.multilabel = self.trained.record.get("task") == "multilabel"
        self.thresholds, tuned = recorded_thresholds(self.trained.record, list(self.classes))
        self.batch_size = int(batch_size)
        self.timeout_s = float(timeout_s)
        notes = [unfinished_training_note(self.trained.record)]
        if self.multilabel and not tuned:
            why = ("its training has not finished" if self.trained.record.get("status") != "finished"
                   else "its thresholds are missing or damaged")
            notes.append(f"{MODEL_JSON} records no usable tag thresholds ({why}): tags are given at probability "
                         f"{DEFAULT_THRESHOLD} and above")
        if recorded.get("sox_version") not in (None, self.sox.version):
            notes.append(f"the model's data set was built with SoX {recorded['sox_version']}, this is SoX "
                         f"{self.sox.version}; spectrograms may differ slightly")
        self.notes = tuple(note for note in notes if note)
        try:
            prepare_rendering(self.spec)  # here, not in each of the decoding threads at once
        except ParameterError as err:
            raise ModelDirError(f"{self.trained.model_dir / MODEL_JSON}: {err}") from err

    def classify(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, *, vote: str = "majority",
                 workers: int = 1, min_share: float = 0.0, observer: PredictObserver | None = None,
                 verbose: int = 0) -> list[SongPrediction]:
        """Classify files and folders; one record per file, in input order. See :meth:`iter_classify`."""
        return list(self.iter_classify(paths, vote=vote, workers=workers, min_share=min_share, observer=observer,
                                       verbose=verbose))

    def iter_classify(self, paths: Iterable[str | os.PathLike] | str | os.PathLike, *, vote: str = "majority",
                      workers: int = 1, min_share: float = 0.0, observer: PredictObserver | None = None,
                      verbose: int = 0) -> Iterator[SongPrediction]:
        """Yield one :class:`SongPrediction` per file as soon as its batch is classified, in input order.

        Parameters
        ----------
        paths : path or iterable of paths
            Audio files (any format SoX reads) and folders (searched recursively for audio extensions).
        vote : str
            ``"majority"`` (each slice votes for its top genre; ties go to the higher mean probability, then
            the first genre) or ``"mean"`` (highest mean probability).
        workers : int
            SoX processes decoding at once.
        min_share : float
            In [0, 1]. A file whose best guess scores below it (its share of the slices under majority, its mean
            probability under mean) is ``unsure``: ``genre`` None, ``best_guess`` and the scores kept. 0: never.
        observer : PredictObserver, optional
            Told of the number of files, then of each record.
        verbose : {0, 1}
            1: a progress bar over the files (a widget in a notebook). 0 (the default): print nothing.

        A clip shorter than one slice is repeated to fill one slice and classified, with a note in its
        ``reason``. A file that cannot be read or holds no audio gets a record with its reason; the rest go on.
        """
        if workers < 1:
            raise ParameterError(f"workers={workers} must be at least 1")
        min_share = self.check_options(vote=vote, min_share=min_share)
        progress = PredictProgress() if check_verbose(verbose) else None
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        inputs = collect_audio(paths)
        with observed(observer, progress) as observers:
            yield from self._classified(inputs, vote, workers, min_share, observers)

    def check_options(self, *, vote: str, min_share: float) -> float:
        """Check the voting options of :meth:`iter_classify` for this model; returns ``min_share`` as a float.

        Raises
        ------
        ParameterError
            An unknown ``vote``; a ``min_share`` outside [0, 1], or above 0 for a multi-label model.
        """
        check_vote(vote)
        if isinstance(min_share, bool) or not (isinstance(min_share, (int, float)) and 0 <= min_share <= 1):
            raise ParameterError(f"min_share={min_share!r} must be a number from 0 to 1")
        if self.multilabel and min_share > 0:
            raise ParameterError("--min-share applies to single-label models: a multi-label model answers with the "
                                 "tags whose probability reaches their threshold (in model.json)")
        return float(min_share)

    def _classified(self, inputs: list[AudioInput], vote: str, workers: int, min_share: float,
                    observer: PredictObserver) -> Iterator[SongPrediction]:
        """:meth:`iter_classify` of the checked arguments."""
        observer.on_start(len(inputs))
        waiting: list[tuple[AudioInput, AudioSlices | SongPrediction]] = []
        waiting_slices = 0
        with contextlib.closing(self._decoded(inputs, vote, workers)) as decoded:
            for item, outcome, more in decoded:
                waiting.append((item, outcome))
                if isinstance(outcome, AudioSlices):
                    waiting_slices += len(outcome.slices)
                # Classify once a batch is full; report failures at once when no song waits before them;
                # and never hold more than a batch of files, whatever they hold.
                if waiting_slices >= self.batch_size or not more or not waiting_slices \
                        or len(waiting) >= self.batch_size:
                    for song in self._classify_waiting(waiting, vote, min_share):
                        observer.on_song(song)
                        yield song
                    waiting, waiting_slices = [], 0

    def _decoded(self, inputs: list[AudioInput], vote: str,
                 workers: int) -> Iterator[tuple[AudioInput, AudioSlices | SongPrediction, bool]]:
        """Decode ``inputs`` with SoX in ``workers`` threads; yield, in input order, each input with its slices (at
        least one) or the record of its failure, and whether more inputs follow.

        Closing the generator early (Ctrl-C, the caller stopped) cancels the decoding not started and kills the
        SoX processes running.
        """
        # Decode ahead of the model by a few songs per worker, so neither waits for the other.
        window: TaskWindow[AudioInput] = TaskWindow(limit=4 * workers + 4)
        upcoming = collections.deque(inputs)
        processes = SoxProcesses()
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genreslice-sox") as pool:

            def submit(item: AudioInput) -> cf.Future:
                if item.problem:
                    return done_future(self.decode(item, vote=vote))
                return pool.submit(self.decode, item, vote=vote, processes=processes)

            finished = False
            try:
                while True:
                    window.fill(upcoming, submit)
                    if not window:
                        break
                    for item, future in window.finished():
                        yield item, future.result(), bool(window or upcoming)
                finished = True
            finally:
                if not finished:  # stopped early: nothing queued or running is wanted any more
                    window.cancel()
                    processes.stop()

    def decode(self, item: AudioInput, *, vote: str = "majority",
               processes: SoxProcesses | None = None) -> AudioSlices | SongPrediction:
        """Decode one file with SoX into its slices, or the record of why it cannot be classified.

        Parameters
        ----------
        item : AudioInput
            The file, the name its record shows, and a problem found before decoding (then SoX does not run).
        vote : str
            The ``vote`` a failure's record names.
        processes : SoxProcesses, optional
            Where the SoX (and FFmpeg) processes are registered while they run, so another thread can kill them
            with :meth:`SoxProcesses.stop` (a killed SoX is reported as a failure). A private one by default.

        Returns
        -------
        AudioSlices or SongPrediction
            The slices, at least one (a clip shorter than one slice is repeated to fill it); or a record with
            status ``failed`` (SoX failed, timed out or was killed) or ``too_short``. Thread-safe: decoding
            threads call it at once.
        """
        if item.problem:
            return self._failure(item, FAILED, item.problem, vote)
        outcome = self._render(item, vote, processes if processes is not None else SoxProcesses())
        return self._too_short_as_failure(item, outcome, vote)

    def _too_short_as_failure(self, item: AudioInput, outcome: AudioSlices | SongPrediction,
                              vote: str) -> AudioSlices | SongPrediction:
        """``outcome``, or the record of a file too short for one slice when it decoded to none."""
        if isinstance(outcome, AudioSlices) and len(outcome.slices) == 0:
            reason = too_short_reason(outcome.duration_s, self.slice_seconds)
            return self._failure(item, TOO_SHORT, reason, vote, duration_s=outcome.duration_s)
        return outcome

    def _render(self, item: AudioInput, vote: str, processes: SoxProcesses) -> AudioSlices | SongPrediction:
        started: list[subprocess.Popen] = []

        def on_start(process: subprocess.Popen) -> None:
            started.append(process)
            processes.started(process)

        try:
            gray = render_spectrogram(item.path, self.spec, sox_path=self.sox.path, timeout_s=self.timeout_s,
                                      on_start=on_start)
        except SoxError as err:
            return self._failure(item, FAILED, str(err), vote)
        finally:
            for process in started:
                processes.finished(process)
        return self._sliced(gray)

    def _sliced(self, gray: np.ndarray) -> AudioSlices:
        """The slices of a spectrogram, as :func:`~genreslice.pipeline.spectrogram.render_slices` cuts them; a clip
        with less than one slice of columns (but at least one) is repeated to fill one slice.

        Repeating keeps the clip's spectrum and loudness, which is what the model learned from; padding with
        silence would fill most of the slice with an image no training slice (all music) looks like.
        """
        size, n_columns = self.spec.slice_size, gray.shape[1]
        duration_s = round(n_columns / self.spec.pixels_per_second, 2)
        if 0 < n_columns < size:
            filled = np.tile(gray, (1, -(-size // n_columns)))[:, :size]
            return _PaddedSlices(slices=slice_spectrogram(filled, size), duration_s=duration_s, truncated=False,
                                 note=f"padded: {too_short_reason(duration_s, self.slice_seconds)}; "
                                      "repeated to fill one slice")
        # As the build: the width gives the duration at the requested column rate (see render_slices).
        return AudioSlices(slices=slice_spectrogram(gray, size), duration_s=duration_s,
                           truncated=n_columns >= SOX_MAX_COLUMNS)

    def _failure(self, item: AudioInput, status: str, reason: str, vote: str, *,
                 duration_s: float | None = None) -> SongPrediction:
        if self.multilabel:
            return SongPrediction(path=item.shown, status=status, reason=reason, vote="mean", duration_s=duration_s,
                                  tags=())
        return SongPrediction(path=item.shown, status=status, reason=reason, vote=vote, duration_s=duration_s)

    def predict_slices(self, slices: np.ndarray) -> np.ndarray:
        """Class probabilities of ``uint8`` slices ``(n, size, size)``, in model calls of ``batch_size``."""
        outputs = []
        with retracing_warnings_held():
            for start in range(0, len(slices), self.batch_size):
                batch = to_model_input(slices[start : start + self.batch_size][..., None])
                outputs.append(np.asarray(self.trained.model.predict_on_batch(batch)))
        if not outputs:
            return np.empty((0, len(self.classes)), dtype=np.float32)
        return np.concatenate(outputs)

    def _classify_waiting(self, waiting: list[tuple[AudioInput, AudioSlices | SongPrediction]],
                          vote: str, min_share: float = 0.0) -> list[SongPrediction]:
        decoded = [outcome.slices for _, outcome in waiting if isinstance(outcome, AudioSlices)]
        probabilities = self.predict_slices(np.concatenate(decoded)) if decoded else None
        return self.predictions(waiting, probabilities, vote=vote, min_share=min_share)

    def predictions(self, decoded: Sequence[tuple[AudioInput, AudioSlices | SongPrediction]],
                    probabilities: np.ndarray | None, *, vote: str = "majority",
                    min_share: float = 0.0) -> list[SongPrediction]:
        """The records of decoded files, from the class probabilities of their slices.

        Parameters
        ----------
        decoded : sequence of (AudioInput, AudioSlices or SongPrediction)
            Files with what :meth:`decode` made of them; a failure's record is passed through as it is.
        probabilities : np.ndarray or None
            ``(n, len(classes))``: a row per slice of the decoded files, in their order (the output of
            :meth:`predict_slices` on their slices, concatenated); None when every file failed.
        vote, min_share
            As :meth:`iter_classify` takes them (checked there, or by :meth:`check_options`).

        Returns
        -------
        list of SongPrediction
            One record per file, in the order given.

        Raises
        ------
        ParameterError
            ``probabilities`` has not one row per slice and one column per class.
        """
        songs = [(position, outcome) for position, (_, outcome) in enumerate(decoded)
                 if isinstance(outcome, AudioSlices)]
        results = [outcome if isinstance(outcome, SongPrediction) else None for _, outcome in decoded]
        if not songs:
            return results
        n_slices = sum(len(outcome.slices) for _, outcome in songs)
        shape = np.shape(probabilities) if probabilities is not None else None
        if shape != (n_slices, len(self.classes)):
            raise ParameterError(f"probabilities of shape {shape} must have a row per slice and a column per class, "
                                 f"{(n_slices, len(self.classes))}")
        song_ids = np.repeat(np.arange(len(songs)), [len(outcome.slices) for _, outcome in songs])
        tally = vote_songs(np.asarray(probabilities), song_ids)
        if self.multilabel:
            for row, (position, outcome) in enumerate(songs):
                results[position] = self._tagged(decoded[position][0], outcome, tally.mean_probability[row],
                                                 int(tally.n_slices[row]))
            return results
        winners = tally.winners(vote)
        shares = tally.vote_share(winners)
        for row, (position, outcome) in enumerate(songs):
            winner = self.classes[winners[row]]
            # The unrounded score decides, so a threshold equal to a shown value does not flip on rounding.
            score = float(shares[row]) if vote == "majority" else float(tally.mean_probability[row, winners[row]])
            unsure = score < min_share
            note = outcome.note if isinstance(outcome, _PaddedSlices) else outcome.truncation_note()
            results[position] = SongPrediction(
                path=decoded[position][0].shown, status=OK, reason=note,
                genre=None if unsure else winner, vote=vote, vote_share=round(float(shares[row]), 4),
                n_slices=int(tally.n_slices[row]), duration_s=outcome.duration_s,
                votes={name: int(count) for name, count in zip(self.classes, tally.votes[row])},
                mean_probability={name: round(float(p), 4)
                                  for name, p in zip(self.classes, tally.mean_probability[row])},
                best_guess=winner, min_share=min_share, unsure=unsure,
            )
        return results

    def _tagged(self, item: AudioInput, outcome: AudioSlices, probability: np.ndarray,
                n_slices: int) -> SongPrediction:
        """A multi-label model's answer on one song: the tags at or above their thresholds, most probable first."""
        order = np.argsort(-probability, kind="mergesort")
        note = outcome.note if isinstance(outcome, _PaddedSlices) else outcome.truncation_note()
        return SongPrediction(
            path=item.shown, status=OK, reason=note, vote="mean", n_slices=n_slices, duration_s=outcome.duration_s,
            mean_probability={name: round(float(p), 4) for name, p in zip(self.classes, probability)},
            best_guess=self.classes[int(order[0])],
            tags=tuple(self.classes[k] for k in order if probability[k] >= self.thresholds[k]),
        )


def classify(paths: Iterable[str | os.PathLike] | str | os.PathLike, model_dir: str | os.PathLike, *,
             vote: str = "majority", workers: int = 1, batch_size: int = INFERENCE_BATCH_SIZE,
             min_share: float = 0.0, observer: PredictObserver | None = None,
             verbose: int = 0) -> list[SongPrediction]:
    """Classify audio files and folders with the model in ``model_dir``: one record per file, in input order.

    Quiet unless ``verbose=1`` (a progress bar over the files); see :meth:`Classifier.iter_classify` for the rest.

    Loads the model each call; to classify several times, make one :class:`Classifier` and call its
    :meth:`Classifier.classify`.

    Examples
    --------
    >>> songs = classify(["song.mp3", "albums/"], "model/")          # doctest: +SKIP
    >>> [(song.path, song.genre, song.vote_share) for song in songs if song.ok]   # doctest: +SKIP
    """
    return Classifier(model_dir, batch_size=batch_size).classify(paths, vote=vote, workers=workers,
                                                                 min_share=min_share, observer=observer,
                                                                 verbose=verbose)

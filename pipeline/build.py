"""``genreslice build``: audio folder in, labelled spectrogram-slice data set out; parallel and resumable.

A run first labels every file and plans the whole data set (:mod:`genreslice.pipeline.plan`: genre selection, splits,
caps),
then does the audio work of the planned tracks the journal does not already hold. Only the spectrogram settings
are fixed for an output folder; labels, selection and split ratios are re-planned on every run.

How a build survives being killed at any moment:

* a track's slices are written into a scratch folder under ``OUT_DIR/.genreslice/tmp`` and moved into
  ``OUT_DIR/slices/`` with one directory rename, so the final layout never shows a partial track;
* the main process appends the track's row to the journal only after that rename, so every journaled track
  is complete and a re-run skips exactly those;
* ``tracks.csv``, ``slices.csv`` and ``dataset.json`` are derived from the plan and the journal's audio
  outcomes at the end, in discovery order, and written atomically, so an interrupted-then-resumed build and an uninterrupted one are identical.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from genreslice import __version__
from genreslice.genre_getters.base import LabelSource
from genreslice.pipeline import layout
from genreslice.pipeline.audio_jobs import AudioJobRunner, track_fingerprint
from genreslice.pipeline.duplicates import DUPLICATE_POLICIES, DuplicateGroup, file_sha256, near_copies
from genreslice.pipeline.discovery import AUDIO_EXTENSIONS, AudioFile, AudioScan, scan_audio
from genreslice.pipeline.errors import (
    AudioFolderError,
    BuildLockedError,
    OutputError,
    ParameterError,
    SettingsMismatchError,
)
from genreslice.pipeline.executors import ExecutorFactory, default_executor, kill_workers
from genreslice.pipeline.fingerprint import Fingerprint, slices_needed
from genreslice.pipeline.journal import JournalRecord, JournalWriter, load_journal
from genreslice.pipeline.png import decode_gray_png
from genreslice.pipeline.plan import TO_BUILD, BuildPlan, GenreSelection, plan_build
from genreslice.pipeline.progress import BuildProgress, check_verbose, observed
from genreslice.pipeline.sox import SoxInfo, find_sox
from genreslice.pipeline.spectrogram import (
    SOX_TIMEOUT_S,
    SpectrogramSpec,
    measure_columns_per_second,
    prepare_rendering,
    spectrogram_differences,
)
from genreslice.pipeline.stock import Stock, prune_orphans, take_stock
from genreslice.pipeline.splits import DEFAULT_SPLIT_RATIOS, SPLITS
from genreslice.pipeline.tracks import MULTILABEL_TRACK_COLUMNS, TRACK_COLUMNS, TrackRow, count_split_changes, read_tracks_csv

logger = logging.getLogger(__name__)

DATASET_FORMAT_VERSION = 1
#: Times a build draws its plan again as near copies are found (each time may build tracks a cap chooses anew).
_MAX_REGROUPS = 4
GENERATOR = f"genreslice {__version__}"


@dataclass(frozen=True)
class BuildConfig:
    """Settings of one build.

    Attributes
    ----------
    spec : SpectrogramSpec
        How audio becomes slices.
    split_ratios : tuple of float
        Train, validation, test fractions (sum 1).
    workers : int
        Worker processes (on a Dask cluster: its worker threads); about four tasks per worker are kept queued.
    timeout_s : float
        Seconds SoX may spend on one track.
    duplicates : str
        What to do with copies of one recording (see :mod:`genreslice.pipeline.duplicates`): ``auto``, ``group``,
        ``keep`` or ``drop-extra``.
    near_copies : bool
        Fingerprint the tracks built and look for near copies among them (exact copies are looked for either way).
        False saves the fingerprinting's cost, measured at a few percent of a build (``make bench-duplicates``).
    """

    spec: SpectrogramSpec = field(default_factory=SpectrogramSpec)
    split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float = SOX_TIMEOUT_S
    duplicates: str = "auto"
    near_copies: bool = True

    def __post_init__(self) -> None:
        if self.duplicates not in DUPLICATE_POLICIES:
            raise ParameterError(f"duplicates={self.duplicates!r} must be one of {', '.join(DUPLICATE_POLICIES)}")
        if not 1 <= self.workers <= 65536:
            raise ParameterError(f"workers={self.workers} must be between 1 and 65536")
        if not 0 < self.timeout_s <= 7 * 24 * 3600:
            raise ParameterError(f"timeout_s={self.timeout_s} must be more than 0 and at most a week")
        if len(self.split_ratios) != 3 or not all(0 <= r <= 1 for r in self.split_ratios) \
                or abs(sum(self.split_ratios) - 1) > 1e-6:
            raise ParameterError(f"split_ratios={self.split_ratios} must be three fractions that sum to 1")


@dataclass
class BuildSummary:
    """Counts of a finished build and of the work this run did.

    ``retried``: tracks that failed on an earlier run and were tried again; ``not_retried``: failed tracks not
    tried again (rejected by SoX, or failed :data:`~genreslice.pipeline.stock.MAX_FAILED_ATTEMPTS` times);
    ``repaired``: built tracks rendered again because slice files were missing or damaged; ``removed``: built
    tracks whose audio file is gone, removed with their slices; ``unreachable``: built tracks whose files cannot be
    read now (failed rows, slices kept); ``unowned``: slice folders no track of the data set uses, left in place;
    ``unreadable_folders``: folders of the audio folder that could not be read, with the reason; ``resplit``:
    tracks built before and now whose split changed since the last finished run (other split ratios, labels).
    """

    out_dir: Path
    status_counts: dict[str, int]
    n_slices: int
    processed: int
    audio_seconds: float
    wall_seconds: float
    classes: list[str]
    plan: BuildPlan
    previous_classes: list[str] | None = None
    retried: int = 0
    removed: int = 0
    unreachable: int = 0
    repaired: int = 0
    not_retried: int = 0
    unowned: int = 0
    unreadable_folders: dict[str, str] = field(default_factory=dict)
    resplit: int = 0

    @property
    def audio_hours_per_wall_hour(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


class BuildObserver:
    """Hooks for progress display; the default does nothing (``verbose=1`` draws bars with
    :class:`~genreslice.pipeline.progress.BuildProgress`, as the command line does)."""

    def on_labels_start(self, total: int) -> None:
        """``total`` files are about to be labelled."""

    def on_labelled(self, count: int) -> None:
        """``count`` more files were labelled."""

    def on_start(self, total: int) -> None:
        """``total`` tracks need audio work in this run."""

    def on_track_done(self, row: TrackRow) -> None:
        """A track reached its final status (any of ``layout.STATUSES``)."""


def plan_dataset(
    audio_dir: str | os.PathLike,
    label_source: LabelSource,
    config: BuildConfig | None = None,
    *,
    selection: GenreSelection | None = None,
    observer: BuildObserver | None = None,
    executor_factory: ExecutorFactory = default_executor,
) -> BuildPlan:
    """What :func:`build_dataset` would build, without touching audio (tags aside) or any output folder.

    Raises
    ------
    NotADirectoryError, AudioFolderError, ParameterError
        No such audio folder; one that cannot be read or holds no audio file; a selected genre the source
        cannot produce.
    """
    config = config or BuildConfig()
    scan = _scan(_audio_root(audio_dir))
    return _plan(scan.files, label_source=label_source, config=config, selection=selection,
                 observer=observer or BuildObserver(), executor=None, executor_factory=executor_factory, built_ids={})


def build_dataset(audio_dir: str | os.PathLike, out_dir: str | os.PathLike, label_source: LabelSource,
                  config: BuildConfig | None = None, *, selection: GenreSelection | None = None,
                  observer: BuildObserver | None = None, executor_factory: ExecutorFactory = default_executor,
                  sox: SoxInfo | None = None, prune_missing: bool = False, retry_failed: bool = False,
                  verbose: int = 0) -> BuildSummary:
    """Build (or resume, or update) a slice data set.

    Parameters
    ----------
    audio_dir : str or os.PathLike
        Folder searched recursively for audio files.
    out_dir : str or os.PathLike
        Output folder: new, empty, or holding an earlier build with the same spectrogram settings.
    label_source : LabelSource
        Where genres, artists and official splits come from.
    config : BuildConfig, optional
        Spectrogram, split and parallelism settings.
    selection : GenreSelection, optional
        Genres to keep and the per-genre cap. Labels, selection and split ratios may change between runs of one
        output folder: only tracks not built before need audio work.
    observer : BuildObserver, optional
        Receives progress events.
    verbose : {0, 1}
        1: progress bars over the labelling and the audio work (widgets in a notebook). 0 (the default): print
        nothing; the returned summary says what happened.
    executor_factory : callable, optional
        ``workers -> concurrent.futures.Executor``; by default the tracks run in this process for one
        worker and in a process pool for more.
    sox : SoxInfo, optional
        A SoX already checked with :func:`genreslice.pipeline.sox.find_sox`; found and checked here otherwise.
    prune_missing : bool
        Accept a run that drops most of the built tracks from the data set because their audio files are gone
        or cannot be read now. Without it such a run is refused (an empty, mistyped or unmounted audio folder
        would otherwise empty the data set); fewer dropped tracks never need it. Also delete the slice folders no
        track of the data set uses (kept otherwise).
    retry_failed : bool
        Also try again the tracks SoX rejected as not audio or damaged on an earlier run, although their files
        have not changed, and those that failed :data:`~genreslice.pipeline.stock.MAX_FAILED_ATTEMPTS` times (other failures are tried again
        by every run until then).

    Returns
    -------
    BuildSummary

    Raises
    ------
    SoxUnavailableError, BuildLockedError, SettingsMismatchError, OutputError, NotADirectoryError,
    AudioFolderError, MissingAudioError, ParameterError
        Fatal problems, all detected before any audio work. Per-file problems never raise: they become rows
        of ``tracks.csv`` with status ``failed`` or ``skipped`` and a reason.
    """
    started = time.monotonic()
    progress = BuildProgress() if check_verbose(verbose) else None
    with observed(observer, progress) as observers:
        run = _BuildRun.prepare(audio_dir, out_dir, label_source, config or BuildConfig(), selection=selection,
                                observer=observers, executor_factory=executor_factory, sox=sox)
        with _prepared_output(run.out) as state:
            _check_settings(run.out, state, run.settings)
            stock = run.take_stock(prune_missing=prune_missing, retry_failed=retry_failed)
            plan, work = run.plan_and_render(stock, selection)
            summary = run.write_outputs(plan, work, stock, prune_missing=prune_missing)
    summary.wall_seconds = time.monotonic() - started
    return summary


@dataclass(frozen=True)
class _BuildRun:
    """One run of :func:`build_dataset`: what it builds from and how, with a method per stage of the work done
    while it holds the output folder's lock (take stock, plan and render, write the outputs)."""

    out: Path
    audio_root: Path
    scan: AudioScan
    label_source: LabelSource
    config: BuildConfig
    sox: SoxInfo
    settings: dict
    observer: BuildObserver
    executor_factory: ExecutorFactory

    @classmethod
    def prepare(cls, audio_dir: str | os.PathLike, out_dir: str | os.PathLike, label_source: LabelSource,
                config: BuildConfig, *, selection: GenreSelection | None, observer: BuildObserver,
                executor_factory: ExecutorFactory, sox: SoxInfo | None) -> _BuildRun:
        """Check the audio folder, the selection and SoX, and measure the slice settings: all before any work."""
        audio_root = _audio_root(audio_dir)
        (selection or GenreSelection()).resolve(label_source.taxonomy)  # a bad name fails before any work
        scan = _scan(audio_root)
        sox = sox or find_sox()
        # mel: librosa is loaded here, once, for the workers forked later, and bad settings refused before any work.
        prepare_rendering(config.spec)
        return cls(out=Path(out_dir), audio_root=audio_root, scan=scan, label_source=label_source, config=config,
                   sox=sox, settings=_build_settings(config, sox, label_source), observer=observer,
                   executor_factory=executor_factory)

    @property
    def state(self) -> Path:
        return self.out / layout.STATE_DIR

    @property
    def scratch(self) -> Path:
        return self.state / "tmp"

    @property
    def journal_path(self) -> Path:
        return self.state / "journal.jsonl"

    def take_stock(self, *, prune_missing: bool, retry_failed: bool) -> Stock:
        """What the journal holds, checked against the files found now; refuses to drop most built tracks."""
        records = {path: JournalRecord.from_json(record)
                   for path, record in load_journal(self.journal_path, rewrite_damaged=True).items()}
        stock = take_stock(records, scan=self.scan, audio_root=self.audio_root, out=self.out,
                            retry_failed=retry_failed)
        stock.check_drops(self.out, self.audio_root, prune_missing=prune_missing)
        return stock

    def plan_and_render(self, stock: Stock, selection: GenreSelection | None) -> tuple[BuildPlan, _AudioWork]:
        """Plan the data set, then do the audio work the journal does not hold, journaling each track as it
        finishes; then find the near copies among the tracks built and draw the plan again with them (see
        :meth:`regroup`). With several workers, one executor reads the tags and then runs the first round of audio
        work."""
        files = sorted([*self.scan.files, *stock.unreachable_files(self.audio_root)], key=lambda audio: audio.rel_path)
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()
        executor = self.executor_factory(self.config.workers) if self.config.workers > 1 else None
        try:
            known = {path: record.sha256 for path, record in stock.reusable.items() if record.sha256}
            plan = _plan(files, label_source=self.label_source, config=self.config, selection=selection,
                         observer=self.observer, executor=executor, executor_factory=self.executor_factory,
                         built_ids=stock.owners, known_digests=known)
            stock.describe_unusable(plan)
            work = _AudioWork.left_by(plan, stock)
            with JournalWriter(self.journal_path) as journal:
                self._render(work, work.todo, executor, journal)
                executor = None  # the runner shut it down
                plan = self.regroup(plan, work, stock, journal)
        except BaseException:
            if executor is not None:  # stopped while labelling: the workers' tag reading is not worth waiting for
                kill_workers(executor)
            raise
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        return plan, work

    def _render(self, work: _AudioWork, todo: list[tuple[TrackRow, AudioFile]], executor: cf.Executor | None,
                journal: JournalWriter) -> None:
        """Render ``todo`` on ``executor`` (one is made when None and there is work), which is shut down."""
        if not todo:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            return
        self.observer.on_start(len(todo))
        runner = AudioJobRunner(iter(todo), out=self.out, sox_path=self.sox.path,
                                columns_per_second=self.settings["spectrogram"]["columns_per_second"],
                                spec=self.config.spec, workers=self.config.workers,
                                timeout_s=self.config.timeout_s, executor_factory=self.executor_factory,
                                fingerprint=self.config.near_copies)
        for record in runner.run(executor):
            work.finish(record, journal=journal, observer=self.observer)

    def regroup(self, plan: BuildPlan, work: _AudioWork, stock: Stock, journal: JournalWriter) -> BuildPlan:
        """The plan drawn again with the near copies among the tracks built (fingerprints compared, see
        :mod:`genreslice.pipeline.duplicates`); tracks the new plan builds that are not built yet (a cap now
        choosing others) are rendered, and their fingerprints join, until the copies found stay the same.

        The copies are looked for among the tracks of this sequence of plans, not whatever else the journal holds, so
        a resumed build ends with the plan an uninterrupted one does.
        """
        if not self.config.near_copies:
            return plan
        considered = {row.path for row in plan.rows if row.status == TO_BUILD}
        found: list = []
        fingerprints: dict[str, Fingerprint] = {}
        for _ in range(_MAX_REGROUPS):
            fingerprints = self.fingerprints(work, considered, journal)
            near = near_copies(fingerprints)
            if near == found:
                break
            found = near
            plan = plan.replan(near)
            stock.describe_unusable(plan)
            todo = work.extend(plan, stock)
            self._render(work, todo, None, journal)
            added = {row.path for row in plan.rows if row.status == TO_BUILD} - considered
            if not added:  # the same tracks, so the same copies: this plan stands
                break
            considered |= added
        else:
            logger.warning("the near copies found changed in each of %d rounds of drawing the splits; the last "
                           "plan stands", _MAX_REGROUPS)
        plan.fingerprinted = len([fingerprint for fingerprint in fingerprints.values() if fingerprint.comparable])
        return plan

    def fingerprints(self, work: _AudioWork, paths: set[str], journal: JournalWriter) -> dict[str, Fingerprint]:
        """The fingerprints of the built tracks among ``paths``. A journal record without one, or without the file's
        SHA-256 (an older version's, or a build without near copies) gets them here, from its slices and its file
        (unchanged since: the stock says so), journaled with the record; a run that computes them and one that reads
        them find the same copies (:func:`~genreslice.pipeline.fingerprint.compute_fingerprint` gives what the
        journal gives back)."""
        columns_per_second = self.settings["spectrogram"]["columns_per_second"]
        found = {}
        for path in sorted(paths):
            record = work.done.get(path)
            if record is None or record.row.status != "ok":
                continue
            fingerprint = Fingerprint.from_json(record.fingerprint) if record.fingerprint is not None else None
            if fingerprint is None or record.sha256 is None:
                if fingerprint is None:
                    slices = _read_first_slices(self.out, record.row, self.config.spec, columns_per_second)
                    if slices is None:
                        continue
                    fingerprint = track_fingerprint(slices, self.config.spec, columns_per_second)
                completed = replace(record, fingerprint=fingerprint.to_json(),
                                    sha256=record.sha256 or file_sha256(self.audio_root / path))
                if completed != record:
                    journal.append(completed.to_json())
                    work.done[path] = completed
            found[path] = fingerprint
        return found

    def write_outputs(self, plan: BuildPlan, work: _AudioWork, stock: Stock, *, prune_missing: bool) -> BuildSummary:
        """Write ``tracks.csv``, ``slices.csv`` and ``dataset.json``, and remove the slice folders of tracks that
        are gone. Returns the summary; its ``wall_seconds`` is the caller's, who times the whole run."""
        rows = [_final_row(row, work.done) for row in plan.rows]
        previous_classes = _recorded_classes(self.out)
        resplit = count_split_changes(_recorded_tracks(self.out), rows)
        settings = _dataset_settings(self.settings, label_source=self.label_source, config=self.config, plan=plan)
        digests = {path: record.sha256 for path, record in work.done.items() if record.sha256}
        dataset = _write_outputs(self.out, rows, settings, scratch=self.scratch, multilabel=plan.multilabel,
                                 duplicates=plan.duplicates, digests=digests)
        kept = [record.row for record in (*stock.reusable.values(), *stock.held, *work.done.values())]
        removed, unowned = prune_orphans(self.out, keep=kept, gone=[record.row for record in stock.gone],
                                          scratch=self.scratch, everything=prune_missing)
        shutil.rmtree(self.scratch, ignore_errors=True)
        status_counts = collections.Counter(row.status for row in rows)
        return BuildSummary(
            out_dir=self.out,
            status_counts={status: status_counts.get(status, 0) for status in layout.STATUSES},
            n_slices=sum(int(row.n_slices) for row in rows),
            processed=work.processed,
            audio_seconds=work.audio_seconds,
            wall_seconds=0.0,
            classes=dataset["classes"],
            plan=plan,
            previous_classes=previous_classes,
            retried=work.retried,
            removed=removed,
            unreachable=len(stock.held),
            repaired=work.repaired,
            not_retried=work.not_retried,
            unowned=unowned,
            unreadable_folders=dict(self.scan.unreadable),
            resplit=resplit,
        )


@dataclass
class _AudioWork:
    """The audio work of a run: the outcomes that stand, the tracks left to render, and what this run rendered.

    Attributes
    ----------
    done : dict
        ``rel_path -> JournalRecord`` of the planned tracks with an outcome: from the journal, then this run's.
    todo : list of tuple
        ``(row, audio file)`` of the planned tracks to render, in discovery order.
    previous_attempts : dict
        ``rel_path -> failures so far`` of the earlier failures tried again.
    retried, not_retried, repaired : int
        As :class:`BuildSummary` counts them.
    processed, audio_seconds
        Tracks rendered by this run, and their seconds of audio.
    """

    done: dict[str, JournalRecord]
    todo: list[tuple[TrackRow, AudioFile]]
    previous_attempts: dict[str, int]
    retried: int
    not_retried: int
    repaired: int
    processed: int = 0
    audio_seconds: float = 0.0

    @classmethod
    def left_by(cls, plan: BuildPlan, stock: Stock) -> _AudioWork:
        """The work ``plan`` leaves to do: its tracks to build that have no standing outcome in ``stock``."""
        planned_ids = {row.path: row.track_id for row in plan.rows if row.status == TO_BUILD}
        done = {path: record for path, record in stock.reusable.items()
                if planned_ids.get(path) == record.row.track_id}
        todo = [(row, plan.audio[row.path]) for row in plan.rows if row.status == TO_BUILD and row.path not in done]
        return cls(done=done, todo=todo, previous_attempts=stock.retried,
                   retried=sum(row.path in stock.retried for row, _ in todo),
                   not_retried=sum(record.row.status == "failed" for record in done.values()),
                   repaired=sum(row.path in stock.damaged for row, _ in todo))

    def extend(self, plan: BuildPlan, stock: Stock) -> list[tuple[TrackRow, AudioFile]]:
        """The tracks to render that a new ``plan`` adds: those it builds with no outcome yet; standing outcomes in
        ``stock`` of the others it builds join :attr:`done`."""
        todo = []
        for row in plan.rows:
            if row.status != TO_BUILD or row.path in self.done:
                continue
            record = stock.reusable.get(row.path)
            if record is not None and record.row.track_id == row.track_id:
                self.done[row.path] = record
                self.not_retried += record.row.status == "failed"
            else:
                todo.append((row, plan.audio[row.path]))
        self.todo.extend(todo)
        self.retried += sum(row.path in stock.retried for row, _ in todo)
        self.repaired += sum(row.path in stock.damaged for row, _ in todo)
        return todo

    def finish(self, record: JournalRecord, *, journal: JournalWriter, observer: BuildObserver) -> None:
        """Journal a rendered track (a failure with its count of attempts) and count it."""
        path = record.row.path
        if record.row.status == "failed":
            record = replace(record, attempts=self.previous_attempts.get(path, 0) + 1)
        journal.append(record.to_json())
        self.done[path] = record
        observer.on_track_done(record.row)
        self.processed += 1
        self.audio_seconds += float(record.row.duration_s or 0.0)


def _read_first_slices(out: Path, row: TrackRow, spec: SpectrogramSpec,
                       columns_per_second: float) -> np.ndarray | None:
    """The first slices of a built track, as many as its fingerprint reads; None when one cannot be read."""
    count = min(int(row.n_slices), slices_needed(columns_per_second, spec.slice_size))
    try:
        return np.stack([decode_gray_png((out / layout.slice_path(row.track_id, index)).read_bytes())
                         for index in range(count)])
    except (OSError, ValueError) as err:
        logger.warning("cannot read the slices of %s to fingerprint it (%s); it is not compared with others",
                       row.path, err)
        return None


def _scan(audio_root: Path) -> AudioScan:
    """Scan the audio folder; one where no audio file can be found is an error, not an empty data set."""
    scan = scan_audio(audio_root)
    if not scan.files:
        extensions = ", ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS))
        unreadable = "; ".join(f"{folder!r}: {reason}" for folder, reason in list(scan.unreadable.items())[:3])
        raise AudioFolderError(
            f"no audio files ({extensions}) in {os.fspath(audio_root)!r} or its subfolders"
            + (f" that could be read (cannot read {plural(len(scan.unreadable), 'folder')}: {unreadable})"
               if unreadable else "")
            + "; check AUDIO_DIR (is it the right folder, is the drive mounted?). Nothing was built or changed")
    return scan


def _audio_root(audio_dir: str | os.PathLike) -> Path:
    root = Path(audio_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"audio folder {os.fspath(audio_dir)!r} does not exist or is not a folder")
    # Absolute, so workers that do not share this process's working directory (a Dask cluster) find the files.
    return root.absolute()


def _plan(files: list[AudioFile], *, label_source: LabelSource, config: BuildConfig,
          selection: GenreSelection | None, observer: BuildObserver, executor: cf.Executor | None,
          executor_factory: ExecutorFactory, built_ids: dict[str, str],
          known_digests: dict[str, str] | None = None) -> BuildPlan:
    """Label and plan; tag-reading sources use ``executor`` (or one made for the purpose) when workers > 1."""
    observer.on_labels_start(len(files))
    own_executor = None
    if executor is None and label_source.reads_audio and config.workers > 1 and len(files) > 1:
        executor = own_executor = executor_factory(config.workers)
    try:
        return plan_build(files, label_source, split_ratios=config.split_ratios, selection=selection,
                          duplicates=config.duplicates, known_digests=known_digests,
                          workers=config.workers, executor=executor, on_labelled=observer.on_labelled,
                          built_ids=built_ids)
    finally:
        if own_executor is not None:
            own_executor.shutdown(wait=True, cancel_futures=True)


def _recorded_tracks(out: Path) -> list[TrackRow]:
    """The rows of the ``tracks.csv`` of the last finished run; none when there is none or it cannot be read (the
    new one replaces it)."""
    try:
        return read_tracks_csv(out / layout.TRACKS_CSV)
    except (OSError, KeyError, ValueError, UnicodeDecodeError, csv.Error):
        return []


def _recorded_classes(out: Path) -> list[str] | None:
    """The classes of the data set this run replaces, if there is a readable one."""
    try:
        classes = json.loads((out / layout.DATASET_JSON).read_text(encoding="utf-8"))["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return classes if isinstance(classes, list) else None


def _final_row(row: TrackRow, done: dict[str, JournalRecord]) -> TrackRow:
    """The planned row, with the audio outcome of a track that was built (now or on an earlier run)."""
    if row.status != TO_BUILD:
        return row
    return row.with_outcome_of(done[row.path].row)


def _build_settings(config: BuildConfig, sox: SoxInfo, label_source: LabelSource) -> dict:
    """What a resumed build must match exactly: what decides the slices, and the label source, which names the
    track folders (another source would leave the built ones unused)."""
    columns_per_second = round(measure_columns_per_second(config.spec, sox_path=sox.path), 4)
    return {
        "format_version": DATASET_FORMAT_VERSION,
        "spectrogram": {
            **config.spec.to_dict(),
            "sox_version": sox.version,
            "columns_per_second": columns_per_second,
            "slice_seconds": round(config.spec.slice_seconds(columns_per_second), 4),
        },
        "labels": {"source": label_source.name},
    }


def _dataset_settings(settings: dict, *, label_source: LabelSource, config: BuildConfig, plan: BuildPlan) -> dict:
    """The settings recorded in ``dataset.json``: the slice settings, then how labels and splits were made."""
    summary = plan.summary()
    sources = summary["split_sources"]
    official = sources["official"] + sources["artist"]
    method = "official" if official and not sources["artist_hash"] else "official+artist_hash" if official \
        else "artist_hash"
    return {
        **settings,
        "labels": {**label_source.settings(), "selection": summary.pop("selection"),
                   "audio_without_metadata": summary.pop("audio_without_metadata"),
                   "metadata_without_audio": summary.pop("metadata_without_audio"),
                   "metadata_rows_skipped": summary.pop("metadata_rows_skipped")},
        "splits": {"method": method, "ratios": dict(zip(SPLITS, config.split_ratios)), **summary},
    }


@contextlib.contextmanager
def _prepared_output(out: Path) -> Iterator[Path]:
    """Create the output folder and its state folder, and hold the build lock while the block runs."""
    try:
        if out.exists() and not out.is_dir():
            raise OutputError(f"output folder {out} exists and is not a folder")
        if out.is_dir() and not (out / layout.STATE_DIR).is_dir() and any(out.iterdir()):
            raise OutputError(
                f"output folder {out} is not empty and holds no genreslice build; choose a new or empty folder"
            )
        state = out / layout.STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {out}: {err}") from err
    lock_path = state / "lock"
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(layout.exclusive_lock(lock_path))
        except layout.LockHeldError as err:
            if err.shared:
                raise BuildLockedError(
                    f"a training or evaluation is reading the data set in {out} (process {err.holder}); a build "
                    "would change its slices under it. Wait for it to finish, then run this command again"
                ) from None
            what = "another build is running on" if err.shared is False else \
                "another build, or a training or evaluation, is using"
            raise BuildLockedError(
                f"{what} {out} (process {err.holder} holds {lock_path}); wait for it to finish or stop it"
            ) from None
        except OSError as err:
            raise OutputError(f"cannot lock {lock_path}: {err}") from err
        # Temporary files of atomic writes that a kill interrupted (settings, a journal rewrite).
        for entry in state.iterdir():
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
        yield state


def _check_settings(out: Path, state: Path, settings: dict) -> None:
    """Refuse to mix settings in one output folder; record them on the first run.

    The settings of the earlier build come from ``.genreslice/settings.json``, or, when that is missing or
    damaged, from ``dataset.json`` (which records the same settings); a damaged ``settings.json`` is then
    rewritten from it.
    """
    settings_path = state / "settings.json"
    problems, recorded = [], None
    for path in (settings_path, out / layout.DATASET_JSON):
        try:
            candidate = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as err:
            problems.append(f"{path}: {err}")
            continue
        if isinstance(candidate, dict) and all(isinstance(candidate.get(key), dict)
                                               for key in ("spectrogram", "labels")):
            recorded = candidate
            break
        problems.append(f"{path}: not the settings of a build")
    if recorded is None and problems:
        raise OutputError(
            f"cannot read the settings of the earlier build in {out} ({'; '.join(problems)}). Build into a new "
            f"folder; or, if you are sure this run uses the same spectrogram settings and --labels as the earlier "
            f"one, delete {settings_path} and {out / layout.DATASET_JSON} and run again")
    if recorded is None:
        _write_settings(settings_path, settings)
        return
    differences = sorted([
        *((f"spectrogram.{key}", old, new)
          for key, old, new in spectrogram_differences(recorded["spectrogram"], settings["spectrogram"])),
        *layout.setting_differences(recorded, {key: value for key, value in settings.items() if key != "spectrogram"}),
    ])
    if differences:
        listed = "; ".join(f"{key}: built with {old!r}, now {new!r}" for key, old, new in differences)
        raise SettingsMismatchError(
            f"{out} was built with different settings ({listed}). "
            "Re-run with the original settings (--features and the other spectrogram options, --labels) to resume, or "
            "build into a new folder."
        )
    if problems:
        logger.warning("recovered the build settings of %s from %s (%s)", out, layout.DATASET_JSON, problems[0])
        _write_settings(settings_path, settings)


def _write_settings(path: Path, settings: dict) -> None:
    try:
        layout.write_text_atomic(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}; free space (or fix what the error names) "
                          "and run the same command again") from err


def _write_outputs(out: Path, rows: list[TrackRow], settings: dict, *, scratch: Path,
                   multilabel: bool = False, duplicates: Sequence[DuplicateGroup] = (),
                   digests: Mapping[str, str] | None = None) -> dict:
    """Write ``tracks.csv``, ``slices.csv``, ``duplicates.csv`` and, last, ``dataset.json``; each atomically.

    A multi-label data set's two tables have a ``tags`` column after ``genre`` (which is empty), its
    ``dataset.json`` says ``"task": "multilabel"``, its classes are the tags, and its counts count a track (and its
    slices) once for each of its tags.
    """
    slice_seconds = settings["spectrogram"]["slice_seconds"]
    slice_rows = []
    for row in rows:
        if row.status != "ok":
            continue
        for index in range(int(row.n_slices)):
            slice_rows.append({
                "path": layout.slice_path(row.track_id, index),
                "track_id": row.track_id,
                "genre": row.genre,
                "tags": row.tags,
                "split": row.split,
                "index": index,
                "start_s": f"{index * slice_seconds:.2f}",
            })
    ok_rows = [row for row in rows if row.status == "ok"]
    classes = sorted({name for row in ok_rows for name in row.classes})
    counts = {
        "tracks": {split: {genre: 0 for genre in classes} for split in SPLITS},
        "slices": {split: {genre: 0 for genre in classes} for split in SPLITS},
    }
    for row in ok_rows:
        for name in row.classes:
            counts["tracks"][row.split][name] += 1
            counts["slices"][row.split][name] += int(row.n_slices)
    status_counts = collections.Counter(row.status for row in rows)
    dataset = {
        **settings,
        **({"task": "multilabel"} if multilabel else {}),
        "generator": GENERATOR,
        "classes": classes,
        "counts": counts,
        "totals": {
            "files": len(rows),
            **{status: status_counts.get(status, 0) for status in layout.STATUSES},
            "slices": len(slice_rows),
        },
        "files": {"tracks": layout.TRACKS_CSV, "slices": layout.SLICES_CSV, "slice_dir": layout.SLICES_DIR,
                  "duplicates": layout.DUPLICATES_CSV},
    }
    if multilabel:
        dataset["totals"]["tracks_per_split"] = {split: sum(1 for row in ok_rows if row.split == split)
                                                 for split in SPLITS}
    track_columns = MULTILABEL_TRACK_COLUMNS if multilabel else TRACK_COLUMNS
    slice_columns = layout.MULTILABEL_SLICE_COLUMNS if multilabel else layout.SLICE_COLUMNS
    try:
        # Temporary files live in the scratch folder, so a kill never leaves one in the data set's folder.
        layout.write_text_atomic(out / layout.TRACKS_CSV,
                                 layout.csv_text(track_columns, [row.to_csv_row(track_columns) for row in rows]),
                                 scratch=scratch)
        layout.write_text_atomic(out / layout.SLICES_CSV, layout.csv_text(slice_columns, slice_rows),
                                 scratch=scratch)
        layout.write_text_atomic(out / layout.DUPLICATES_CSV, duplicates_csv_text(rows, duplicates, digests),
                                 scratch=scratch)
        layout.write_text_atomic(out / layout.DATASET_JSON, json.dumps(dataset, indent=2, sort_keys=True) + "\n",
                                 scratch=scratch)
    except OSError as err:
        raise OutputError(f"cannot write the data set files in {out}: {err}") from err
    return dataset


def duplicates_csv_text(rows: Sequence[TrackRow], duplicates: Sequence[DuplicateGroup],
                        digests: Mapping[str, str] | None = None) -> str:
    """``duplicates.csv``: one row per file of each group of copies (its track, split and status as in
    ``tracks.csv``; how alike it is to the most alike other member; its SHA-256 where known), groups numbered from
    1 in the order of their first path."""
    by_path = {row.path: row for row in rows}
    digests = digests or {}
    records = []
    for number, group in enumerate(duplicates, 1):
        for path in group.paths:
            row = by_path[path]
            records.append([number, group.kind, f"{group.similarity_of(path):.3f}", group.policy, row.track_id,
                            os.fsencode(path).decode("utf-8", errors="backslashreplace"), row.artist, row.split,
                            row.status, group.digest_of(path) or digests.get(path, "")])
    return layout.csv_text(layout.DUPLICATE_COLUMNS, records)


def plural(count: int, noun: str) -> str:
    """``"1 track"``, ``"2 tracks"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

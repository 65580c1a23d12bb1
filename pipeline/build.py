"""``genreslice build``: audio folder in, labelled spectrogram-slice data set out; parallel and resumable.

A run first labels every file and plans the whole data set (``pipeline.plan``: genre selection, splits, caps),
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
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from genreslice.genre_getters.base import LabelSource
from genreslice.pipeline import layout
from genreslice.pipeline.discovery import AUDIO_EXTENSIONS, AudioFile, AudioScan, scan_audio
from genreslice.pipeline.errors import (
    AudioFolderError,
    BuildLockedError,
    MissingAudioError,
    OutputError,
    ParameterError,
    SettingsMismatchError,
    SoxError,
    WorkerDiedError,
)
from genreslice.pipeline.executors import MAX_WORKER_DEATHS, ExecutorFactory, default_executor, kill_workers, process_pool
from genreslice.pipeline.journal import JournalWriter, load_journal
from genreslice.pipeline.plan import TO_BUILD, BuildPlan, GenreSelection, plan_build
from genreslice.pipeline.slicing import write_slice_png
from genreslice.pipeline.sox import SoxInfo, find_sox
from genreslice.pipeline.spectrogram import (
    SOX_TIMEOUT_S,
    SpectrogramSpec,
    measure_columns_per_second,
    render_slices,
    too_short_reason,
)
from genreslice.pipeline.splits import DEFAULT_SPLIT_RATIOS, SPLITS

logger = logging.getLogger(__name__)

DATASET_FORMAT_VERSION = 1
GENERATOR = "genreslice 0.1.0"


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
    """

    spec: SpectrogramSpec = field(default_factory=SpectrogramSpec)
    split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    timeout_s: float = SOX_TIMEOUT_S

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 65536:
            raise ParameterError(f"workers={self.workers} must be between 1 and 65536")
        if not 0 < self.timeout_s <= 7 * 24 * 3600:
            raise ParameterError(f"timeout_s={self.timeout_s} must be more than 0 and at most a week")
        if len(self.split_ratios) != 3 or not all(0 <= r <= 1 for r in self.split_ratios) \
                or abs(sum(self.split_ratios) - 1) > 1e-6:
            raise ParameterError(f"split_ratios={self.split_ratios} must be three fractions that sum to 1")


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


@dataclass(frozen=True)
class AudioOutcome:
    """What a worker reports back: ``status`` is ``ok``, ``failed`` or ``too_short``.

    ``slice_bytes`` is the size of each slice PNG written (a later run checks them to find damaged slices);
    ``transient`` marks a failure that says nothing about the file's content (see :class:`SoxError`), tried again
    by the next run.
    """

    status: str
    reason: str = ""
    n_slices: int = 0
    duration_s: float | None = None
    slice_bytes: tuple[int, ...] = ()
    transient: bool = False


@dataclass
class BuildSummary:
    """Counts of a finished build and of the work this run did.

    ``retried``: tracks that failed on an earlier run and were tried again; ``not_retried``: failed tracks not
    tried again (rejected by SoX, or failed :data:`MAX_FAILED_ATTEMPTS` times); ``repaired``: built tracks rendered
    again because slice files were missing or damaged; ``removed``: built tracks whose audio file is gone,
    removed with their slices; ``unreachable``: built tracks whose files cannot be read now (failed rows, slices
    kept); ``unowned``: slice folders no track of the data set uses, left in place; ``unreadable_folders``: folders
    of the audio folder that could not be read, with the reason.
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

    @property
    def audio_hours_per_wall_hour(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


class BuildObserver:
    """Hooks for progress display; the default does nothing (``scripts/`` draws the bars)."""

    def on_labels_start(self, total: int) -> None:
        """``total`` files are about to be labelled."""

    def on_labelled(self, count: int) -> None:
        """``count`` more files were labelled."""

    def on_start(self, total: int) -> None:
        """``total`` tracks need audio work in this run."""

    def on_track_done(self, row: dict) -> None:
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
    return _plan(scan.files, label_source, config, selection, observer or BuildObserver(), None, executor_factory,
                 {})


def build_dataset(
    audio_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    label_source: LabelSource,
    config: BuildConfig | None = None,
    *,
    selection: GenreSelection | None = None,
    observer: BuildObserver | None = None,
    executor_factory: ExecutorFactory = default_executor,
    sox: SoxInfo | None = None,
    prune_missing: bool = False,
    retry_failed: bool = False,
) -> BuildSummary:
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
    executor_factory : callable, optional
        ``workers -> concurrent.futures.Executor``; by default the tracks run in this process for one
        worker and in a process pool for more.
    sox : SoxInfo, optional
        A SoX already checked with :func:`pipeline.sox.find_sox`; found and checked here otherwise.
    prune_missing : bool
        Accept a run that drops most of the built tracks from the data set because their audio files are gone
        or cannot be read now. Without it such a run is refused (an empty, mistyped or unmounted audio folder
        would otherwise empty the data set); fewer dropped tracks never need it. Also delete the slice folders no
        track of the data set uses (kept otherwise).
    retry_failed : bool
        Also try again the tracks SoX rejected as not audio or damaged on an earlier run, although their files
        have not changed, and those that failed :data:`MAX_FAILED_ATTEMPTS` times (other failures are tried again
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
    config = config or BuildConfig()
    observer = observer or BuildObserver()
    started = time.monotonic()
    audio_root = _audio_root(audio_dir)
    (selection or GenreSelection()).resolve(label_source.taxonomy)  # a bad name fails before any work
    scan = _scan(audio_root)
    sox = sox or find_sox()
    out = Path(out_dir)
    settings = _build_settings(config, sox, label_source)
    with _prepared_output(out) as state:
        _check_settings(out, state, settings)
        journal_path = state / "journal.jsonl"
        stock = _take_stock(load_journal(journal_path, rewrite_damaged=True), scan, audio_root, out,
                            retry_failed=retry_failed)
        stock.check_drops(out, audio_root, prune_missing=prune_missing)
        files = sorted([*scan.files, *stock.unreachable_files(audio_root)], key=lambda audio: audio.rel_path)
        scratch = state / "tmp"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        processed, audio_seconds = 0, 0.0
        executor = executor_factory(config.workers) if config.workers > 1 else None
        try:
            plan = _plan(files, label_source, config, selection, observer, executor, executor_factory, stock.owners)
            stock.describe_unusable(plan)
            planned_ids = {row["path"]: row["track_id"] for row in plan.rows if row["status"] == TO_BUILD}
            done = {path: record for path, record in stock.reusable.items()
                    if planned_ids.get(path) == record["track_id"]}
            todo = [(row, plan.audio[row["path"]]) for row in plan.rows
                    if row["status"] == TO_BUILD and row["path"] not in done]
            retried = sum(row["path"] in stock.retried for row, _ in todo)
            not_retried = sum(done[path]["status"] == "failed" for path in done)
            repaired = sum(row["path"] in stock.damaged for row, _ in todo)
            with JournalWriter(journal_path) as journal:
                if todo:
                    observer.on_start(len(todo))
                    runner = _run_audio_jobs(iter(todo), out, sox, settings["spectrogram"], config, executor,
                                             executor_factory)
                    executor = None  # the runner shuts it down
                    for row in runner:
                        attempts = stock.retried.get(row["path"], 0) + 1 if row["status"] == "failed" else None
                        journal.append({**row, "stage": "audio",
                                        **({"attempts": attempts} if attempts else {})})
                        done[row["path"]] = row
                        observer.on_track_done(row)
                        processed += 1
                        audio_seconds += float(row["duration_s"] or 0.0)
        except BaseException:
            if executor is not None:  # stopped while labelling: the workers' tag reading is not worth waiting for
                kill_workers(executor)
            raise
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        rows = [_public_row(_final_row(row, done)) for row in plan.rows]
        previous_classes = _recorded_classes(out)
        dataset = _write_outputs(out, rows, _dataset_settings(settings, label_source, config, plan), scratch)
        removed, unowned = _prune_orphans(out, [*stock.reusable.values(), *stock.held, *done.values()], stock.gone,
                                          scratch, everything=prune_missing)
        shutil.rmtree(scratch, ignore_errors=True)
    status_counts = collections.Counter(row["status"] for row in rows)
    return BuildSummary(
        out_dir=out,
        status_counts={status: status_counts.get(status, 0) for status in layout.STATUSES},
        n_slices=sum(int(row["n_slices"]) for row in rows),
        processed=processed,
        audio_seconds=audio_seconds,
        wall_seconds=time.monotonic() - started,
        classes=dataset["classes"],
        plan=plan,
        previous_classes=previous_classes,
        retried=retried,
        removed=removed,
        unreachable=len(stock.held),
        repaired=repaired,
        not_retried=not_retried,
        unowned=unowned,
        unreadable_folders=dict(scan.unreadable),
    )


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


def _plan(files: list[AudioFile], label_source: LabelSource, config: BuildConfig,
          selection: GenreSelection | None, observer: BuildObserver, executor: cf.Executor | None,
          executor_factory: ExecutorFactory, built_ids: dict[str, str]) -> BuildPlan:
    """Label and plan; tag-reading sources use ``executor`` (or one made for the purpose) when workers > 1."""
    observer.on_labels_start(len(files))
    own_executor = None
    if executor is None and label_source.reads_audio and config.workers > 1 and len(files) > 1:
        executor = own_executor = executor_factory(config.workers)
    try:
        return plan_build(files, label_source, split_ratios=config.split_ratios, selection=selection,
                          workers=config.workers, executor=executor, on_labelled=observer.on_labelled,
                          built_ids=built_ids)
    finally:
        if own_executor is not None:
            own_executor.shutdown(wait=True, cancel_futures=True)


def _recorded_classes(out: Path) -> list[str] | None:
    """The classes of the data set this run replaces, if there is a readable one."""
    try:
        classes = json.loads((out / layout.DATASET_JSON).read_text(encoding="utf-8"))["classes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return classes if isinstance(classes, list) else None


def _final_row(row: dict, done: dict[str, dict]) -> dict:
    """The planned row, with the audio outcome of a track that was built (now or on an earlier run)."""
    if row["status"] != TO_BUILD:
        return row
    record = done[row["path"]]
    return {**row, **{key: record[key] for key in ("status", "reason", "n_slices", "duration_s")}}


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
        slice_seconds = job.spec.slice_size / job.columns_per_second
        return AudioOutcome("too_short", reason=too_short_reason(audio.duration_s, slice_seconds),
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
    return AudioOutcome("ok", reason=audio.truncation_note(), n_slices=len(audio.slices), duration_s=audio.duration_s,
                        slice_bytes=sizes)


def _run_audio_jobs(
    pending: Iterator[tuple[dict, AudioFile]],
    out: Path,
    sox: SoxInfo,
    settings_spectrogram: dict,
    config: BuildConfig,
    executor: cf.Executor | None,
    executor_factory: ExecutorFactory,
) -> Iterator[dict]:
    """Run the audio work on a pool fed from a queue; yield each track's finished row as it completes.

    At most a few tasks per worker are in flight, so memory stays flat whatever the number of tracks. If a
    worker process dies (killed, out of memory), the pool is restarted and the tracks it may have been
    running are retried one at a time, so a death is only charged to the track that was running alone; a
    track at ``MAX_WORKER_DEATHS`` deaths is recorded as failed. ``executor`` runs the first round and is
    shut down here; ``executor_factory`` makes the replacements. A Dask executor never breaks: Dask reschedules a dead
    worker's tasks itself and reports a track that killed its workers as :class:`WorkerDiedError`.
    """
    queue: collections.deque[tuple[dict, AudioFile]] = collections.deque()
    suspects: collections.deque[tuple[dict, AudioFile]] = collections.deque()
    deaths: collections.Counter[str] = collections.Counter()
    out_abs = os.fspath(out.absolute())
    columns_per_second = settings_spectrogram["columns_per_second"]

    def take(source: collections.deque) -> tuple[dict, AudioFile] | None:
        if source:
            return source.popleft()
        if source is queue:
            return next(pending, None)
        return None

    while True:
        isolating = bool(suspects)
        source = suspects if isolating else queue
        max_in_flight = 1 if isolating else config.workers * 4
        in_flight: dict[cf.Future, tuple[dict, AudioFile]] = {}
        broken = exhausted = False
        if executor is None:
            # Isolation needs a real process, whatever ran the first round: the suspect may kill it.
            executor = process_pool(1) if isolating else executor_factory(config.workers)
        with executor:
            try:
                while True:
                    while len(in_flight) < max_in_flight and not broken and not exhausted:
                        item = take(source)
                        if item is None:
                            exhausted = True
                            break
                        row, audio = item
                        job = TrackJob(row["track_id"], os.fspath(audio.path.absolute()), out_abs, config.spec,
                                       sox.path, config.timeout_s, columns_per_second)
                        try:
                            in_flight[executor.submit(process_track, job)] = item
                        except cf.BrokenExecutor:  # the pool broke (e.g. while reading labels): not this track
                            source.appendleft(item)
                            broken = True
                    if not in_flight:
                        break
                    finished, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                    for future in finished:
                        row, audio = item = in_flight.pop(future)
                        try:
                            outcome = future.result()
                        except cf.BrokenExecutor:
                            broken = True
                            if not isolating:
                                suspects.append(item)
                                continue
                            deaths[row["path"]] += 1
                            if deaths[row["path"]] < MAX_WORKER_DEATHS:
                                suspects.appendleft(item)
                                continue
                            outcome = AudioOutcome(
                                "failed", reason=f"the worker process died {deaths[row['path']]} times on this track",
                                transient=True)
                        except WorkerDiedError as err:  # Dask: it rescheduled the track and gave up
                            outcome = AudioOutcome("failed", reason=str(err), transient=True)
                        except OSError as err:
                            raise OutputError(f"cannot write slices of {row['path']} under {out}: {err}") from err
                        yield _finished_row(row, outcome)
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM) or failed: stop the workers and their SoX now, not after their
                # current tracks; finished tracks are in the journal already.
                kill_workers(executor)
                executor.shutdown(wait=False, cancel_futures=True)
                raise
        executor = None
        if broken:
            logger.warning("a worker process died; retrying the tracks it may have been running, one at a time")
        elif not isolating:
            return


def _finished_row(row: dict, outcome: AudioOutcome) -> dict:
    """The planned row with its audio outcome: what the journal records (``slice_bytes`` and ``transient`` are
    the journal's own; ``tracks.csv`` shows the others)."""
    finished = dict(row)
    finished.update(
        status=outcome.status,
        reason=outcome.reason,
        n_slices=outcome.n_slices,
        duration_s="" if outcome.duration_s is None else f"{outcome.duration_s:.2f}",
        slice_bytes=list(outcome.slice_bytes),
        transient=outcome.transient,
    )
    return finished


def _public_row(record: dict) -> dict:
    row = {column: record[column] for column in layout.TRACK_COLUMNS}
    # A file name that is not valid UTF-8 keeps its odd bytes visible as \xNN, so the CSV stays valid UTF-8.
    row["path"] = os.fsencode(row["path"]).decode("utf-8", errors="backslashreplace")
    return row


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
            "slice_seconds": round(config.spec.slice_size / columns_per_second, 4),
        },
        "labels": {"source": label_source.name},
    }


def _dataset_settings(settings: dict, label_source: LabelSource, config: BuildConfig, plan: BuildPlan) -> dict:
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
    differences = sorted(layout.setting_differences(recorded, settings))
    if differences:
        listed = "; ".join(f"{key}: built with {old!r}, now {new!r}" for key, old, new in differences)
        raise SettingsMismatchError(
            f"{out} was built with different settings ({listed}). "
            "Re-run with the original settings (spectrogram options, --labels) to resume, or build into a new folder."
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


#: A run that would drop more than this share of the built tracks from the data set needs ``prune_missing``.
DROP_REFUSAL_SHARE = 0.5
#: A track that failed for a passing reason (a timeout, a worker death) is tried again until it has failed this
#: many times on the same file; then only ``retry_failed`` tries it again.
MAX_FAILED_ATTEMPTS = 3


@dataclass
class _Stock:
    """What the journal says about the tracks built before, checked against the files found now.

    Attributes
    ----------
    reusable : dict
        ``rel_path -> record`` of outcomes that stand: the file is unchanged, an ``ok`` track's slices are all
        there at their recorded sizes, and a failure is not one to try again.
    unusable : dict
        ``rel_path -> record`` for tracks whose file cannot be used now: in a folder that cannot be read, or there
        but not examinable (permissions, a link gone bad). Their rows fail for this run.
    unreachable : dict
        ``rel_path -> reason`` for those discovery did not list: in folders that could not be read, or gone from a
        folder that is empty now (an unmounted drive).
    held : list of dict
        Records of the built tracks among the unusable ones: their slices stay on disk for a later run.
    gone : list of dict
        Records of built tracks whose file is gone (and whose slices are still on disk).
    retried : dict
        ``rel_path -> attempts so far`` of earlier failures that are tried again.
    damaged : set of str
        Paths of built tracks whose slice files are missing or damaged.
    owners : dict
        ``track_id -> rel_path`` of the built tracks whose file is still there (usable or not): each keeps its
        track id, and so its slice folder, against any other file claiming the id.
    built : int
        Built tracks whose slices are on disk, the share of which ``check_drops`` compares against.
    """

    reusable: dict[str, dict] = field(default_factory=dict)
    unusable: dict[str, dict] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    held: list[dict] = field(default_factory=list)
    gone: list[dict] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    damaged: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)
    built: int = 0

    def check_drops(self, out: Path, audio_root: Path, *, prune_missing: bool) -> None:
        """Refuse a run that would drop most built tracks from the data set, unless the user confirmed it.

        Raises
        ------
        MissingAudioError
            More than :data:`DROP_REFUSAL_SHARE` of the built tracks are gone or cannot be used.
        """
        dropped = len(self.gone) + len(self.held)
        if prune_missing or not dropped or dropped <= DROP_REFUSAL_SHARE * self.built:
            return
        parts = []
        if self.gone:
            parts.append(f"{len(self.gone)} have no audio file in {os.fspath(audio_root)!r} any more (e.g. "
                         f"{self.gone[0]['path']!r})")
        if self.held:
            parts.append(f"{len(self.held)} have files that cannot be read now (e.g. {self.held[0]['path']!r})")
        raise MissingAudioError(
            f"{out} holds {self.built} built tracks, and {dropped} of them would be dropped: {'; '.join(parts)}. "
            "Is AUDIO_DIR the right folder, mounted and readable? Nothing was changed. To drop them anyway (the "
            "slices of files that are gone are deleted), run the same command with --prune-missing.")

    def unreachable_files(self, audio_root: Path) -> list[AudioFile]:
        """A failed stand-in file for each unreachable track, so it keeps a row with the reason."""
        return [AudioFile(audio_root / path, path, self.unusable[path]["size"], self.unusable[path]["mtime_ns"],
                          problem=reason) for path, reason in self.unreachable.items()]

    def describe_unusable(self, plan: BuildPlan) -> None:
        """Give the failed rows of unusable tracks what the journal knows: track id, artist, genre."""
        for row in plan.rows:
            if row["path"] in self.unusable:
                row.update({key: self.unusable[row["path"]].get(key, "") for key in ("track_id", "artist", "genre")})


def _take_stock(records: dict[str, dict], scan: AudioScan, audio_root: Path, out: Path, *,
                retry_failed: bool) -> _Stock:
    """Sort the journal's records by what this run must do with them (see :class:`_Stock`)."""
    stock = _Stock()
    current = {audio.rel_path: audio for audio in scan.files}
    # A track folder holds the slices of the last path that published it: an older record naming the same
    # track id (another file had the id meanwhile) describes slices that are gone.
    publisher = {record["track_id"]: path for path, record in records.items() if record["status"] == "ok"}
    for path, record in records.items():
        owns_folder = record["status"] == "ok" and publisher[record["track_id"]] == path
        on_disk = owns_folder and (out / layout.track_slice_dir(record["track_id"])).is_dir()
        stock.built += on_disk
        audio = current.get(path)
        reason = None
        if audio is None:
            folder = scan.unreadable_folder_of(path)
            if folder is not None:
                reason = f"cannot read folder {folder}: {scan.unreadable[folder]}"
            elif on_disk and (folder := _emptied_folder(audio_root, path)) is not None:
                reason = f"folder {folder} is empty now (an unmounted drive?)"
            elif on_disk:
                stock.gone.append(record)
                continue
            else:
                continue
        if owns_folder:
            stock.owners[record["track_id"]] = path
        if reason is not None or audio.problem:
            stock.unusable[path] = record
            if reason is not None:
                stock.unreachable[path] = reason
            if on_disk:
                stock.held.append(record)
            continue
        if record["status"] not in ("ok", "failed", "too_short") \
                or (record["size"], record["mtime_ns"]) != (audio.size, audio.mtime_ns):
            continue  # a changed file (or an old kind of record): its audio work is done again
        attempts = record.get("attempts", 1)
        if record["status"] == "failed" and (
                retry_failed or (record.get("transient", True) and attempts < MAX_FAILED_ATTEMPTS)):
            stock.retried[path] = attempts
        elif record["status"] == "ok" and not (owns_folder and _slices_intact(out, record)):
            stock.damaged.add(path)
        else:
            stock.reusable[path] = record
    return stock


def _emptied_folder(audio_root: Path, rel_path: str) -> str | None:
    """The folder below ``audio_root`` holding nothing at all where the file ``rel_path`` was, if any.

    A file that is gone together with everything beside it, from a folder that is still there, is more likely on
    a drive no longer mounted there than deleted: its track is kept, as for a folder that cannot be read.
    """
    parent = PurePosixPath(rel_path).parent
    while parent.parts:
        folder = audio_root / parent
        if folder.is_dir():
            try:
                return None if any(os.scandir(folder)) else f"{parent}/"
            except OSError:
                return None
        parent = parent.parent
    return None


def _slices_intact(out: Path, record: dict) -> bool:
    """Whether a built track's folder holds exactly its slices, each of the size recorded when it was written
    (journals of older versions record no sizes: then each must be non-empty). One ``stat`` per slice; a
    damaged file of unchanged size is found only by reading it (training reports it)."""
    track_id = record["track_id"]
    try:
        with os.scandir(out / layout.track_slice_dir(track_id)) as entries:
            sizes = {entry.name: entry.stat().st_size for entry in entries}
    except OSError:
        return False
    names = [layout.slice_name(track_id, index) for index in range(record["n_slices"])]
    if len(sizes) != len(names):
        return False
    expected = record.get("slice_bytes") or [None] * len(names)
    return all(sizes.get(name, 0) > 0 and size in (None, sizes[name]) for name, size in zip(names, expected))


def _write_outputs(out: Path, rows: list[dict], settings: dict, scratch: Path) -> dict:
    """Write ``tracks.csv``, ``slices.csv`` and, last, ``dataset.json``; each atomically."""
    slice_seconds = settings["spectrogram"]["slice_seconds"]
    slice_rows = []
    for row in rows:
        if row["status"] != "ok":
            continue
        for index in range(int(row["n_slices"])):
            slice_rows.append({
                "path": layout.slice_path(row["track_id"], index),
                "track_id": row["track_id"],
                "genre": row["genre"],
                "split": row["split"],
                "index": index,
                "start_s": f"{index * slice_seconds:.2f}",
            })
    ok_rows = [row for row in rows if row["status"] == "ok"]
    classes = sorted({row["genre"] for row in ok_rows})
    counts = {
        "tracks": {split: {genre: 0 for genre in classes} for split in SPLITS},
        "slices": {split: {genre: 0 for genre in classes} for split in SPLITS},
    }
    for row in ok_rows:
        counts["tracks"][row["split"]][row["genre"]] += 1
        counts["slices"][row["split"]][row["genre"]] += int(row["n_slices"])
    status_counts = collections.Counter(row["status"] for row in rows)
    dataset = {
        **settings,
        "generator": GENERATOR,
        "classes": classes,
        "counts": counts,
        "totals": {
            "files": len(rows),
            **{status: status_counts.get(status, 0) for status in layout.STATUSES},
            "slices": len(slice_rows),
        },
        "files": {"tracks": layout.TRACKS_CSV, "slices": layout.SLICES_CSV, "slice_dir": layout.SLICES_DIR},
    }
    try:
        # Temporary files live in the scratch folder, so a kill never leaves one in the data set's folder.
        layout.write_text_atomic(out / layout.TRACKS_CSV, layout.csv_text(layout.TRACK_COLUMNS, rows), scratch=scratch)
        layout.write_text_atomic(out / layout.SLICES_CSV, layout.csv_text(layout.SLICE_COLUMNS, slice_rows),
                                 scratch=scratch)
        layout.write_text_atomic(out / layout.DATASET_JSON, json.dumps(dataset, indent=2, sort_keys=True) + "\n",
                                 scratch=scratch)
    except OSError as err:
        raise OutputError(f"cannot write the data set files in {out}: {err}") from err
    return dataset


def _prune_orphans(out: Path, keep: list[dict], gone: list[dict], scratch: Path, *,
                   everything: bool) -> tuple[int, int]:
    """Remove the slice folders of tracks whose audio file is gone; with ``everything``, also every other folder
    that no record in ``keep`` owns. Returns how many folders of tracks that are gone were removed, and how many
    other folders no record owns were left in place.

    Folders nothing here knows about stay unless the user asked (``--prune-missing``): slices of a changed file
    that failed to render again, of tracks a damaged or lost journal no longer lists. Folders of built tracks that
    this run's selection leaves out (``--genres``, a cap) are kept: they are not in ``slices.csv``, and a later
    run that selects them again reuses them.
    """
    wanted = {layout.track_slice_dir(record["track_id"]) for record in keep if record["status"] == "ok"}
    doomed = {layout.track_slice_dir(record["track_id"]) for record in gone}
    slices_root = out / layout.SLICES_DIR
    removed = left = 0
    for shard in sorted(slices_root.iterdir()) if slices_root.is_dir() else []:
        for track_dir in sorted(shard.iterdir()) if shard.is_dir() else []:
            folder = f"{layout.SLICES_DIR}/{shard.name}/{track_dir.name}"
            if folder in wanted:
                continue
            if folder not in doomed and not everything:
                left += 1
                continue
            logger.info("removing %s: its track is no longer in the data set", track_dir)
            removed += folder in doomed
            # Out of the final layout in one rename, then deleted: a kill never leaves half a folder.
            trash = scratch / f"pruned-{shard.name}-{track_dir.name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(track_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return removed, left


def plural(count: int, noun: str) -> str:
    """``"1 track"``, ``"2 tracks"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"

"""``genreslice``: the command line. Argument parsing, logging set-up and progress bars live here only."""
from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import os
import signal
import sys
import tempfile
import threading
from dataclasses import replace

from tqdm import tqdm

from genreslice import __version__
from genreslice.errors import GenresliceError, ParameterError
from genreslice.genre_getters import LABEL_SOURCES, make_label_source
from genreslice.pipeline.build import (
    MAX_FAILED_ATTEMPTS,
    BuildConfig,
    BuildObserver,
    BuildSummary,
    build_dataset,
    plan_dataset,
    plural,
)
from genreslice.pipeline.discovery import AUDIO_EXTENSIONS
from genreslice.pipeline.plan import BuildPlan, GenreSelection
from genreslice.pipeline.executors import dask_cluster
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.spectrogram import RESAMPLE_QUALITIES, SOX_TIMEOUT_S, SpectrogramSpec
from genreslice.pipeline.splits import SPLITS, parse_split_ratios
from genreslice.training.settings import (
    CLASS_WEIGHTS,
    INFERENCE_BATCH_SIZE,
    MODEL_DEFAULTS,
    TrainConfig,
    default_loader_workers,
)
from genreslice.training.voting import VOTES

logger = logging.getLogger("genreslice")

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT; SIGTERM and SIGHUP end with 128 + their number too
#: Signals that stop a command cleanly, as Ctrl-C does.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived (SIGINT, SIGTERM or SIGHUP). Raised like Ctrl-C's KeyboardInterrupt, so every
    clean-up path written for Ctrl-C (killing workers and SoX, keeping finished work) runs for the others too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_raise():
    """While the block runs, SIGINT, SIGTERM and SIGHUP raise :class:`StopRequested` in the main thread.

    A second signal while the first one's clean-up runs ends the process at once: its workers and SoX processes
    die with it (the kernel kills them), finished tracks and epochs are on disk already, and the locks are the
    kernel's. A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        if received:
            with contextlib.suppress(OSError):
                os.write(2, f"\ngenreslice: stopped at once ({signal.Signals(signum).name} while stopping).\n".encode())
            os._exit(128 + received[0])
        received.append(signum)
        raise StopRequested(signum)

    previous = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, on_signal)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


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

    def on_track_done(self, row: dict) -> None:
        self.counts[row["status"]] += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(ok=self.counts["ok"], failed=self.counts["failed"], skipped=self.counts["skipped"],
                                 too_short=self.counts["too_short"], refresh=False)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something and the help text does not already name one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == () or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


MAX_WORKERS = 1024
MAX_TIMEOUT_S = 7 * 24 * 3600


def positive_int(text: str, *, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{value} must be at most {maximum}")
    return value


def worker_count(text: str) -> int:
    return positive_int(text, maximum=MAX_WORKERS)


def device_count(text: str) -> int | None:
    """``all`` (None: every device) or a positive whole number."""
    return None if text.strip().lower() == "all" else positive_int(text, maximum=MAX_WORKERS)


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 and at most {MAX_TIMEOUT_S} seconds")
    return value


def split_ratios(text: str) -> tuple[float, float, float]:
    try:
        return parse_split_ratios(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def genre_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no genre; give a comma-separated list, e.g. Rock,Jazz")
    return names


def whole_number(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
    return value


def number(text: str, *, minimum: float = 0.0, maximum: float = float("inf"), above_minimum: bool = False,
           may_be_off: bool = False) -> float | None:
    """A float within bounds; with ``may_be_off``, 'off' or 'none' give None."""
    if may_be_off and text.lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number{' or ' + repr('off') if may_be_off else ''}") \
            from None
    if above_minimum and not value > minimum:
        raise argparse.ArgumentTypeError(f"{text} must be more than {minimum:g}")
    if not minimum <= value <= maximum:
        bounds = f"between {minimum:g} and {maximum:g}" if maximum != float("inf") else f"{minimum:g} or more"
        raise argparse.ArgumentTypeError(f"{text} must be {bounds}")
    return value


def optional_fraction(text: str) -> float | None:
    return number(text, maximum=1.0, may_be_off=True)


def optional_loss(text: str) -> float | None:
    return number(text, may_be_off=True)


def non_negative_int(text: str) -> int:
    return whole_number(text, minimum=0)


def positive_float(text: str) -> float:
    return number(text, above_minimum=True)


def make_parser() -> argparse.ArgumentParser:
    defaults = SpectrogramSpec()
    parser = argparse.ArgumentParser(
        prog="genreslice",
        description=("Music genre recognition at data-set scale: build spectrogram-slice data sets from audio, train a "
                     "CNN on them, evaluate it, and predict the genre of songs by voting over their slices."),
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped or failed file")
    parser.add_argument("--version", action="version", version=f"genreslice {__version__}",
                        help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="turn a folder of audio files into a labelled data set of 128x128 spectrogram slices",
        description=(
            "Find every audio file under AUDIO_DIR (mp3, wav, flac, ogg, aiff; recursively), label it (tags, or FMA / "
            "MTG-Jamendo metadata) with one of 16 top-level genres, assign a train/validation/test split (official "
            "when the metadata has one, else by artist), render its spectrogram with SoX and cut it into 128x128 "
            "grayscale PNG slices in OUT_DIR. Interrupted builds resume: run the same command again. Labels, genre "
            "selection and split ratios may change between runs; only tracks not built before are rendered. "
            "Per-file problems are recorded in OUT_DIR/tracks.csv and do not stop the build."
        ),
        formatter_class=HelpFormatter,
    )
    build.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder of audio files (searched recursively)")
    build.add_argument("out_dir", metavar="OUT_DIR",
                       help="output folder: new, empty, or an earlier build of the same settings to resume")
    labels = build.add_argument_group("labels and splits")
    labels.add_argument("--labels", choices=sorted(LABEL_SOURCES), default="id3",
                        help="where genre, artist and split come from: id3 = the tags inside each file; fma = FMA's "
                             "tracks.csv (official split); jamendo = MTG-Jamendo genre TSVs (official split from a "
                             "split folder)")
    labels.add_argument("--metadata", metavar="PATH",
                        help="fma: fma_metadata/ or its tracks.csv; jamendo: autotagging_genre.tsv or a split folder "
                             "(splits/split-0/) holding autotagging_genre-{train,validation,test}.tsv")
    labels.add_argument("--subset", choices=["small", "medium", "large"],
                        help="fma only: keep this subset (subsets nest: medium includes small) (default: all tracks)")
    labels.add_argument("--genre-map", metavar="FILE",
                        help="CSV 'tag,genre': jamendo: replaces the shipped tag map; id3: names looked up before "
                             "the FMA hierarchy (may add genres)")
    labels.add_argument("--genres", type=genre_names, default=(), metavar="A,B,...",
                        help="keep only these top-level genres (default: all)")
    labels.add_argument("--exclude-genres", type=genre_names, default=(), metavar="A,B,...",
                        help="leave out these top-level genres")
    labels.add_argument("--max-tracks-per-genre", type=positive_int, metavar="N",
                        help="keep at most N tracks of each genre in each split, chosen by a stable hash of the "
                             "track id (default: no cap)")
    labels.add_argument("--dry-run", action="store_true",
                        help="label and split without touching audio or OUT_DIR; print tracks per genre and split "
                             "and what would be skipped")
    parallel = build.add_argument_group("parallelism")
    parallel.add_argument("--workers", type=worker_count, metavar="N",
                          help="worker processes on this machine, for the process pool or a local Dask cluster "
                               "(default: number of cores)")
    parallel.add_argument("--executor", choices=["pool", "dask"], default="pool",
                          help="where the per-track work runs: pool = a process pool on this machine; dask = a Dask "
                               "cluster: a new local one (one single-threaded worker process per --workers) or, "
                               "with --scheduler, a running one. Outputs are identical. Needs genreslice[dask]")
    parallel.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                          help="run on the Dask cluster of this scheduler (implies --executor dask); its workers "
                               "must see AUDIO_DIR and OUT_DIR at the same paths and run the same SoX; see the "
                               "README's 'Scale out'")
    labels.add_argument("--split-ratios", type=split_ratios, default="0.8,0.1,0.1",
                        help="train,validation,test fractions for tracks without an official split; tracks are "
                             "split by artist, never by slice")
    build.add_argument("--sample-rate", type=positive_int, default=defaults.sample_rate,
                       help="analysis rate in Hz every file is resampled to (fixes the frequency axis)")
    build.add_argument("--pixels-per-second", type=positive_int, default=defaults.pixels_per_second,
                       help="spectrogram columns per second; a slice covers 128 of them")
    build.add_argument("--resample-quality", choices=list(RESAMPLE_QUALITIES), default=defaults.resample_quality,
                       help="SoX rate-effect quality; see the README's performance section for the cost")
    build.add_argument("--timeout", type=timeout_seconds, default=SOX_TIMEOUT_S,
                       help="seconds SoX may spend on one file before it is recorded as failed")
    safety = build.add_argument_group("re-runs")
    safety.add_argument("--prune-missing", action="store_true",
                        help="accept a run that drops most built tracks from the data set because their audio "
                             "files are gone (their slices are deleted) or cannot be read (their slices are kept), "
                             "and delete slice folders no track of the data set uses. Without it such a run is "
                             "refused and nothing is changed, so an empty, mistyped or unmounted AUDIO_DIR cannot "
                             "empty a data set. Fewer dropped tracks never need it")
    safety.add_argument("--retry-failed", action="store_true",
                        help="also try again the files SoX rejected on an earlier run (not audio, damaged) although "
                             "they have not changed, and those that failed " + str(MAX_FAILED_ATTEMPTS) + " times; "
                             "other failures (timeouts, unreadable files, worker deaths) are tried again by "
                             "every run until then")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=run_build)
    add_train_parser(commands)
    add_evaluate_parser(commands)
    add_predict_parser(commands)
    add_demo_parser(commands)
    return parser


def add_train_parser(commands) -> None:
    defaults = TrainConfig()
    train = commands.add_parser(
        "train",
        help="train a CNN on a built data set, reading slices from disk batch by batch",
        description=(
            "Train a genre classifier on the train split of DATASET_DIR (the OUT_DIR of 'genreslice build'), "
            "validating on its validation split after every epoch. Slices are read from disk one batch at a "
            "time, so data sets larger than memory train in bounded memory. Training stops when validation "
            "accuracy and loss reach the targets, or when validation loss has not improved for --patience "
            "epochs, and keeps the best epoch's weights. Every epoch is checkpointed in MODEL_DIR: if a run is "
            "interrupted, run the same command again to continue from the last completed epoch. MODEL_DIR "
            "receives model.keras, model.json (classes, spectrogram settings, metrics), history.csv, curves.png "
            "and TensorBoard logs in logs/."
        ),
        formatter_class=HelpFormatter,
    )
    train.add_argument("dataset_dir", metavar="DATASET_DIR", help="a data set made by 'genreslice build'")
    train.add_argument("model_dir", metavar="MODEL_DIR",
                       help="output folder: new, empty, or an interrupted run of the same settings to continue")
    train.add_argument("--model", choices=sorted(MODEL_DEFAULTS), default=defaults.model,
                       help="network: " + "; ".join(f"{name} = {d.description}" for name, d in sorted(MODEL_DEFAULTS.items())))
    train.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help="most epochs in all; a continued run counts the epochs done before, and a run that "
                            "stopped at this limit continues when given a higher one")
    train.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="slices per batch (default: the model's own, 64 for compact, 128 for despoisj)")
    train.add_argument("--learning-rate", type=positive_float, metavar="RATE",
                       help="optimizer learning rate (default: the model's own, 0.001)")
    train.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                       help="seeds weight initialisation, dropout and the per-epoch shuffle of the samples")
    stopping = train.add_argument_group("stopping")
    stopping.add_argument("--target-accuracy", type=optional_fraction, default=defaults.target_accuracy,
                          metavar="FRACTION",
                          help="stop once validation accuracy reaches this (with --target-loss); 'off' disables "
                               "the target rule")
    stopping.add_argument("--target-loss", type=optional_loss, default=defaults.target_loss, metavar="LOSS",
                          help="...and validation loss is at most this; 'off' checks accuracy only")
    stopping.add_argument("--patience", type=non_negative_int, default=defaults.patience, metavar="EPOCHS",
                          help="stop when validation loss has not improved for this many epochs; 0 disables")
    train.add_argument("--class-weights", choices=list(CLASS_WEIGHTS), default=defaults.class_weights,
                       help="balanced = weigh each genre's slices inversely to its share of the training split, so "
                            "rare genres count as much as common ones; none = every slice weighs the same")
    train.add_argument("--loader-workers", type=worker_count, default=default_loader_workers(), metavar="N",
                       help="threads that read and decode slice batches ahead of the model")
    train.add_argument("--devices", type=device_count, default=None, metavar="all|N",
                       help="train on all GPUs (all) or the first N, one model replica each "
                            "(tf.distribute.MirroredStrategy); --batch-size is per device, so a step takes N times "
                            "as many slices. Without a GPU: the CPU. (default: all)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch remains)")
    train.set_defaults(handler=run_train)


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


@contextlib.contextmanager
def native_stderr_captured(enabled: bool = True):
    """Send file descriptor 2 to a temporary file while the block runs; replay it if the block raises."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_tensorflow(*, verbose: bool = False) -> str:
    """Import TensorFlow and find its devices; returns them in words, e.g. "1 CPU" or "2 GPUs and 1 CPU".

    TensorFlow's native start-up lines (CPU instruction sets, no CUDA driver found, oneDNN notes) are written to
    stderr before its log settings apply; they are held back unless ``-v`` is given, and shown if the import fails.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with native_stderr_captured(not verbose):
        import tensorflow as tf  # only the commands that need a model pay for this import

        kinds = collections.Counter(device.device_type for device in tf.config.list_physical_devices())
    return " and ".join(f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in sorted(kinds.items(), reverse=True))


def run_train(args: argparse.Namespace) -> int:
    config = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, seed=args.seed, target_accuracy=args.target_accuracy,
                         target_loss=args.target_loss, patience=args.patience,
                         class_weights=args.class_weights, loader_workers=args.loader_workers,
                         devices=args.devices)
    devices = load_tensorflow(verbose=args.verbose)
    from genreslice.training.train import train_model

    print(f"TensorFlow sees {devices}.", flush=True)
    observer = TqdmTrainObserver(enabled=not args.no_progress)
    try:
        result = train_model(args.dataset_dir, args.model_dir, config, observer=observer)
    finally:
        observer.close()
    if result.status == "already_finished":
        print(f"{result.model_dir} is already trained ({result.epochs_run} epochs; {result.stop_message}). "
              "Nothing to do; train into a new folder to start again.")
    else:
        print(f"Trained {result.model_dir}: {result.epochs_run} epochs ({result.epochs_this_call} in this run); "
              f"{result.stop_message}.")
    metrics = result.metrics
    if metrics:
        print(f"Best epoch {result.best_epoch}: validation accuracy {metrics.get('val_accuracy', float('nan')):.4f}, "
              f"loss {metrics.get('val_loss', float('nan')):.4f} (training accuracy "
              f"{metrics.get('accuracy', float('nan')):.4f}); these weights are in {result.model_dir / 'model.keras'}.")
    print(f"Curves: {result.model_dir / 'curves.png'}; per epoch: {result.model_dir / 'history.csv'}; "
          f"TensorBoard: tensorboard --logdir {result.model_dir / 'logs'}")
    return 0


VOTE_HELP = ("majority = each slice votes for its most probable genre, the most votes win (a tie goes to the higher "
             "mean probability, then to the alphabetically first genre); mean = the highest probability averaged "
             "over the slices")


def add_evaluate_parser(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="slice and song accuracy of a trained model on a split of a built data set",
        description=(
            "Classify every slice of one split of DATASET_DIR with the model in MODEL_DIR and decide each song's "
            "genre by voting over its slices. Reports slice accuracy, song accuracy under both votes (majority "
            "and mean probability) and per-genre precision, recall, F1 and support at song level, and writes "
            "MODEL_DIR/eval/SPLIT/: metrics.json, confusion.csv and confusion.png (song-level confusion matrix) "
            "and songs.csv (each song's verdicts). The data set must have the model's genres and spectrogram "
            "settings; evaluate on the data set the model was trained on, whose test split it has never seen."
        ),
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("dataset_dir", metavar="DATASET_DIR", help="a data set made by 'genreslice build'")
    evaluate.add_argument("model_dir", metavar="MODEL_DIR", help="a model folder made by 'genreslice train'")
    evaluate.add_argument("--split", choices=list(SPLITS), default="test", help="which split to classify")
    evaluate.add_argument("--vote", choices=list(VOTES), default="majority",
                          help="the vote behind the per-genre scores and the confusion matrix (both song "
                               "accuracies are always reported): " + VOTE_HELP)
    evaluate.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, metavar="N",
                          help="slices per model call")
    evaluate.add_argument("--loader-workers", type=worker_count, default=default_loader_workers(), metavar="N",
                          help="threads that read and decode slices ahead of the model")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=run_evaluate)


def add_predict_parser(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="the genre of audio files and folders, by voting over their slices",
        description=(
            "Classify audio files with the model in MODEL_DIR. Each file is rendered with SoX and cut into slices "
            "in memory with the spectrogram settings of the model's data set (from MODEL_DIR/model.json); no "
            "files are written. Folders are searched recursively for audio files ("
            + ", ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)) + "); a file given twice is "
            "classified once. "
            "For each file: the predicted genre, the share of its slices that voted for it, the votes and mean "
            "probability of every genre, and the number of slices. A file that cannot be read or is shorter "
            "than one slice is reported with the reason and the others go on."
        ),
        epilog=(f"Exit status: 0 when every file was classified, {EXIT_SOME_FAILED} when some could not be, "
                f"{EXIT_FATAL} when nothing could be done (no model, no SoX), {EXIT_USAGE} for bad options."),
        formatter_class=HelpFormatter,
    )
    predict.add_argument("model_dir", metavar="MODEL_DIR", help="a model folder made by 'genreslice train'")
    predict.add_argument("paths", metavar="PATH", nargs="+", help="audio files and folders (searched recursively)")
    predict.add_argument("--vote", choices=list(VOTES), default="majority", help=VOTE_HELP)
    predict.add_argument("--format", choices=["table", "json", "csv"], default="table",
                         help="table = aligned columns with the top 3 genres; json = one JSON object per file and "
                              "line; csv = a header, then one row per file with votes_GENRE and probability_GENRE "
                              "columns for every genre")
    predict.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                         help="SoX processes decoding files at once (default: number of cores)")
    predict.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, metavar="N",
                         help="most slices per model call; the slices of several songs share a call")
    predict.add_argument("--timeout", type=timeout_seconds, default=SOX_TIMEOUT_S,
                         help="seconds SoX may spend on one file before it is reported as failed")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(handler=run_predict)


class TqdmEvaluateObserver(ProgressBar):
    """A bar over the model's batches."""

    def on_start(self, n_slices: int, n_batches: int) -> None:
        self.open(n_batches, f"{n_slices} slices", "batch", leave=False)

    def on_batch_end(self, batch: int) -> None:
        self.advance()


def run_evaluate(args: argparse.Namespace) -> int:
    """``genreslice evaluate``: score the model on one split, print a summary, name the files written."""
    load_tensorflow(verbose=args.verbose)
    from genreslice.training.evaluate import evaluate_model

    observer = TqdmEvaluateObserver(enabled=not args.no_progress)
    try:
        result = evaluate_model(args.dataset_dir, args.model_dir, split=args.split, vote=args.vote,
                                batch_size=args.batch_size, loader_workers=args.loader_workers, observer=observer)
    finally:
        observer.close()
    print_evaluation(result.metrics, args)
    for note in result.notes:
        print(f"Note: {note}.")
    print(f"Wrote {result.out_dir}: metrics.json, confusion.csv, confusion.png, songs.csv")
    return 0


def print_evaluation(metrics: dict, args: argparse.Namespace) -> None:
    """Accuracies, then a per-genre table of precision, recall, F1 and support."""
    n_songs = metrics["n_songs"]
    print(f"Evaluated {args.model_dir} on the {metrics['split']} split of {args.dataset_dir}: "
          f"{metrics['n_slices']} slices of {n_songs} songs ({metrics['seconds']:.1f} s).")
    rows = [("slice accuracy", metrics["slice_accuracy"], ""),
            ("song accuracy, majority vote", metrics["song_accuracy_majority"],
             f"{round(metrics['song_accuracy_majority'] * n_songs)} of {n_songs} songs"),
            ("song accuracy, mean probability", metrics["song_accuracy_mean"],
             f"{round(metrics['song_accuracy_mean'] * n_songs)} of {n_songs} songs")]
    for label, value, extra in rows:
        print(f"  {label:<33}{value:.4f}  {extra}".rstrip())
    per_genre = metrics["per_genre"]
    width = max(len("macro average"), *(len(name) for name in per_genre))
    print()
    print(f"Per genre, at song level ({metrics['vote']} vote):")
    print(f"  {'genre':<{width}}  precision     recall         f1    support")
    for name, scores in per_genre.items():
        print(f"  {name:<{width}}  {scores['precision']:>9.4f}  {scores['recall']:>9.4f}  {scores['f1']:>9.4f}  "
              f"{scores['support']:>9}")
    print(f"  {'macro F1':<{width}}  {'':>9}  {'':>9}  {metrics['macro_f1']:>9.4f}")


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


def prediction_lines(output_format: str, classes: tuple[str, ...]):
    """A header (or None) and a function from one SongPrediction to its output line."""
    import json

    from genreslice.pipeline.layout import csv_line

    if output_format == "json":
        return None, lambda song: json.dumps(song.to_dict(), ensure_ascii=False)
    if output_format == "csv":
        columns = ["path", "status", "reason", "genre", "vote", "vote_share", "n_slices", "duration_s",
                   *(f"votes_{name}" for name in classes), *(f"probability_{name}" for name in classes)]

        def csv_row(song) -> str:
            fields = song.to_dict()
            return csv_line([*("" if fields[key] is None else fields[key] for key in columns[:8]),
                             *(song.votes.get(name, "") for name in classes),
                             *(song.mean_probability.get(name, "") for name in classes)])

        return csv_line(columns), csv_row
    genre_width = max(len("genre"), len("too short"), *(len(name) for name in classes))
    top_width = 3 * (genre_width + 7)

    def table_row(song) -> str:
        path = song.path.replace("\r", "\\r").replace("\n", "\\n")  # one line per file, whatever its name
        reason = song.reason.replace("\r", "\\r").replace("\n", "\\n")
        if not song.ok:
            status = "too short" if song.status == "too_short" else song.status
            return f"{status:<{genre_width}}  {'-':>5}  {'-':>6}  {'-':<{top_width}}  {path}: {reason}"
        top = "  ".join(f"{name} {probability:.2f}" for name, probability in song.top(3))
        line = f"{song.genre:<{genre_width}}  {song.vote_share:>5.2f}  {song.n_slices:>6}  {top:<{top_width}}  {path}"
        return f"{line}  ({reason})" if reason else line

    header = f"{'genre':<{genre_width}}  {'share':>5}  {'slices':>6}  {'top 3 by mean probability':<{top_width}}  file"
    return header, table_row


def run_predict(args: argparse.Namespace) -> int:
    """``genreslice predict``: stream one line per file to standard output, a summary to standard error."""
    load_tensorflow(verbose=args.verbose)
    import time

    from genreslice.training.predict import Classifier

    started = time.monotonic()
    classifier = Classifier(args.model_dir, batch_size=args.batch_size, timeout_s=args.timeout)
    loaded = time.monotonic()
    for note in classifier.notes:
        print(f"genreslice predict: note: {note}", file=sys.stderr)
    header, line_of = prediction_lines(args.format, classifier.classes)
    observer = TqdmPredictObserver(enabled=not args.no_progress)
    counts = collections.Counter()
    try:
        if header is not None:
            print(header, flush=True)
        for song in classifier.iter_classify(args.paths, vote=args.vote, workers=args.workers, observer=observer):
            counts[song.status] += 1
            observer.write(line_of(song))
    finally:
        observer.close()
    seconds = time.monotonic() - loaded
    classified, total = counts["ok"], sum(counts.values())
    failed = total - classified
    rate = f"; {classified / seconds:.1f} songs/s" if classified and seconds > 0 else ""
    print(f"genreslice predict: classified {classified} of {total} files in {seconds:.1f} s after loading the "
          f"model ({loaded - started:.1f} s){rate}" + (f"; {failed} could not be classified (reasons in the output)"
                                                        if failed else "") + ".", file=sys.stderr)
    return EXIT_SOME_FAILED if failed else 0


def add_demo_parser(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="the whole job on a generated example: build, train, evaluate, predict",
        description=(
            "Generate a small labelled corpus offline (Electronic, Folk, Jazz and Rock songs as tagged MP3s in an "
            "ARTIST/ALBUM folder tree; the genres differ in instruments, rhythm, tempo and harmony, and every song "
            "varies in key, tempo, melody and instruments), then run the real commands on it: 'genreslice build' "
            "(ID3 labels, splits by artist), 'train' (compact model, early stop), 'evaluate' (song accuracy by "
            "voting) and 'predict' on the songs of the test split, and print a report. About a minute on two "
            "cores. Running it again in the same folder reuses what is done."
        ),
        formatter_class=HelpFormatter,
    )
    demo.add_argument("--out", default="genreslice-demo", metavar="DIR",
                      help="folder for the corpus (music/), the data set (dataset/) and the model (model/)")
    demo.add_argument("--seed", type=non_negative_int, default=0,
                      help="seeds the corpus and the training: the same seed gives the same songs and model")
    demo.add_argument("--songs-per-genre", type=lambda text: whole_number(text, minimum=4), default=20,
                      metavar="N", help="songs of each genre (two per artist)")
    demo.add_argument("--seconds", type=lambda text: number(text, minimum=3.0, maximum=600.0), default=30.0,
                      help="length of each song")
    demo.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                      help="worker processes for build and SoX processes for predict (default: number of cores)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    """``genreslice demo``: corpus, then build, train, evaluate and predict through :func:`main`."""
    from genreslice.scripts.demo import DemoConfig, run_demo as demo

    config = DemoConfig(seed=args.seed, songs_per_genre=args.songs_per_genre, seconds=args.seconds)
    return demo(args.out, config, run_command=functools.partial(main, nested=True), workers=args.workers,
                progress=not args.no_progress)


def run_build(args: argparse.Namespace) -> int:
    spec = SpectrogramSpec(sample_rate=args.sample_rate, pixels_per_second=args.pixels_per_second,
                           resample_quality=args.resample_quality)
    if args.scheduler is not None and args.workers is not None:
        raise ParameterError("--workers applies to this machine only; with --scheduler the cluster's workers run "
                             "the build (start them with: dask worker SCHEDULER --nthreads 1 --nworkers N)")
    workers = args.workers or os.cpu_count() or 1
    config = BuildConfig(spec=spec, split_ratios=args.split_ratios, workers=workers, timeout_s=args.timeout)
    selection = GenreSelection(genres=args.genres, exclude_genres=args.exclude_genres,
                               max_tracks_per_genre=args.max_tracks_per_genre)
    source = make_label_source(args.labels, metadata=args.metadata, subset=args.subset, genre_map=args.genre_map)
    with contextlib.ExitStack() as stack:
        run_options: dict = {}
        if args.executor == "dask" or args.scheduler is not None:
            cluster = stack.enter_context(dask_cluster(workers=None if args.scheduler else workers,
                                                       scheduler=args.scheduler))
            run_options["executor_factory"] = cluster.executor
            config = replace(config, workers=cluster.threads)
            kind = "a local Dask cluster" if cluster.local else "the Dask cluster"
            print(f"Running on {kind} at {cluster.address}: {cluster.threads} worker threads.", flush=True)
            if not args.dry_run:
                run_options["sox"] = find_sox()
                cluster.check_sox(run_options["sox"])
        observer = TqdmObserver(enabled=not args.no_progress)
        try:
            if args.dry_run:
                plan = plan_dataset(args.audio_dir, source, config, selection=selection, observer=observer,
                                    **run_options)
            else:
                summary = build_dataset(args.audio_dir, args.out_dir, source, config, selection=selection,
                                        observer=observer, prune_missing=args.prune_missing,
                                        retry_failed=args.retry_failed, **run_options)
        finally:
            observer.close()
    if args.dry_run:
        print_plan(plan, args)
        return 0
    print_summary(summary)
    if summary.previous_classes is not None and summary.previous_classes != summary.classes:
        print(f"The genres changed: this folder held {', '.join(summary.previous_classes) or 'none'}; "
              f"now {', '.join(summary.classes) or 'none'}.")
    print_metadata_report(summary.plan)
    return 0


def print_plan(plan: BuildPlan, args: argparse.Namespace) -> None:
    """The dry run's report: tracks per genre and split, what is left out and why, metadata coverage."""
    balance = plan.balance()
    print(f"Dry run of {args.audio_dir} with --labels {args.labels}: {len(plan.rows)} audio files, "
          f"{sum(sum(row.values()) for row in balance.values())} tracks would be built. Nothing was written.")
    if balance:
        width = max(len("genre"), len("total"), *(len(genre) for genre in balance))
        header = f"{'genre':<{width}}" + "".join(f"{name:>12}" for name in (*SPLITS, "total"))
        print()
        print(header)
        print("-" * len(header))
        totals = dict.fromkeys(SPLITS, 0)
        for genre, counts in balance.items():
            print(f"{genre:<{width}}" + "".join(f"{counts[s]:>12}" for s in SPLITS) + f"{sum(counts.values()):>12}")
            for split in SPLITS:
                totals[split] += counts[split]
        print("-" * len(header))
        print(f"{'total':<{width}}" + "".join(f"{totals[s]:>12}" for s in SPLITS) + f"{sum(totals.values()):>12}")
    sources = plan.split_counts
    print()
    print(f"Splits of the {sum(sources.values())} labelled tracks (before --genres and caps): {sources['official']} "
          f"by the official split, {sources['artist']} by their artist's official split, {sources['artist_hash']} by "
          "artist hash; no artist is in two splits.")
    if plan.moved:
        print(f"  {plan.moved} tracks were moved from their official split to keep their artist in one split.")
    not_built = plan.not_built()
    if not_built:
        print()
        print(f"Not built ({sum(count for _, _, count, _ in not_built)} files):")
        for status, pattern, count, example in not_built[:15]:
            shown = example if count == 1 else f"{pattern}   e.g. {example}"
            print(f"  {count:>8}  {status}: {shown}")
        if len(not_built) > 15:
            print(f"  ... and {len(not_built) - 15} other kinds of reason")
    print_metadata_report(plan)


def print_metadata_report(plan: BuildPlan) -> None:
    lines = []
    if plan.unlisted:
        lines.append(f"audio files with no row in the metadata (skipped): {plan.unlisted}")
    if plan.missing_audio:
        shown = ", ".join(plan.missing_audio[:5]) + (", ..." if len(plan.missing_audio) > 5 else "")
        lines.append(f"metadata rows with no audio file: {len(plan.missing_audio)} (track ids {shown})")
    if plan.metadata_problems:
        lines.append(f"malformed metadata rows (skipped): {len(plan.metadata_problems)}, e.g.")
        lines.extend(f"  {problem}" for problem in plan.metadata_problems[:5])
    if lines:
        print()
        print("Metadata:")
        for line in lines:
            print(f"  {line}")


def print_summary(summary: BuildSummary) -> None:
    counts = summary.status_counts
    print(
        f"Built {summary.out_dir}: {counts['ok']} tracks ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['too_short']} too short; {summary.n_slices} slices, "
        f"{len(summary.classes)} genres."
    )
    if summary.processed:
        again = [f"{count} {what}" for count, what in ((summary.retried, "failed before and tried again"),
                                                       (summary.repaired, "with missing or damaged slices, redone"))
                 if count]
        details = f" ({'; '.join(again)})" if again else ""
        print(
            f"This run: {plural(summary.processed, 'track')}{details}, "
            f"{summary.audio_seconds / 3600:.2f} h of audio in {summary.wall_seconds:.1f} s "
            f"({summary.audio_hours_per_wall_hour:.0f} audio hours per wall hour)."
        )
    else:
        print(f"No audio work was needed: every selected track was already built ({summary.wall_seconds:.1f} s).")
    if summary.removed:
        print(f"Removed {plural(summary.removed, 'track')} whose audio files are gone, with their slices.")
    if summary.unreachable:
        print(f"{plural(summary.unreachable, 'built track')} cannot be read now: failed for now, slices kept; fix "
              "the files or folders and run the same command again.")
    if summary.unreadable_folders:
        folder, reason = next(iter(summary.unreadable_folders.items()))
        print(f"{plural(len(summary.unreadable_folders), 'folder')} could not be read (e.g. {folder!r}: {reason}); "
              "files there that were never built are not in this data set.")
    if summary.not_retried:
        print(f"{plural(summary.not_retried, 'failed track')} not tried again (SoX rejected it, or it failed "
              f"{MAX_FAILED_ATTEMPTS} times on the same file); --retry-failed tries again.")
    if summary.unowned:
        print(f"{plural(summary.unowned, 'slice folder')} that no track of this data set uses kept (slices of files "
              "that changed and could not be rendered again, or of tracks the journal does not list); "
              "--prune-missing removes them.")
    if counts["failed"] or counts["skipped"] or counts["too_short"]:
        print(f"Reasons per file: {summary.out_dir / 'tracks.csv'} (columns status, reason).")


def main(argv: list[str] | None = None, *, nested: bool = False) -> int:
    """The ``genreslice`` command; returns its exit status.

    ``nested``: called by another command (the demo runs build, train, evaluate and predict through it): stop
    signals and Ctrl-C are left to the outer command, which reports them once.
    """
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="genreslice: %(levelname)s: %(message)s")
    # Dask logs every connection and worker start at INFO, in this process and in the workers it starts; its
    # warnings (a worker died and was restarted) stay. Read when Dask is first imported.
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if nested:
        return run_command(args, parser, nested=True)
    with stop_signals_raise():  # also while an error or interruption is reported
        return run_command(args, parser)


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, *, nested: bool = False) -> int:
    """Run the chosen command; errors become one line on standard error and an exit status."""
    try:
        return args.handler(args)
    except ParameterError as err:
        parser.exit(EXIT_USAGE, f"genreslice {args.command}: error: {err}\n")
    except (GenresliceError, NotADirectoryError) as err:
        print(f"genreslice {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt as err:
        if nested:
            raise
        signum = getattr(err, "signum", signal.SIGINT)
        stopped = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        resume = "; run the same command again to resume" if args.command in ("build", "train", "demo") else ""
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"\ngenreslice {args.command}: {stopped}{resume}.", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # Output piped into a command that stopped reading (``| head``): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        # Disk full, permissions, a vanished folder: say which file, without a traceback.
        print(f"genreslice {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FATAL


if __name__ == "__main__":
    sys.exit(main())

"""``genreslice predict``: the genre of audio files and folders, by voting over their slices."""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from genreslice.pipeline.discovery import AUDIO_EXTENSIONS
from genreslice.pipeline.spectrogram import SOX_TIMEOUT_S
from genreslice.scripts.argtypes import positive_int, timeout_seconds, worker_count
from genreslice.scripts.commands import VOTE_HELP, HelpFormatter
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_SOME_FAILED, EXIT_USAGE
from genreslice.scripts.progress import TqdmPredictObserver
from genreslice.scripts.tensorflow_runtime import load_tensorflow
from genreslice.training.settings import INFERENCE_BATCH_SIZE
from genreslice.training.voting import VOTES

if TYPE_CHECKING:
    from genreslice.training.predict import SongPrediction


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``predict`` and its options to the ``genreslice`` subcommands."""
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
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice predict``: :func:`predict` with the options."""
    return predict(args.model_dir, args.paths, vote=args.vote, output_format=args.format, workers=args.workers,
                   batch_size=args.batch_size, timeout_s=args.timeout, progress=not args.no_progress,
                   verbose=args.verbose)


def predict(model_dir: str | os.PathLike, paths: Iterable[str | os.PathLike], *, vote: str = "majority",
            output_format: str = "table", workers: int = 1, batch_size: int = INFERENCE_BATCH_SIZE,
            timeout_s: float = SOX_TIMEOUT_S, progress: bool = True, verbose: bool = False,
            on_song: Callable[[SongPrediction], object] | None = None) -> int:
    """Stream one line per file to standard output, a summary to standard error.

    ``on_song`` is called with each :class:`~genreslice.training.predict.SongPrediction` after its line is
    written. Returns 0 when every file was classified, :data:`EXIT_SOME_FAILED` when some could not be.
    """
    load_tensorflow(verbose=verbose)
    from genreslice.training.predict import Classifier

    started = time.monotonic()
    classifier = Classifier(model_dir, batch_size=batch_size, timeout_s=timeout_s)
    loaded = time.monotonic()
    for note in classifier.notes:
        print(f"genreslice predict: note: {note}", file=sys.stderr)
    header, line_of = prediction_lines(output_format, classifier.classes)
    observer = TqdmPredictObserver(enabled=progress)
    counts = collections.Counter()
    try:
        if header is not None:
            print(header, flush=True)
        for song in classifier.iter_classify(paths, vote=vote, workers=workers, observer=observer):
            counts[song.status] += 1
            observer.write(line_of(song))
            if on_song is not None:
                on_song(song)
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

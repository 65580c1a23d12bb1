"""``genreslice compare``: trained models side by side on one split, as a table and a chart."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from genreslice.errors import GenresliceError
from genreslice.pipeline.layout import write_text_atomic
from genreslice.pipeline.splits import SPLITS
from genreslice.scripts.argtypes import DATA_SET, MODEL_FOLDER, check_folder_kinds
from genreslice.scripts.commands import HelpFormatter
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_USAGE
from genreslice.training.progress import EvaluateProgress
from genreslice.training.tensorflow_runtime import load_tensorflow
from genreslice.training.voting import VOTES

#: The --format choices (:data:`genreslice.training.compare.FORMATS`, not imported here: see :func:`compare`).
FORMATS = ("table", "csv", "json", "markdown")
USAGE = "genreslice compare MODEL_DIR [MODEL_DIR ...]"
#: The format an ``--out`` file's extension asks for when ``--format`` is not given.
FORMAT_OF_EXTENSION = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}


class CompareOutputError(GenresliceError):
    """The --out table or the --chart picture cannot be written."""


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``compare`` and its options to the ``genreslice`` subcommands."""
    compare = commands.add_parser(
        "compare",
        help="trained models side by side on one split: a table and a chart",
        description=(
            "Put the models in the MODEL_DIR folders side by side, one row per folder: the data set and its "
            "representation (features), the model preset and its number of parameters, the training settings "
            "that differ between the rows (an option a run left at its default shows the default; '-' where a model's version did not have the setting), epochs trained of the limit and "
            "why training stopped, training time, peak memory of the training process, and on one split: slice "
            "accuracy, song accuracy under the majority and the mean vote, and macro-F1 at song level. Scores come "
            "from MODEL_DIR/eval/SPLIT/ (written by 'genreslice evaluate'); a model without them, or whose "
            "evaluation is older than the model, is evaluated first (which writes them), on the data set given "
            "with --dataset or else on the one its model.json records. Models scored on different songs (another "
            "data set or split) are refused unless --allow-mixed; data sets built from one collection with other "
            "spectrogram settings hold the same songs and compare. A run that has not finished is listed with its "
            "best epoch so far and a note; one without a finished epoch has no scores."
        ),
        epilog=(f"Exit status: 0 when the table was made, {EXIT_FATAL} when it cannot be (a folder that is not a model "
                f"folder, a damaged model.json, no data set for a model to evaluate, models scored on different "
                f"songs, an --out or --chart file that cannot be written), {EXIT_USAGE} for bad options, a folder given twice or a data set given as a model folder."),
        formatter_class=HelpFormatter,
    )
    compare.add_argument("model_dirs", metavar="MODEL_DIR", nargs="+",
                         help="model folders made by 'genreslice train', each once")
    compare.add_argument("--split", choices=list(SPLITS), default="test", help="the split every model is scored on")
    compare.add_argument("--dataset", action="append", default=None, metavar="DIR", dest="datasets",
                         help="evaluate on this data set (made by 'genreslice build') the models that have no "
                              "evaluation of the split, or one made on another data set; may be given once per "
                              "data set: each model gets the one it was trained on, else one with its spectrogram "
                              "settings and genres. Needed when a model's data set was moved (its model.json "
                              "records the path it had)")
    compare.add_argument("--allow-mixed", action="store_true",
                         help="list models scored on different songs in one table anyway (the json output says "
                              "'mixed': true)")
    compare.add_argument("--no-evaluate", action="store_true",
                         help="evaluate nothing: a model without an evaluation of the split is listed without "
                              "scores")
    compare.add_argument("--vote", choices=list(VOTES), default="majority",
                         help="the song vote of the macro-F1 column (both song accuracies are always shown)")
    compare.add_argument("--format", choices=FORMATS, default=None,
                         help="table = aligned columns for the terminal; csv = every field, raw numbers (seconds, "
                              "fractions); json = every field with all training settings; markdown = the table's "
                              "columns for a report (default: from the --out file's extension .csv, .json or .md, "
                              "else table)")
    compare.add_argument("--out", metavar="FILE",
                         help="write the --format output to FILE instead of standard output (which then shows the "
                              "table)")
    compare.add_argument("--chart", metavar="FILE",
                         help="also draw a PNG chart to FILE: song accuracy per model under both votes as bars, "
                              "and each model's training time on a second axis (no chart unless asked)")
    compare.add_argument("--no-progress", action="store_true", help="no progress bar while models are evaluated")
    compare.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice compare``: :func:`compare` with the options."""
    return compare(args.model_dirs, split=args.split, datasets=args.datasets or (), allow_mixed=args.allow_mixed,
                   evaluate_missing=not args.no_evaluate, vote=args.vote, format=args.format, out=args.out,
                   chart=args.chart, progress=not args.no_progress, verbose=args.verbose)


class CompareProgress(EvaluateProgress):
    """Says which model is evaluated and why, on standard error, then draws a bar over its batches. TensorFlow
    is loaded (quietly unless ``verbose``) before the first evaluation only: a comparison of evaluated models
    never waits for it."""

    def __init__(self, *, enabled: bool = True, verbose: bool = False) -> None:
        super().__init__(enabled=enabled)
        self.verbose = verbose

    def on_evaluate(self, model_dir: Path, dataset_dir: Path, split: str, reason: str) -> None:
        load_tensorflow(quiet=not self.verbose)
        print(f"Evaluating {model_dir} on the {split} split of {dataset_dir}: {reason}.", file=sys.stderr,
              flush=True)


def compare(model_dirs: Sequence[str | os.PathLike], *, split: str = "test",
            datasets: Sequence[str | os.PathLike] = (), allow_mixed: bool = False, evaluate_missing: bool = True,
            vote: str = "majority", format: str | None = None, out: str | os.PathLike | None = None,
            chart: str | os.PathLike | None = None, progress: bool = True, verbose: bool = False) -> int:
    """Compare, print or write the table (and the chart), then the notes on standard error; returns 0."""
    check_folder_kinds(USAGE, [(path, MODEL_FOLDER) for path in model_dirs] + [(path, DATA_SET) for path in datasets])
    if format is None:
        format = FORMAT_OF_EXTENSION.get(Path(out).suffix.lower(), "table") if out else "table"
    from genreslice.training.compare import compare_models  # pandas and friends: not on every command's start-up

    observer = CompareProgress(enabled=progress, verbose=verbose)
    try:
        table = compare_models(model_dirs, split=split, dataset_dir=datasets, allow_mixed=allow_mixed,
                               evaluate_missing=evaluate_missing, vote=vote, observer=observer)
    finally:
        observer.close()
    if out:
        print(table.to_text("table"), end="", flush=True)  # shown even when the file cannot be written
        _write(out, "--out", lambda: write_text_atomic(out, table.to_text(format)))
    else:
        print(table.to_text(format), end="")
    if chart:
        _write(chart, "--chart", lambda: table.write_chart(chart))
    for note in table.notes:
        print(f"Note: {note}.", file=sys.stderr)
    written = [str(path) for path in (out, chart) if path]
    if written:
        print(f"Wrote {' and '.join(written)}", file=sys.stderr)
    return 0


def _write(path: str | os.PathLike, option: str, write) -> None:
    """Run ``write``; an OSError names ``path`` (not the temporary file beside it) and what to do."""
    try:
        write()
    except OSError as err:
        raise CompareOutputError(f"{option} {path}: cannot be written ({err.strerror or err}); choose a folder "
                                 "that exists and is writable, or free space, and run the same command again") from err

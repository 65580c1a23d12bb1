"""``genreslice inspect``: a built data set at a glance, in text and pictures."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from genreslice.scripts.argtypes import non_negative_int, whole_number
from genreslice.scripts.commands import HelpFormatter
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_USAGE

#: The folder the pictures go to by default, inside the data set.
DEFAULT_FOLDER = "inspect"


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``inspect`` and its options to the ``genreslice`` subcommands."""
    inspect = commands.add_parser(
        "inspect",
        help="a data set at a glance: classes per split, failures, durations, copies; charts and example slices",
        description=(
            "Show what a data set made by 'genreslice build' holds: its label source and split method; tracks, "
            "artists and slices of each class in each split, with a warning for a class missing from a split (its "
            "validation or test scores would mean nothing) or thin there; the files not built, by reason; the "
            "distribution of the tracks' durations; the groups of copies of one recording (duplicates.csv), with a "
            "warning for any built in several splits. Then draw it: a class-balance chart per split, a duration "
            "histogram and a grid of example slices of each class (random slices of random tracks), as PNGs, and "
            "one self-contained HTML page holding the report and the pictures. Reads the data set under its lock "
            "(a build running on it is waited for by nobody: inspect refuses and says so) and changes nothing in "
            "it but the pictures' folder."
        ),
        epilog=f"Exit status: 0 when the report was made, {EXIT_FATAL} when the folder is not a readable data set or "
               f"the pictures cannot be written, {EXIT_USAGE} for bad options.",
        formatter_class=HelpFormatter,
    )
    inspect.add_argument("dataset_dir", metavar="DATASET_DIR", help="a data set folder made by 'genreslice build'")
    inspect.add_argument("--out", metavar="DIR",
                         help=f"folder for the pictures and report.html (default: DATASET_DIR/{DEFAULT_FOLDER})")
    inspect.add_argument("--no-pictures", action="store_true", help="print the report only; draw and write nothing")
    inspect.add_argument("--examples", type=lambda text: whole_number(text, minimum=1, maximum=50), default=6,
                         metavar="N", help="example slices of each class in the grid, from as many tracks")
    inspect.add_argument("--seed", type=non_negative_int, default=0,
                         help="chooses the example slices: the same seed shows the same ones")
    inspect.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report; draw the pictures unless ``--no-pictures``."""
    from genreslice.training.dataset import reading_dataset
    from genreslice.training.errors import DatasetError
    from genreslice.training.inspection import inspect_dataset, report_text, write_pictures

    report = inspect_dataset(args.dataset_dir)
    print(report_text(report), end="")
    if args.no_pictures:
        return 0
    out = Path(args.out) if args.out else Path(args.dataset_dir) / DEFAULT_FOLDER
    try:
        with reading_dataset(args.dataset_dir):  # the example slices are read as the report's tables were
            written = write_pictures(report, out, examples=args.examples, seed=args.seed)
    except OSError as err:
        raise DatasetError(f"cannot write the pictures in {out}: {err.strerror or err}; choose another folder with "
                           "--out") from err
    print(f"\nPictures: {', '.join(os.fspath(path) for path in written)}")
    return 0

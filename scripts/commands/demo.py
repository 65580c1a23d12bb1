"""``genreslice demo``: the whole job on a generated example: build, train, evaluate, predict."""
from __future__ import annotations

import argparse
import os

from genreslice.scripts.argtypes import non_negative_int, number, whole_number, worker_count
from genreslice.scripts.commands import HelpFormatter
from genreslice.scripts.demo import DemoConfig, run_demo


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``demo`` and its options to the ``genreslice`` subcommands."""
    demo = commands.add_parser(
        "demo",
        help="the whole job on a generated example: build, train, evaluate, predict",
        description=(
            "Generate a small labelled corpus offline (Electronic, Folk, Jazz and Rock songs as tagged MP3s in an "
            "ARTIST/ALBUM folder tree; the genres differ in instruments, rhythm, tempo and harmony, and every song "
            "varies in key, tempo, melody and instruments), then run the real commands on it: 'genreslice build' "
            "(log-mel slices, ID3 labels, splits by artist), 'train' (the default model, the CRNN, early stop), "
            "'evaluate' (song accuracy by voting) and 'predict' on the songs of the test split, and print a "
            "report. About a minute and a half on two cores. Running it again in the same folder reuses what is "
            "done."
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
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice demo``: the corpus, then build, train, evaluate and predict through their commands' functions."""
    config = DemoConfig(seed=args.seed, songs_per_genre=args.songs_per_genre, seconds=args.seconds)
    return run_demo(args.out, config, workers=args.workers, progress=not args.no_progress)

"""``genreslice``: the command line. Argument parsing, logging set-up and progress bars live here only."""
from __future__ import annotations

import argparse
import collections
import logging
import os
import sys

from tqdm import tqdm

from genre_getters import LABEL_SOURCES, make_label_source
from pipeline.discovery import AUDIO_EXTENSIONS
from pipeline.build import BuildConfig, BuildObserver, BuildSummary, build_dataset
from pipeline.errors import ParameterError, PipelineError
from pipeline.spectrogram import RESAMPLE_QUALITIES, SpectrogramSpec
from pipeline.splits import parse_split_ratios

logger = logging.getLogger("genreslice")

EXIT_FATAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class TqdmObserver(BuildObserver):
    """Progress bars with ETA and running per-status counts."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.counts: collections.Counter[str] = collections.Counter()
        self.bar: tqdm | None = None
        # No monitor thread: bars update per track anyway, and a single-threaded process can fork its workers.
        tqdm.monitor_interval = 0

    def on_start(self, total: int) -> None:
        self.close()
        self.bar = tqdm(total=total, desc="tracks", unit="track", disable=not self.enabled, dynamic_ncols=True,
                        smoothing=0.05)

    def on_track_done(self, row: dict) -> None:
        self.counts[row["status"]] += 1
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(ok=self.counts["ok"], failed=self.counts["failed"], skipped=self.counts["skipped"],
                                 too_short=self.counts["too_short"], refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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


def make_parser() -> argparse.ArgumentParser:
    defaults = SpectrogramSpec()
    parser = argparse.ArgumentParser(
        prog="genreslice",
        description="Music genre recognition at data-set scale: build spectrogram-slice data sets from audio.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped or failed file")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build",
        help="turn a folder of audio files into a labelled data set of 128x128 spectrogram slices",
        description=(
            "Find every audio file under AUDIO_DIR (mp3, wav, flac, ogg, aiff; recursively), label it, assign a "
            "train/validation/test split by artist, render its spectrogram with SoX and cut it into 128x128 "
            "grayscale PNG slices in OUT_DIR. Interrupted builds resume: run the same command again. "
            "Per-file problems are recorded in OUT_DIR/tracks.csv and do not stop the build."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    build.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder of audio files (searched recursively)")
    build.add_argument("out_dir", metavar="OUT_DIR",
                       help="output folder: new, empty, or an earlier build of the same settings to resume")
    build.add_argument("--labels", choices=sorted(LABEL_SOURCES), default="id3",
                       help="where genre and artist come from (id3: the tags inside each file)")
    build.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                       help="worker processes (default: number of cores)")
    build.add_argument("--split-ratios", type=split_ratios, default="0.8,0.1,0.1",
                       help="train,validation,test fractions; tracks are split by artist, never by slice")
    build.add_argument("--sample-rate", type=positive_int, default=defaults.sample_rate,
                       help="analysis rate in Hz every file is resampled to (fixes the frequency axis)")
    build.add_argument("--pixels-per-second", type=positive_int, default=defaults.pixels_per_second,
                       help="spectrogram columns per second; a slice covers 128 of them")
    build.add_argument("--resample-quality", choices=list(RESAMPLE_QUALITIES), default=defaults.resample_quality,
                       help="SoX rate-effect quality; see the README's performance section for the cost")
    build.add_argument("--timeout", type=timeout_seconds, default=600.0,
                       help="seconds SoX may spend on one file before it is recorded as failed")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=run_build)
    return parser


def run_build(args: argparse.Namespace) -> int:
    spec = SpectrogramSpec(sample_rate=args.sample_rate, pixels_per_second=args.pixels_per_second,
                           resample_quality=args.resample_quality)
    config = BuildConfig(spec=spec, split_ratios=args.split_ratios, workers=args.workers, timeout_s=args.timeout)
    observer = TqdmObserver(enabled=not args.no_progress)
    try:
        summary = build_dataset(args.audio_dir, args.out_dir, make_label_source(args.labels), config,
                                observer=observer)
    finally:
        observer.close()
    print_summary(summary)
    return 0


def print_summary(summary: BuildSummary) -> None:
    counts = summary.status_counts
    if not sum(counts.values()):
        print(f"No audio files ({', '.join(sorted(ext.lstrip('.') for ext in AUDIO_EXTENSIONS))}) were found; "
              f"the data set in {summary.out_dir} is empty.")
        return
    print(
        f"Built {summary.out_dir}: {counts['ok']} tracks ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['too_short']} too short; {summary.n_slices} slices, "
        f"{len(summary.classes)} genres."
    )
    if summary.processed:
        print(
            f"This run: {summary.processed} tracks, {summary.audio_seconds / 3600:.2f} h of audio in "
            f"{summary.wall_seconds:.1f} s ({summary.audio_hours_per_wall_hour:.0f} audio hours per wall hour)."
        )
    else:
        print(f"Nothing left to do: every track was already built ({summary.wall_seconds:.1f} s).")
    if counts["failed"] or counts["skipped"] or counts["too_short"]:
        print(f"Reasons per file: {summary.out_dir / 'tracks.csv'} (columns status, reason).")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="genreslice: %(levelname)s: %(message)s")
    try:
        return args.handler(args)
    except ParameterError as err:
        parser.exit(EXIT_USAGE, f"genreslice {args.command}: error: {err}\n")
    except (PipelineError, NotADirectoryError) as err:
        print(f"genreslice {args.command}: error: {err}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print(f"\ngenreslice {args.command}: interrupted; run the same command again to resume.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

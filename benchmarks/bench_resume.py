"""Resume-check benchmark: ``python -m benchmarks.bench_resume`` (or ``make bench-resume``).

Every build run checks the tracks the journal says are built before trusting them: are all their slice files
there, and unchanged? This measures, in one run on one synthetic data set in the build's layout (``--tracks``
tracks of 11 slices, warm page cache), three ways of checking, per built track:

* counting the files of each track folder (what earlier versions did: a truncated slice went unnoticed);
* the build's check: each slice's size against the size recorded in the journal when it was written
  (``genreslice.pipeline.stock.slices_intact``: one ``stat`` per slice);
* reading and decoding every slice PNG (what finding a damaged file of unchanged size would take);

and, as the yardstick, the SoX step for one 30-second MP3 (what rendering a track again costs).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from genreslice.pipeline import layout
from genreslice.pipeline.stock import slices_intact
from genreslice.pipeline.tracks import TrackRow
from genreslice.pipeline.journal import JournalRecord
from genreslice.pipeline.png import decode_gray_png
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.spectrogram import SpectrogramSpec, render_slices
from benchmarks.synthetic_slices import write_synthetic_dataset
from benchmarks.timing import run_times

SLICES_PER_TRACK = 11  # a 30-s song


def median_seconds(repeat: int, action) -> float:
    return statistics.median(run_times(repeat, action))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_resume", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=2000, help="built tracks in the synthetic data set")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each check; the median is reported")
    args = parser.parse_args(argv)
    sox = find_sox()
    with tempfile.TemporaryDirectory(prefix="genreslice-bench-resume-") as tmp:
        root = Path(tmp)
        per_genre = -(-args.tracks // 4)
        print(f"writing {4 * per_genre} tracks x {SLICES_PER_TRACK} slices ...", flush=True)
        out = write_synthetic_dataset(root / "dataset", tracks_per_genre=per_genre, slices_per_track=SLICES_PER_TRACK,
                                      split_tracks=(1, 0, 0))
        records = []
        for folder in sorted((out / layout.SLICES_DIR).glob("*/*")):
            track_id = folder.name
            sizes = [(folder / layout.slice_name(track_id, index)).stat().st_size for index in range(SLICES_PER_TRACK)]
            records.append(JournalRecord(row=TrackRow(track_id=track_id, path=f"{track_id}.mp3", status="ok",
                                                      n_slices=SLICES_PER_TRACK),
                                         size=0, mtime_ns=0, slice_bytes=tuple(sizes)))
        n = len(records)

        def count_files() -> None:
            assert all(len(os.listdir(out / layout.track_slice_dir(r.row.track_id))) == r.row.n_slices for r in records)

        def check_sizes() -> None:
            assert all(slices_intact(out, record) for record in records)

        def decode_all() -> None:
            for record in records:
                folder = out / layout.track_slice_dir(record.row.track_id)
                for index in range(record.row.n_slices):
                    decode_gray_png((folder / layout.slice_name(record.row.track_id, index)).read_bytes())

        song = root / "song.mp3"
        subprocess.run([sox.path, "-R", "-n", "-r", "44100", "-c", "2", "-C", "192", os.fspath(song), "synth", "30",
                        "square", "220", "sine", "330", "pinknoise", "vol", "0.3"], check=True, capture_output=True)
        decode_all()  # warm the page cache for every method alike
        figures = {
            "count the files of each track folder (before)": median_seconds(args.repeat, count_files),
            "stat each slice, compare with the recorded size (now)": median_seconds(args.repeat, check_sizes),
            "read and decode every slice PNG": median_seconds(max(1, args.repeat // 2), decode_all),
        }
        render = median_seconds(3, lambda: render_slices(song, SpectrogramSpec(), sox_path=sox.path))
    print(f"\n{n} built tracks, {n * SLICES_PER_TRACK} slices (warm page cache), median of {args.repeat} runs:")
    width = max(len(name) for name in figures)
    for name, seconds in figures.items():
        print(f"  {name:<{width}}  {seconds:7.3f} s   {seconds / n * 1e6:7.1f} us per track   "
              f"{seconds / n / render:7.4f} x rendering a track")
    print(f"\nrendering one 30-s MP3 again (SoX step and slicing): {render * 1000:.1f} ms")
    count, sizes = figures["count the files of each track folder (before)"], \
        figures["stat each slice, compare with the recorded size (now)"]
    print(f"size check / file count: {sizes / count:.2f}x; for 100,000 built tracks about {sizes / n * 1e5:.1f} s "
          "per build run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

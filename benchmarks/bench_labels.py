"""Label benchmark: ``python -m benchmarks.bench_labels`` (or ``make bench-labels``).

Labels and splits are decided for every file before any audio work (and again on every resumed run), so their
cost is measured against the audio work, in one run on this machine:

* reading ID3 tags (``--labels id3``) of real MP3 files, against the SoX spectrogram step on the same files;
* loading an FMA ``tracks.csv`` with the full data set's 106,574 rows (generated in FMA's layout, since the real
  file is not in the repository), and planning 106,574 tracks from it;
* loading the real MTG-Jamendo split-0 TSVs (55,094 tracks), when ``../shared/data`` is present, and planning them.

Figures are seconds (best of ``--repeat``) and peak Python memory (tracemalloc).
"""
from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

from genreslice.genre_getters import FmaLabelSource, Id3LabelSource, JamendoLabelSource
from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.plan import plan_build
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.spectrogram import SpectrogramSpec, sox_command
from benchmarks.bench_build import make_corpus
from tests.helpers import write_tracks_csv  # the benchmark's data generator, shared with the tests

FMA_TRACKS = 106_574
SHARED_JAMENDO = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtg-jamendo" / "split-0"
GENRES = ("Rock", "Electronic", "Hip-Hop", "Folk", "Pop", "Experimental", "Instrumental", "International", "")


def timed(repeat: int, action) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def peak_memory(action) -> float:
    """Peak MiB of Python allocations while ``action`` runs."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def fake_files(paths: list[str]) -> list[AudioFile]:
    return [AudioFile(path=Path("/audio") / rel, rel_path=rel, size=1, mtime_ns=1) for rel in paths]


def write_fma_like(path: Path, n_tracks: int) -> Path:
    rng = random.Random(0)
    bio = "<p>" + "An artist biography with commas, \"quotes\" and a line break.\n" * 6 + "</p>"
    artist_split = [rng.choice(["training"] * 8 + ["validation", "test"]) for _ in range(16_000)]
    artists = [rng.randrange(16_000) for _ in range(n_tracks)]
    tracks = [{"track_id": track_id, "genre_top": rng.choice(GENRES), "artist_id": artist,
               "split": artist_split[artist],
               "subset": rng.choice(["small", "medium", "medium", "large", "large", "large"]), "bio": bio,
               "title": f"Track {track_id}, take {rng.randrange(9)}"}
              for track_id, artist in zip(range(2, 2 + n_tracks), artists)]
    return write_tracks_csv(path, tracks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="MP3 files for the tag-reading comparison")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is reported")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="genreslice-bench-labels-") as tmp:
        tmp_path = Path(tmp)
        sox = find_sox()
        paths = make_corpus(tmp_path / "audio", args.files, 30.0, sox.path)
        id3 = Id3LabelSource()
        tags_s, _ = timed(args.repeat, lambda: [id3.label(path, path.name) for path in paths])
        spec = SpectrogramSpec()

        def spectrograms() -> None:
            for path in paths:
                subprocess.run(sox_command(path, spec, sox_path=sox.path), check=True, capture_output=True)

        sox_s, _ = timed(1, spectrograms)
        print(f"id3 tags:  {1000 * tags_s / len(paths):7.2f} ms/file; SoX spectrogram step "
              f"{1000 * sox_s / len(paths):7.2f} ms/file; tags/SoX = {tags_s / sox_s:.3f}")

        tracks_csv = write_fma_like(tmp_path / "fma_metadata" / "tracks.csv", FMA_TRACKS)
        size_mib = tracks_csv.stat().st_size / 2**20
        load_s, fma = timed(args.repeat, lambda: FmaLabelSource(metadata=tracks_csv))
        memory = peak_memory(lambda: FmaLabelSource(metadata=tracks_csv))
        files = fake_files([f"{n // 1000:03d}/{n:06d}.mp3" for n in range(2, 2 + FMA_TRACKS)])
        plan_s, plan = timed(args.repeat, lambda: plan_build(files, fma))
        print(f"fma:       tracks.csv {FMA_TRACKS} rows ({size_mib:.0f} MiB) loads in {load_s:.2f} s, peak "
              f"{memory:.0f} MiB; planning {len(plan.rows)} files {plan_s:.2f} s "
              f"({1e6 * plan_s / len(files):.1f} us/file)")

        if SHARED_JAMENDO.is_dir():
            load_s, jamendo = timed(args.repeat, lambda: JamendoLabelSource(metadata=SHARED_JAMENDO))
            memory = peak_memory(lambda: JamendoLabelSource(metadata=SHARED_JAMENDO))
            files = fake_files([row.path for row in jamendo._rows.values()])
            plan_s, plan = timed(args.repeat, lambda: plan_build(files, jamendo))
            print(f"jamendo:   split-0 ({len(files)} tracks) loads in {load_s:.2f} s, peak {memory:.0f} MiB; "
                  f"planning {plan_s:.2f} s ({1e6 * plan_s / len(files):.1f} us/file)")
        else:
            print("jamendo:   ../shared/data is absent; skipped")
        print(f"For scale: the SoX step alone for {FMA_TRACKS} files at the rate above is "
              f"{FMA_TRACKS * sox_s / len(paths) / 3600:.1f} core-hours.")


if __name__ == "__main__":
    main()

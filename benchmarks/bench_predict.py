"""Prediction benchmark: ``python -m benchmarks.bench_predict`` (or ``make bench-predict``).

Trains a ``compact`` model for one epoch on a synthetic slice data set (its weights do not matter for speed),
makes a folder of 30-second stereo 44.1 kHz MP3 songs with SoX (as FMA's clips), then measures in one run:

* **songs per second** classifying the folder with ``Classifier.classify`` at 1 and at 2 workers (SoX
  processes), after the model is loaded: the median of ``--repeat`` passes, alternating worker counts;
* **where the time goes** on one worker: SoX decoding and slicing alone (``render_slices``, song after song)
  and the model alone (``predict_slices`` on all the songs' slices at once);
* **batched vs per-song model calls**: the model's time for the same slices in calls of ``--batch-size`` and in
  one call per song;
* **the command end to end**: wall time of ``genreslice predict MODEL_DIR SONGS --workers 2`` in a fresh
  process, TensorFlow import and model loading included.

Target: under 1 second per song after the model is loaded, i.e. above 1 song/s, on 1 worker.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.synthetic_slices import write_synthetic_dataset  # noqa: E402

#: SoX synth recipes, so the songs differ in content (and in how long the MP3 decoder takes).
RECIPES = (
    ("sine", "220", "sine", "330", "tremolo", "3", "40"),
    ("square", "110", "pinknoise", "tremolo", "6", "60"),
    ("sawtooth", "165", "sine", "495", "tremolo", "2", "30"),
    ("pinknoise", "triangle", "880", "tremolo", "4", "80"),
)


def make_songs(folder: Path, count: int, seconds: float) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"song {index:03d}.mp3"
        recipe = RECIPES[index % len(RECIPES)]
        sources, effects = recipe[: recipe.index("tremolo")], recipe[recipe.index("tremolo"):]
        subprocess.run(["sox", "-R", "-n", "-r", "44100", "-c", "2", os.fspath(path), "synth", f"{seconds}",
                        *sources, *effects, "vol", "0.4"], check=True, capture_output=True, timeout=300)
        paths.append(path)
    return paths


def make_model(root: Path) -> Path:
    from genreslice.training.settings import TrainConfig
    from genreslice.training.train import train_model

    dataset = write_synthetic_dataset(root / "dataset", tracks_per_genre=4, slices_per_track=8, split_tracks=(2, 1, 1))
    train_model(dataset, root / "model", TrainConfig(model="compact", epochs=1, patience=0, target_accuracy=None))
    return root / "model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=40, help="songs in the folder (default: 40)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each song (default: 30)")
    parser.add_argument("--repeat", type=int, default=3, help="passes per worker count (default: 3)")
    parser.add_argument("--batch-size", type=int, default=256, help="slices per model call (default: 256)")
    args = parser.parse_args(argv)

    import numpy as np

    from genreslice.training.predict import Classifier
    from genreslice.pipeline.spectrogram import render_slices

    with tempfile.TemporaryDirectory(prefix="genreslice-bench-predict-") as tmp:
        root = Path(tmp)
        print(f"Making {args.songs} songs of {args.seconds:g} s and a compact model ...", flush=True)
        songs = make_songs(root / "songs", args.songs, args.seconds)
        model_dir = make_model(root)

        started = time.perf_counter()
        classifier = Classifier(model_dir, batch_size=args.batch_size)
        load_s = time.perf_counter() - started
        classifier.classify(songs[:4])  # the first model call builds its graph: not part of the figures
        runs: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for workers in runs:
                started = time.perf_counter()
                results = classifier.classify(root / "songs", workers=workers)
                runs[workers].append(time.perf_counter() - started)
                assert all(song.ok for song in results) and len(results) == args.songs

        started = time.perf_counter()
        decoded = [render_slices(path, classifier.spec, sox_path=classifier.sox.path).slices for path in songs]
        decode_s = time.perf_counter() - started
        slices = np.concatenate(decoded)
        model_batched, model_per_song = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            classifier.predict_slices(slices)
            model_batched.append(time.perf_counter() - started)
            started = time.perf_counter()
            for song_slices in decoded:
                classifier.predict_slices(song_slices)
            model_per_song.append(time.perf_counter() - started)

        started = time.perf_counter()
        command = subprocess.run([sys.executable, "-m", "genreslice", "predict", os.fspath(model_dir),
                                  os.fspath(root / "songs"), "--workers", "2", "--format", "json", "--no-progress"],
                                 capture_output=True, text=True, timeout=600)
        command_s = time.perf_counter() - started
        if command.returncode != 0 or len(command.stdout.splitlines()) != args.songs:
            print(command.stderr, file=sys.stderr)
            raise SystemExit(f"genreslice predict failed with status {command.returncode}")

    n = args.songs
    print()
    print(f"{n} songs of {args.seconds:g} s, {len(slices)} slices ({len(slices) / n:.1f} per song); "
          f"model loaded in {load_s:.2f} s; {os.cpu_count()} cores; median of {args.repeat} passes")
    print(f"{'workers':>8} {'seconds':>9} {'songs/s':>9} {'s/song':>8}")
    for workers, times in runs.items():
        median = statistics.median(times)
        print(f"{workers:>8} {median:>9.2f} {n / median:>9.2f} {median / n:>8.3f}")
    one, two = statistics.median(runs[1]), statistics.median(runs[2])
    print(f"2 workers vs 1: {one / two:.2f}x")
    batched, per_song = statistics.median(model_batched), statistics.median(model_per_song)
    print(f"one worker's time: SoX decode + slicing {decode_s / n * 1000:.0f} ms/song, model "
          f"{batched / n * 1000:.1f} ms/song ({len(slices) / batched:.0f} slices/s)")
    print(f"model calls of {args.batch_size} slices vs one call per song: {batched:.3f} vs {per_song:.3f} s "
          f"({per_song / batched:.2f}x)")
    print(f"genreslice predict, {n} songs, 2 workers, in a fresh process: {command_s:.2f} s wall "
          f"({command.stderr.strip().splitlines()[-1]})")
    verdict = "meets" if one / n < 1.0 else "MISSES"
    print(f"target: under 1 s per song after loading, 1 worker: {one / n:.3f} s/song ({verdict} it)")
    return 0 if one / n < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

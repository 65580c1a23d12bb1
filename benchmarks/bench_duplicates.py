"""Planted copies: ``python -m benchmarks.bench_duplicates`` (or ``make bench-duplicates``).

A generated corpus of distinct songs in which every song of a genre has the same tempo (the hardest distinct songs
to tell apart: the demo synthesizer's arrangement of one genre at one tempo, in other keys, chords and melodies),
as tagged MP3s; then copies of some of them planted as a personal library holds them: re-encoded from the MP3 at
another bitrate (64-320 kbps) and sample rate (16-48 kHz), 1-4 dB louder or quieter, some in stereo, with up to
2 s trimmed off the start or silence added before it, renamed, and tagged with another artist.

The synthesizer can make the same song twice (the same key and chord loop at the genre's one tempo, only the
random drum details differing): a song whose log-magnitude spectrogram correlates above 0.9 with one made before is
drawn again (distinct songs correlate about 0.5), so every "distinct" song is one.

``genreslice build`` (the ID3 tags label it; auto duplicates) then runs ``--repeat`` (5) times on the same files in each
of two ways, interleaved (A, B, A, B, ...): with near-copy fingerprinting and without
(``BuildConfig(near_copies=False)``). Printed:

* recall: planted (original, copy) pairs whose two files end in one group of ``duplicates.csv``;
* false groups: groups holding two or more distinct songs; false pairs: pairs of distinct songs grouped;
* leaks: groups whose built files lie in more than one split (0 expected);
* the fastest build of each kind and their ratio, the ratio of the median builds, and of the median CPU seconds
  (this process and its children: the workers and their SoX), steadier than wall time on a busy machine; and the
  cost measured directly: every track's fingerprint and
  SHA-256 computed again in this process (the build spreads that over its workers), and the matching (which the
  build does in its main process), as a share of the fastest build without fingerprints;
* the highest similarity of two distinct songs of one genre, every pair compared (the margin below the threshold);
* the seconds :func:`~genreslice.pipeline.duplicates.near_copies` takes for 20,000 fingerprints (of random bits:
  each compared with its 10 nearest by profile, as real ones are: the bits of about 10 pairs per track are compared,
  the profiles of every pair).
"""
from __future__ import annotations

import argparse
import csv
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from genreslice.pipeline.fingerprint import NEAR_COPY_SIMILARITY


class _FixedTempo:
    """A random generator whose first ``uniform`` draw (each demo style's tempo) is ``bpm``."""

    def __init__(self, rng: np.random.Generator, bpm: float) -> None:
        self._rng, self._bpm, self._used = rng, bpm, False

    def uniform(self, *args, **kwargs):
        if not self._used:
            self._used = True
            return self._bpm
        return self._rng.uniform(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._rng, name)


_TEMPO = {"Electronic": 126.0, "Folk": 90.0, "Jazz": 120.0, "Rock": 128.0}


#: Songs whose log-magnitude spectrograms correlate more than this are the same song drawn twice.
_SAME_SONG_CORRELATION = 0.9


def _log_spectrogram(audio: np.ndarray) -> np.ndarray:
    frames = np.lib.stride_tricks.sliding_window_view(audio, 1024)[::512] * np.hanning(1024)
    return np.log1p(np.abs(np.fft.rfft(frames, axis=1))).ravel()


def write_corpus(folder: Path, *, songs_per_genre: int, copies_per_genre: int, seconds: float,
                 seed: int) -> tuple[list[tuple[str, str]], int]:
    """The corpus's MP3s under ``folder``; returns the planted ``(original, copy)`` pairs of relative paths, and
    the songs drawn again because the synthesizer had made the same song before (same key, chords and arrangement
    at the genre's one tempo: their spectrograms correlate above :data:`_SAME_SONG_CORRELATION`)."""
    from genreslice.scripts.demo_corpus import GENRES, _tag, _write_wav, synthesize_song

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    planted, redrawn = [], 0
    with tempfile.TemporaryDirectory() as scratch:
        for genre in GENRES:
            spectrograms: list[np.ndarray] = []
            for index in range(songs_per_genre):
                name = f"{genre.lower()}-{index:03d}.mp3"
                wav = Path(scratch) / "song.wav"
                while True:
                    audio = synthesize_song(genre, _FixedTempo(np.random.default_rng(rng.integers(1 << 32)),
                                                               _TEMPO[genre]), seconds)
                    spectrogram = _log_spectrogram(audio)
                    if all(np.corrcoef(spectrogram, other)[0, 1] <= _SAME_SONG_CORRELATION for other in spectrograms):
                        break
                    redrawn += 1
                spectrograms.append(spectrogram)
                _write_wav(wav, audio)
                _sox(wav, folder / name, "192", "rate", "44100")
                _tag(folder / name, genre=genre, artist=f"{genre} Artist {index % 7}", album="Album", title=name)
            for index in range(copies_per_genre):
                original = f"{genre.lower()}-{index:03d}.mp3"
                copy = f"compilation/Track {index:02d} of {genre} (copy).mp3"
                (folder / copy).parent.mkdir(exist_ok=True)
                effects = ["rate", str(int(rng.choice([16000, 22050, 32000, 44100, 48000])))]
                if rng.random() < 0.5:
                    effects += ["channels", "2"]
                effects += ["gain", f"{rng.choice([-1, 1]) * rng.uniform(1, 4):.1f}"]
                shift = rng.uniform(0.2, 2.0)
                effects += ["trim", f"{shift:.2f}"] if rng.random() < 0.7 else ["pad", f"{shift:.2f}", "0"]
                bitrate = str(int(rng.choice([64, 96, 128, 160, 256, 320])))
                _sox(folder / original, folder / copy, bitrate, *effects)
                _tag(folder / copy, genre=genre, artist="Various Artists", album="Hits", title=copy)
                planted.append((original, copy))
    return planted, redrawn


def _sox(source: Path, target: Path, bitrate: str, *effects: str) -> None:
    """``source`` as an MP3 of ``bitrate`` kbps at ``target``, through SoX ``effects``."""
    subprocess.run(["sox", "-V1", str(source), "-C", bitrate, str(target), *effects], check=True)


def _build(audio: Path, out: Path, *, near_copies: bool, workers: int) -> tuple[float, float]:
    from genreslice.genre_getters.id3 import Id3LabelSource
    from genreslice.pipeline.build import BuildConfig, build_dataset

    shutil.rmtree(out, ignore_errors=True)
    started, cpu = time.perf_counter(), _cpu_seconds()
    build_dataset(audio, out, Id3LabelSource(), BuildConfig(workers=workers, near_copies=near_copies))
    return time.perf_counter() - started, _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its children that have ended (the build's workers, and the SoX processes
    they ran, once the pool is shut down)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _groups(out: Path) -> dict[int, list[dict]]:
    groups: dict[int, list[dict]] = {}
    with open(out / "duplicates.csv", newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            groups.setdefault(int(record["group"]), []).append(record)
    return groups


def _matching_seconds(out: Path, song_of: dict[str, str]) -> tuple[float, float, int, float]:
    """Seconds to fingerprint every built track again from its slices and to find the near copies among them; and
    the highest similarity of two distinct songs of one genre (every pair compared)."""
    import json

    from genreslice.pipeline import layout
    from genreslice.pipeline.audio_jobs import track_fingerprint
    from genreslice.pipeline.duplicates import file_sha256, near_copies
    from genreslice.pipeline.fingerprint import similarities
    from genreslice.pipeline.png import decode_gray_png
    from genreslice.pipeline.spectrogram import SpectrogramSpec
    from genreslice.pipeline.tracks import read_tracks_csv

    dataset = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    spec = SpectrogramSpec()
    rate = dataset["spectrogram"]["columns_per_second"]
    rows = [row for row in read_tracks_csv(out / "tracks.csv") if row.status == "ok"]
    slices = {row.path: np.stack([decode_gray_png((out / layout.slice_path(row.track_id, index)).read_bytes())
                                  for index in range(row.n_slices)]) for row in rows}
    started = time.perf_counter()
    fingerprints = {path: track_fingerprint(pixels, spec, rate) for path, pixels in slices.items()}
    audio = out.parent / "corpus"
    for row in rows:
        file_sha256(audio / row.path)
    computing = time.perf_counter() - started
    started = time.perf_counter()
    near_copies(fingerprints)
    matching = time.perf_counter() - started
    songs = sorted(path for path in fingerprints if path not in song_of)
    closest = 0.0
    for index, path in enumerate(songs):
        others = [other for other in songs[index + 1:] if other.split("-")[0] == path.split("-")[0]]
        if others:
            closest = max(closest, float(similarities(fingerprints[path], [fingerprints[o] for o in others]).max()))
    return computing, matching, len(rows), closest


def _scale(count: int, seed: int) -> float:
    from genreslice.pipeline.duplicates import near_copies
    from genreslice.pipeline.fingerprint import MAX_FRAMES, Fingerprint

    rng = np.random.default_rng(seed)
    fingerprints = {f"{index:06d}": Fingerprint(bits=rng.integers(0, 1 << 32, MAX_FRAMES, dtype=np.uint32),
                                                profile=rng.normal(0, 10, 34).astype(np.float32), active=1.0,
                                                frames_per_second=12.5) for index in range(count)}
    started = time.perf_counter()
    near_copies(fingerprints)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_duplicates", description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="bench-out/duplicates", help="working folder (default: %(default)s)")
    parser.add_argument("--songs-per-genre", type=int, default=40, help="distinct songs of each of the 4 genres")
    parser.add_argument("--copies-per-genre", type=int, default=10, help="planted copies in each genre")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each song")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scale", type=int, default=20000, help="fingerprints matched in the scaling check")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--repeat", type=int, default=5, help="builds of each kind, interleaved")
    args = parser.parse_args(argv)
    work = Path(args.work)
    corpus = work / "corpus"
    marker = work / "planted.csv"
    if not marker.is_file():
        shutil.rmtree(corpus, ignore_errors=True)
        planted, redrawn = write_corpus(corpus, songs_per_genre=args.songs_per_genre,
                                        copies_per_genre=args.copies_per_genre, seconds=args.seconds, seed=args.seed)
        marker.write_text("".join(f"{a}\t{b}\n" for a, b in planted), encoding="utf-8")
        (work / "redrawn.txt").write_text(f"{redrawn}\n", encoding="utf-8")
    planted = [tuple(line.split("\t")) for line in marker.read_text(encoding="utf-8").splitlines()]
    redrawn = int((work / "redrawn.txt").read_text(encoding="utf-8"))
    files = sorted(path for path in corpus.rglob("*.mp3"))
    print(f"corpus: {len(files)} MP3s, {len(files) - len(planted)} distinct songs of {args.seconds:g} s "
          f"(each genre at one tempo; {redrawn} drawn again because the synthesizer had made the same song before), "
          f"{len(planted)} planted copies")
    times = {True: [], False: []}
    for _ in range(args.repeat):
        for near in (True, False):
            times[near].append(_build(corpus, work / ("with" if near else "without"), near_copies=near,
                                      workers=args.workers))
    groups = _groups(work / "with")
    group_of = {record["path"]: number for number, records in groups.items() for record in records}
    found = sum(1 for original, copy in planted if original in group_of and group_of.get(original) == group_of.get(copy))
    song_of = {copy: original for original, copy in planted}
    false_groups = false_pairs = leaks = 0
    for records in groups.values():
        songs = {song_of.get(record["path"], record["path"]) for record in records}
        false_groups += len(songs) > 1
        false_pairs += len(songs) * (len(songs) - 1) // 2
        leaks += len({record["split"] for record in records if record["status"] == "ok"}) > 1
    print(f"recall: {found}/{len(planted)} planted copies found ({found / len(planted):.1%}); "
          f"groups: {len(groups)}; false groups: {false_groups}; false pairs of distinct songs: {false_pairs}; "
          f"groups in more than one split: {leaks}")
    similarities = sorted(float(record["similarity"]) for records in groups.values() for record in records)
    if similarities:
        print(f"similarity of grouped files: min {similarities[0]:.3f}, median "
              f"{similarities[len(similarities) // 2]:.3f}")
    walls = {near: [wall for wall, _ in runs] for near, runs in times.items()}
    cpus = {near: [cpu for _, cpu in runs] for near, runs in times.items()}
    with_s, without_s = min(walls[True]), min(walls[False])
    print(f"build with fingerprints: {with_s:.2f} s (runs: {', '.join(f'{t:.2f}' for t in walls[True])}); without: "
          f"{without_s:.2f} s (runs: {', '.join(f'{t:.2f}' for t in walls[False])}); ratio of the fastest "
          f"{with_s / without_s:.3f}, of the medians {statistics.median(walls[True]) / statistics.median(walls[False]):.3f}")
    print(f"CPU seconds of the build, its workers and their SoX: with {statistics.median(cpus[True]):.2f}, without "
          f"{statistics.median(cpus[False]):.2f} (medians); ratio "
          f"{statistics.median(cpus[True]) / statistics.median(cpus[False]):.3f}")
    computing, matching, tracks, closest = _matching_seconds(work / "with", song_of)
    share = (computing / args.workers + matching) / without_s
    print(f"fingerprints and SHA-256 of {tracks} tracks, computed again here: {computing:.3f} s (in the build, "
          f"spread over {args.workers} workers); matching them: {matching:.3f} s; (computing / workers + matching) "
          f"is {100 * share:.1f}% of the fastest build without fingerprints")
    print(f"the most alike distinct songs of one genre (all pairs): similarity {closest:.3f} (copies from "
          f"{NEAR_COPY_SIMILARITY})")
    seconds = _scale(args.scale, args.seed)
    print(f"matching {args.scale:,} fingerprints: {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Build benchmark: ``python -m benchmarks.bench_build`` (or ``make bench-build``).

Generates 30-second MP3 files (44.1 kHz stereo, 192 kbps) and measures, in one run on the same files:

* the floor: SoX decoding alone (``sox FILE -n``);
* the predecessor's procedure: re-encode to a temporary mono MP3, ``sox ... spectrogram`` to a PNG file, slice
  with PIL;
* ``genreslice build`` (the real command, in a subprocess) with 1 and with 2 workers;
* ``genreslice build --features mel`` with 1 worker, and each build of the first file alone: the fixed cost of a
  build (start-up; for mel also loading librosa, once per build) and the cost of each further file;
* parts of the cost: SoX's resampler at each quality, the mel step (SoX's samples, then the mel spectrogram
  computed as genreslice does and as ``librosa.feature.melspectrogram`` does), and slice PNG writes at several
  zlib levels.

Every figure is seconds per file, the best of ``--repeat`` runs; targets are ratios within this one run. The floor
and the one-worker ``sox`` and ``mel`` builds take turns, run by run, so that a change in the machine's load weighs
on them alike.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from mutagen.id3 import ID3, TCON, TPE1
from PIL import Image

from genreslice.pipeline.png import encode_gray_png
from genreslice.pipeline.slicing import slice_spectrogram
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.spectrogram import RESAMPLE_QUALITIES, SpectrogramSpec, decode_sox_png, sox_command
from benchmarks.timing import run_times

GENRES = ("Rock", "Jazz", "Electronic", "Classical")


def make_corpus(folder: Path, n_files: int, seconds: float, sox: str) -> list[Path]:
    """Varied synthetic music-like MP3s: chords of different timbres with tremolo, some with noise."""
    folder.mkdir(parents=True, exist_ok=True)
    waves = ("sine", "square", "triangle", "sawtooth")
    paths = []
    for index in range(n_files):
        path = folder / f"{GENRES[index % 4]}/track {index:03d}.mp3"
        path.parent.mkdir(exist_ok=True)
        root = 110 * 2 ** ((index % 12) / 12)
        wave = waves[index % 4]
        sources = [wave, f"{root:.2f}", wave, f"{root * 1.25:.2f}", "sine", f"{root * 3:.2f}"]
        if index % 3 == 0:
            sources += ["pinknoise"]
        command = [sox, "-R", "-n", "-r", "44100", "-c", "2", "-C", "192", os.fspath(path), "synth", f"{seconds}",
                   *sources, "tremolo", f"{2 + index % 5}", "40", "vol", "0.3"]
        subprocess.run(command, check=True, capture_output=True)
        tags = ID3()
        tags.add(TCON(encoding=3, text=[GENRES[index % 4]]))
        tags.add(TPE1(encoding=3, text=[f"Bench Artist {index % 10}"]))
        tags.save(path)
        paths.append(path)
    return paths


def best_of(repeat: int, action) -> float:
    return min(run_times(repeat, action))


def best_of_alternated(repeat: int, actions: dict) -> dict[str, float]:
    """The best of ``repeat`` runs of each action, the actions taking turns (one run of each per round)."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for _ in range(repeat):
        for name, action in actions.items():
            times[name].extend(run_times(1, action))
    return {name: min(runs) for name, runs in times.items()}


def decode_floor(paths: list[Path], sox: str) -> None:
    for path in paths:
        subprocess.run([sox, "--no-glob", os.fspath(path), "-n"], check=True, capture_output=True)


def predecessor(paths: list[Path], sox: str, scratch: Path) -> None:
    """despoisj/DeepAudioClassification's procedure, with argument lists instead of its shell strings."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    for index, path in enumerate(paths):
        mono = scratch / f"{index}.mp3"
        png = scratch / f"{index}.png"
        subprocess.run([sox, os.fspath(path), os.fspath(mono), "remix", "1,2"], check=True, capture_output=True)
        subprocess.run([sox, os.fspath(mono), "-n", "spectrogram", "-Y", "200", "-X", "50", "-m", "-r", "-o",
                        os.fspath(png)], check=True, capture_output=True)
        mono.unlink()
        with Image.open(png) as image:
            width, _ = image.size
            for slice_index in range(width // 128):
                start = slice_index * 128
                image.crop((start, 1, start + 128, 129)).save(scratch / f"{index}_{slice_index}.png")


def genreslice_build(audio: Path, out: Path, workers: int, quality: str, features: str = "sox") -> None:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "genreslice", "build", os.fspath(audio), os.fspath(out), "--workers",
                    str(workers), "--resample-quality", quality, "--features", features], check=True,
                   capture_output=True, cwd=Path(__file__).parents[1])


def mel_parts(paths: list[Path], sox: str, repeat: int) -> dict[str, float]:
    """Per file: SoX streaming the samples, genreslice's mel spectrogram of them, librosa's own
    (``feature.melspectrogram``, ``power_to_db``) of the same samples."""
    import librosa

    from genreslice.pipeline.mel import full_scale_power, mel_gray

    spec = SpectrogramSpec(features="mel")
    decoded = [np.frombuffer(data, dtype="<f4") for data in sox_step(paths, sox, spec)]

    def ours() -> None:
        for samples in decoded:
            mel_gray(samples, sample_rate=spec.sample_rate, hop_length=spec.hop_length, n_mels=spec.slice_size,
                     settings=spec.mel, max_columns=200_000)

    def librosas() -> None:
        for samples in decoded:
            power = librosa.feature.melspectrogram(y=samples, sr=spec.sample_rate, n_fft=spec.mel.n_fft,
                                                   hop_length=spec.hop_length, n_mels=spec.slice_size)
            librosa.power_to_db(power, ref=full_scale_power(spec.mel.n_fft), top_db=None)

    ours()  # imports and filterbank, once
    n = len(paths)
    return {"mel step: SoX to samples alone": best_of(repeat, lambda: sox_step(paths, sox, spec)) / n,
            "mel step: genreslice mel spectrogram": best_of(repeat, ours) / n,
            "mel step: librosa.feature.melspectrogram": best_of(repeat, librosas) / n}


def sox_step(paths: list[Path], sox: str, spec: SpectrogramSpec) -> list[bytes]:
    return [subprocess.run(sox_command(path, spec, sox_path=sox), check=True, capture_output=True).stdout
            for path in paths]


def png_encode_cost(slices: np.ndarray, encode) -> tuple[float, int]:
    started = time.perf_counter()
    total = sum(len(encode(pixels)) for pixels in slices)
    return time.perf_counter() - started, total


def pillow_png(level: int):
    def encode(pixels: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG", compress_level=level)
        return buffer.getvalue()
    return encode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40, help="number of MP3 files to generate")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    args = parser.parse_args(argv)

    sox = find_sox().path
    spec = SpectrogramSpec()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="genreslice-bench-"))
    audio = workdir / "audio"
    print(f"Generating {args.files} x {args.seconds:g} s MP3 (44.1 kHz stereo, 192 kbps) in {audio} ...", flush=True)
    paths = make_corpus(audio, args.files, args.seconds, sox)
    n = len(paths)
    # The floor and the one-worker builds of both representations take turns, so that a change in the machine's
    # load during the run (other work on a shared machine) weighs on them alike. Builds of the first file alone
    # give each command's fixed cost (start-up; for mel, loading librosa), and so the cost of each further file.
    single = workdir / "single"
    single.mkdir(exist_ok=True)
    shutil.copy(paths[0], single / paths[0].name)
    alternated = best_of_alternated(args.repeat, {
        "floor: sox FILE -n": lambda: decode_floor(paths, sox),
        "genreslice build, 1 worker": lambda: genreslice_build(audio, workdir / "out1", 1, spec.resample_quality),
        "genreslice build --features mel, 1 worker": lambda: genreslice_build(
            audio, workdir / "mel1", 1, spec.resample_quality, "mel"),
        "sox, one file": lambda: genreslice_build(single, workdir / "single-sox", 1, spec.resample_quality),
        "mel, one file": lambda: genreslice_build(single, workdir / "single-mel", 1, spec.resample_quality, "mel"),
    })
    per_file = {"floor: sox FILE -n": alternated["floor: sox FILE -n"] / n}
    per_file["predecessor: mono MP3 + spectrogram + PIL"] = best_of(
        args.repeat, lambda: predecessor(paths, sox, workdir / "predecessor")) / n
    for quality in RESAMPLE_QUALITIES:
        quality_spec = SpectrogramSpec(resample_quality=quality)
        per_file[f"SoX step alone, rate {quality}"] = best_of(
            args.repeat, lambda: sox_step(paths, sox, quality_spec)) / n
    per_file["genreslice build, 1 worker"] = alternated["genreslice build, 1 worker"] / n
    per_file["genreslice build, 2 workers"] = best_of(
        args.repeat, lambda: genreslice_build(audio, workdir / "out2", 2, spec.resample_quality)) / n
    per_file["genreslice build --features mel, 1 worker"] = alternated["genreslice build --features mel, 1 worker"] / n
    per_file.update(mel_parts(paths, sox, args.repeat))

    floor = per_file["floor: sox FILE -n"]
    print(f"\nSeconds per file (best of {args.repeat}, {n} files of {args.seconds:g} s; "
          f"default resample quality: {spec.resample_quality}):")
    for name, seconds in per_file.items():
        print(f"  {name:48s} {seconds * 1000:8.1f} ms   {seconds / floor:5.2f}x floor")

    build1, build2 = per_file["genreslice build, 1 worker"], per_file["genreslice build, 2 workers"]
    old = per_file["predecessor: mono MP3 + spectrogram + PIL"]
    print("\nTargets:")
    print(f"  build (1 worker) / decode floor       = {build1 / floor:5.2f}  (target <= 1.8)")
    print(f"  predecessor / build (1 worker)        = {old / build1:5.2f}  (target >= 2.5)")
    print(f"  build 1 worker / build 2 workers      = {build1 / build2:5.2f}  (target >= 1.8)")
    print(f"  audio hours per wall hour (2 workers) = {args.seconds / build2:5.0f}")
    mel_total, mel_one = alternated["genreslice build --features mel, 1 worker"], alternated["mel, one file"]
    # The measure for mel: the cost of each file, without the fixed cost of loading librosa once per build.
    print(f"  mel build (1 worker), each file beyond the first / decode floor "
          f"= {(mel_total - mel_one) / (n - 1) / floor:5.2f}  (target <= 1.8)")
    print(f"\nEach file beyond the first, and the fixed cost of a build (1 worker; a build of {n} files against "
          "one of the first file alone):")
    for name, total, one in (("sox", alternated["genreslice build, 1 worker"], alternated["sox, one file"]),
                             ("mel", mel_total, mel_one)):
        marginal = (total - one) / (n - 1)
        print(f"  {name}: {marginal * 1000:6.1f} ms per file = {marginal / floor:4.2f}x floor; "
              f"fixed {one - marginal:4.2f} s")

    pngs = sox_step(paths[:10], sox, spec)
    slices = np.concatenate([slice_spectrogram(decode_sox_png(data), spec.slice_size) for data in pngs])
    print(f"\nSlice PNG encoding ({len(slices)} slices from 10 files):")
    encoders = {f"Pillow compress_level={level}": pillow_png(level) for level in (0, 1, 6, 9)}
    encoders["genreslice (Sub filter, Huffman only)"] = encode_gray_png
    for name, encode in encoders.items():
        seconds, size = png_encode_cost(slices, encode)
        print(f"  {name:40s} {seconds / len(slices) * 1e6:6.0f} us/slice  {size / len(slices) / 1024:5.1f} KiB/slice"
              f"  {seconds / 10 * 1000:5.1f} ms per {args.seconds:g}-s file")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

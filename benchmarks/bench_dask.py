"""Dask benchmark: ``python -m benchmarks.bench_dask`` (or ``make bench-dask``).

Builds the same generated corpus (30-second MP3s, 44.1 kHz stereo, 192 kbps) with ``genreslice build`` on the
process pool and on a local Dask cluster (``--executor dask``), the same number of workers each, alternating the
two so that drifts of a noisy machine hit both alike. Each build is the real command in a subprocess, into a new
folder. Reported per executor, median of ``--repeat`` runs:

* the command's wall time (start-up, the local cluster's start and stop included);
* the build itself, as the command reports it ("This run: ... in S s"): labels and audio work, cluster excluded;

and the ratio Dask / pool of each. The outputs of the two executors are compared byte for byte.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from genreslice.pipeline.sox import find_sox
from benchmarks.bench_build import make_corpus

REPO = Path(__file__).parents[1]


def timed_build(audio: Path, out: Path, workers: int, executor: str) -> tuple[float, float]:
    """Run ``genreslice build`` into a new ``out``; returns (command wall seconds, the build's own seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "genreslice", "build", os.fspath(audio), os.fspath(out), "--workers",
               str(workers), "--executor", executor, "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    wall = time.perf_counter() - started
    match = re.search(r"This run: \d+ tracks, [0-9.]+ h of audio in ([0-9.]+) s", result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected output of {' '.join(command)}:\n{result.stdout}\n{result.stderr}")
    return wall, float(match.group(1))


def digest(out: Path) -> str:
    """One hash over every file of a build except its private state folder."""
    total = hashlib.sha256()
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and not rel.startswith(".genreslice"):
            total.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_dask", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=240, help="number of MP3 files to generate")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each file")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers of each executor")
    parser.add_argument("--repeat", type=int, default=3, help="builds per executor; the median is reported")
    parser.add_argument("--workdir", type=Path, default=None, help="where to put the files (default: a temp dir)")
    args = parser.parse_args(argv)

    sox = find_sox().path
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="genreslice-bench-dask-"))
    audio = workdir / "audio"
    if not audio.is_dir():
        print(f"Generating {args.files} x {args.seconds:g} s MP3 (44.1 kHz stereo, 192 kbps) in {audio} ...",
              flush=True)
        make_corpus(audio, args.files, args.seconds, sox)
    n_files = sum(1 for _ in audio.rglob("*.mp3"))
    timings: dict[str, list[tuple[float, float]]] = {"pool": [], "dask": []}
    for run in range(args.repeat):
        for executor in ("pool", "dask") if run % 2 == 0 else ("dask", "pool"):
            wall, build = timed_build(audio, workdir / executor, args.workers, executor)
            timings[executor].append((wall, build))
            print(f"  run {run + 1}, {executor:4s}: command {wall:6.2f} s, build {build:6.2f} s", flush=True)
    identical = digest(workdir / "pool") == digest(workdir / "dask")

    print(f"\n{n_files} files of {args.seconds:g} s, {args.workers} workers each, median of {args.repeat}:")
    medians = {}
    for executor, runs in timings.items():
        wall = statistics.median(run[0] for run in runs)
        build = statistics.median(run[1] for run in runs)
        medians[executor] = wall, build
        print(f"  {executor:4s}: command {wall:6.2f} s ({n_files / wall:5.1f} files/s), build {build:6.2f} s "
              f"({n_files / build:5.1f} files/s, {n_files * args.seconds / 3600 / build * 3600:5.0f} audio hours "
              "per wall hour)")
    print("\nDask / pool (target: within 10% on one machine):")
    print(f"  command wall time  {medians['dask'][0] / medians['pool'][0]:5.3f}")
    print(f"  build time         {medians['dask'][1] / medians['pool'][1]:5.3f}")
    print(f"Outputs byte-identical: {'yes' if identical else 'NO'}")
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())

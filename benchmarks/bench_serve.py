"""Serving benchmark: ``python -m benchmarks.bench_serve``.

Makes a folder of 30-second stereo 44.1 kHz MP3 songs with SoX and a ``compact`` model trained for one epoch on
synthetic slices (as ``bench_predict``: its weights do not matter for speed), then measures in one run:

* **genreslice predict** on the folder, ``--workers`` SoX processes, in a fresh process: its songs per second after
  the model is loaded (from its summary line; its first model call, which builds the network's graph, included),
  the reference; and ``Classifier.classify`` with as many workers in this process once warm (graph built), the
  pipeline's own pace;
* **genreslice serve** with the same ``--workers``, started once: songs per second with 1, 2, 4 and 8 clients
  posting the songs at once (each client a thread with its own httpx connection, taking the next song as soon as
  its answer comes), the median and 95th-percentile time of a request, and the mean number of requests and
  slices per model call the server reports at ``GET /health`` (the batching of concurrent requests).

Every answer is checked: status 200 and the record ``predict`` gave for the song.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.bench_predict import make_model, make_songs  # noqa: E402

START = re.compile(r"genreslice serve: listening on (http://\S+) ")


def run_predict(model_dir: Path, songs: Path, workers: int) -> tuple[float, float, dict[str, dict]]:
    """``genreslice predict``: songs per second after loading, wall seconds, and the records by file name."""
    started = time.perf_counter()
    command = subprocess.run([sys.executable, "-m", "genreslice", "predict", os.fspath(model_dir), os.fspath(songs),
                              "--workers", str(workers), "--format", "json", "--no-progress"],
                             capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    if command.returncode != 0:
        print(command.stderr, file=sys.stderr)
        raise SystemExit(f"genreslice predict failed with status {command.returncode}")
    rate = re.search(r"; ([\d.]+) songs/s", command.stderr)
    records = {Path(record["path"]).name: record for record in map(json.loads, command.stdout.splitlines())}
    return (float(rate[1]) if rate else float("nan")), wall, records


def warm_classify(model_dir: Path, songs: list[Path], workers: int) -> float:
    """Songs per second of ``Classifier.classify`` on ``songs`` in this process, its graph built beforehand."""
    from genreslice.training.tensorflow_runtime import load_tensorflow

    load_tensorflow(quiet=True)
    from genreslice.training.predict import Classifier

    classifier = Classifier(model_dir)
    classifier.classify(songs[:4], workers=workers)
    started = time.perf_counter()
    results = classifier.classify(songs, workers=workers)
    seconds = time.perf_counter() - started
    assert all(song.ok for song in results) and len(results) == len(songs)
    return len(songs) / seconds


class ServeProcess:
    """``genreslice serve`` on a free port, its standard error read as it comes."""

    def __init__(self, model_dir: Path, workers: int) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "genreslice", "serve", os.fspath(model_dir), "--port",
                                         "0", "--workers", str(workers)], text=True, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        self.lines: list[str] = []
        self.url: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            match = START.match(line)
            if match:
                self.url.put(match[1])
        self.url.put(None)

    def wait_url(self) -> str:
        try:
            url = self.url.get(timeout=180)
        except queue.Empty:
            url = None
        if url is None:
            self.stop()
            raise SystemExit("genreslice serve did not start:\n" + "".join(self.lines))
        return url

    def stop(self) -> int:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def load(url: str, uploads: list[tuple[str, bytes]], clients: int, expected: dict[str, dict]) -> tuple[float, list]:
    """Post every upload with ``clients`` clients at once; the wall seconds and each request's seconds."""
    import httpx

    todo: queue.SimpleQueue = queue.SimpleQueue()
    for upload in uploads:
        todo.put(upload)
    latencies: list[float] = []

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            while True:
                try:
                    name, data = todo.get_nowait()
                except queue.Empty:
                    return
                sent = time.perf_counter()
                answer = http.post("/classify", files={"file": (name, data, "audio/mpeg")})
                latencies.append(time.perf_counter() - sent)
                if answer.status_code != 200 or answer.json() != {**expected[name], "path": name}:
                    raise AssertionError(f"{name}: {answer.status_code} {answer.text[:300]}")

    started = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - started, latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=40, help="songs in the folder (default: 40)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each song (default: 30)")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrent clients to measure (default: 1,2,4,8)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="SoX decoding threads of predict and serve (default: number of cores)")
    args = parser.parse_args(argv)
    import httpx

    client_counts = [int(count) for count in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="genreslice-bench-serve-") as tmp:
        root = Path(tmp)
        print(f"Making {args.songs} songs of {args.seconds:g} s and a compact model ...", flush=True)
        songs = make_songs(root / "songs", args.songs, args.seconds)
        model_dir = make_model(root)
        uploads = [(path.name, path.read_bytes()) for path in songs]

        print(f"genreslice predict, {args.workers} workers ...", flush=True)
        predict_rate, predict_wall, expected = run_predict(model_dir, root / "songs", args.workers)

        warm_rate = warm_classify(model_dir, songs, args.workers)

        print(f"genreslice serve, {args.workers} workers; clients {client_counts} ...", flush=True)
        server = ServeProcess(model_dir, args.workers)
        rows = []
        try:
            url = server.wait_url()
            with httpx.Client(base_url=url, timeout=300) as http:
                http.post("/classify", files={"file": uploads[0]}).raise_for_status()  # first request: warm
                for clients in client_counts:
                    before = http.get("/health").json()
                    seconds, latencies = load(url, uploads, clients, expected)
                    after = http.get("/health").json()
                    calls = after["model_calls"] - before["model_calls"]
                    requests = after["requests_classified"] - before["requests_classified"]
                    slices = after["slices_classified"] - before["slices_classified"]
                    latencies.sort()
                    rows.append((clients, seconds, len(uploads) / seconds, statistics.median(latencies),
                                 latencies[max(0, round(0.95 * len(latencies)) - 1)], requests / calls,
                                 slices / calls))
        finally:
            status = server.stop()

    n = args.songs
    print()
    print(f"{n} songs of {args.seconds:g} s (MP3, 44.1 kHz stereo), {os.cpu_count()} cores, --workers "
          f"{args.workers}; every answer equal to predict's record")
    print(f"genreslice predict: {predict_rate:.2f} songs/s after loading the model ({predict_wall:.1f} s wall, "
          "TensorFlow and model loading included)")
    print(f"Classifier.classify, warm, in one process: {warm_rate:.2f} songs/s")
    print(f"{'clients':>7} {'seconds':>8} {'songs/s':>8} {'vs predict':>10} {'vs warm':>8} {'p50 s':>7} {'p95 s':>7} "
          f"{'req/call':>8} {'slices/call':>11}")
    for clients, seconds, rate, p50, p95, per_call, slices_per_call in rows:
        print(f"{clients:>7} {seconds:>8.2f} {rate:>8.2f} {rate / predict_rate:>9.2f}x {rate / warm_rate:>7.2f}x "
              f"{p50:>7.2f} {p95:>7.2f} {per_call:>8.2f} {slices_per_call:>11.1f}")
    print(f"server stopped with Ctrl-C: exit status {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

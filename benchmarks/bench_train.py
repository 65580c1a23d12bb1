"""Training benchmark: ``python -m benchmarks.bench_train`` (or ``make bench-train``).

Writes synthetic slice data sets in the build's layout (``benchmarks.synthetic_slices``) and measures, in one run:

* **data source throughput**: slices per second that :class:`genreslice.training.data_source.SliceDataSource` reads and
  decodes, on one thread and on ``--loader-workers`` threads (as Keras runs it), page cache warm;
* **lazy vs in-memory epoch**: epochs of the ``compact`` model fed by the lazy data source, against the same
  epochs fed from numpy arrays already in memory (same data, same model, alternating fits of 3 epochs whose
  first epoch, which sets up the input pipeline, is not counted; median of the rest);
* **memory**: peak resident memory (``ru_maxrss`` of the process) of a real ``genreslice train`` subprocess,
  one epoch, on a data set of ``--small`` slices and on one of ``--large`` slices.

Targets, as ratios within this run: throughput >= 3,000 slices/s; lazy/in-memory epoch <= 1.10; peak memory of
the large run <= 1.15x the small run.

With ``--presets [NAME ...]`` it measures the model presets instead (all of them without names): for each, its
parameters on 128x128 slices with 4 classes and its training speed, slices per second over one epoch of
``--preset-slices`` training slices at the preset's own batch size, in this one process, fed by the lazy data
source (the epoch after a first one that traces the model); then the data source's throughput with every
augmentation on (``--augment offset,gain,specaugment``) against none.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.synthetic_slices import write_synthetic_dataset  # noqa: E402

TRACK_SLICES = 10
GENRES = ("Blues", "Electronic", "Jazz", "Rock")


def make_dataset(root: Path, n_slices: int) -> Path:
    tracks_per_genre = max(1, n_slices // (TRACK_SLICES * len(GENRES)))
    return write_synthetic_dataset(root, genres=GENRES, tracks_per_genre=tracks_per_genre,
                                   slices_per_track=TRACK_SLICES, split_tracks=(8, 1, 1), seed=0)


def measure_throughput(dataset: Path, batch_size: int, workers: int, repeat: int) -> tuple[float, float, int]:
    """Slices per second through ``__getitem__``: one thread, and ``workers`` threads (Keras's way)."""
    from genreslice.training.data_source import SliceDataSource
    from genreslice.training.dataset import load_dataset_info

    info = load_dataset_info(dataset)
    source = SliceDataSource.from_dataset(info, "train", batch_size=batch_size, shuffle=True, seed=0)
    n = len(source.paths)
    for index in range(len(source)):  # warm the page cache as a second epoch would find it
        source[index]

    def one_thread() -> float:
        started = time.perf_counter()
        for index in range(len(source)):
            source[index]
        return time.perf_counter() - started

    def threads() -> float:
        started = time.perf_counter()
        with cf.ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(source.__getitem__, range(len(source))):
                pass
        return time.perf_counter() - started

    single = min(one_thread() for _ in range(repeat))
    parallel = min(threads() for _ in range(repeat))
    return n / single, n / parallel, n


def measure_epochs(dataset: Path, batch_size: int, workers: int, repeat: int) -> tuple[list[float], list[float], int]:
    """Wall seconds of training epochs (with validation), lazy and in memory, in alternating fits."""
    import keras

    from genreslice.training.data_source import SliceDataSource, load_slices
    from genreslice.training.dataset import load_dataset_info, read_split
    from genreslice.training.models import build_model

    info = load_dataset_info(dataset)
    lazy_train = SliceDataSource.from_dataset(info, "train", batch_size=batch_size, shuffle=True, seed=0,
                                              workers=workers)
    lazy_val = SliceDataSource.from_dataset(info, "validation", batch_size=batch_size, workers=workers)
    train_paths, train_labels, _ = read_split(info, "train")
    val_paths, val_labels, _ = read_split(info, "validation")
    x_train, x_val = load_slices(train_paths), load_slices(val_paths)

    keras.utils.set_random_seed(0)
    model = build_model("compact", len(info.classes))

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self.started)

    def lazy_epochs(count: int) -> list[float]:
        timer = EpochTimer()
        model.fit(lazy_train, validation_data=lazy_val, epochs=count, verbose=0, callbacks=[timer])
        return timer.seconds

    def memory_epochs(count: int) -> list[float]:
        timer = EpochTimer()
        model.fit(x_train, train_labels, batch_size=batch_size, shuffle=True, validation_data=(x_val, val_labels),
                  epochs=count, verbose=0, callbacks=[timer])
        return timer.seconds

    # Each fit's first epoch also sets up its input pipeline (and traces the model on the first call);
    # training runs many epochs per fit, so the steady epochs after it are what is compared.
    lazy, memory = [], []
    for _ in range(repeat):
        lazy += lazy_epochs(3)[1:]
        memory += memory_epochs(3)[1:]
    return lazy, memory, len(train_paths)


def measure_presets(dataset: Path, names: list[str], workers: int) -> list[tuple[str, int, int, float]]:
    """(name, parameters at 128x128 with 4 classes, batch size, training slices per second) of each preset."""
    import keras

    from genreslice.training.data_source import SliceDataSource
    from genreslice.training.dataset import load_dataset_info
    from genreslice.training.models import PRESETS, build_model

    info = load_dataset_info(dataset)
    rows = []
    for name in names:
        preset = PRESETS[name]
        keras.utils.set_random_seed(0)
        model = build_model(name, len(info.classes), slice_size=info.slice_size)
        train = SliceDataSource.from_dataset(info, "train", batch_size=preset.batch_size, shuffle=True, seed=0,
                                             workers=workers)
        model.fit(train, epochs=1, verbose=0)  # traces the model and sets up the input pipeline
        started = time.perf_counter()
        model.fit(train, epochs=1, verbose=0)
        speed = len(train.paths) / (time.perf_counter() - started)
        rows.append((name, model.count_params(), preset.batch_size, speed))
        print(f"  {name:10s} {model.count_params():>12,d} parameters  batch {preset.batch_size:3d}  "
              f"{speed:8.1f} slices/s ({len(train.paths)} slices)", flush=True)
        keras.backend.clear_session()
    return rows


def measure_augmented_throughput(dataset: Path, batch_size: int, repeat: int) -> tuple[float, float]:
    """Slices per second one thread reads through ``__getitem__`` without augmentation and with all of it."""
    from genreslice.training.data_source import SliceDataSource
    from genreslice.training.dataset import load_dataset_info
    from genreslice.training.settings import AUGMENTATIONS

    info = load_dataset_info(dataset)
    speeds = []
    for augment in ((), AUGMENTATIONS):
        source = SliceDataSource.from_dataset(info, "train", batch_size=batch_size, shuffle=True, seed=0,
                                              augment=augment)
        for index in range(len(source)):
            source[index]
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            for index in range(len(source)):
                source[index]
            best = min(best, time.perf_counter() - started)
        speeds.append(len(source.paths) / best)
    return speeds[0], speeds[1]


def presets_main(args: argparse.Namespace) -> int:
    """``--presets``: each preset's parameters and training speed, then the augmentation's cost."""
    from genreslice.training.models import PRESETS

    names = args.presets or list(PRESETS)
    unknown = sorted(set(names) - set(PRESETS))
    if unknown:
        raise SystemExit(f"--presets: {', '.join(unknown)} is not one of {', '.join(PRESETS)}")
    with tempfile.TemporaryDirectory(prefix="genreslice-bench-presets-") as scratch:
        # 8/1/1 tracks per genre to train, validate, test: the training split is 80% of the slices written.
        dataset = make_dataset(Path(scratch) / "presets", round(args.preset_slices / 0.8))
        print(f"Training speed, one epoch of the training split of a synthetic data set (128x128 slices, 4 genres, "
              f"about {args.preset_slices} training slices), one process, {args.loader_workers} loader threads, "
              "TensorFlow's default threads:", flush=True)
        measure_presets(dataset, names, args.loader_workers)
        plain, augmented = measure_augmented_throughput(dataset, 32, args.repeat)
        print(f"Data source, 1 thread, batch 32: {plain:,.0f} slices/s without augmentation, {augmented:,.0f} with "
              f"offset, gain and specaugment ({augmented / plain:.2f}x).", flush=True)
    return 0


# A small process runs the measured command and reports its children's peak RSS. The benchmark itself holds
# TensorFlow and arrays; Linux counts a parent's resident memory at fork into the child's ru_maxrss, so the
# measured process must not be forked from it.
_LAUNCHER = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if done.returncode:
    sys.exit(done.stderr[-3000:] or f"exit {done.returncode}")
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def peak_rss_mib(command: list[str]) -> tuple[float, float]:
    """Peak resident MiB of ``command`` (run through a small launcher) and its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *command], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed:\n{done.stderr}")
    return int(done.stdout.split()[-1]) / 1024, time.perf_counter() - started


def peak_rss_of_train(dataset: Path, model_dir: Path, workers: int) -> tuple[float, float]:
    """Peak resident MiB and wall seconds of ``genreslice train`` for one epoch, in its own process."""
    return peak_rss_mib([sys.executable, "-m", "genreslice", "train", os.fspath(dataset), os.fspath(model_dir),
                         "--model", "compact", "--epochs", "1", "--patience", "0", "--target-accuracy", "off", "--no-progress",
                         "--loader-workers", str(workers)])


def peak_rss_of_loading_all(dataset: Path) -> float:
    """Peak resident MiB of a process that loads every training slice into one array, as the predecessor did.

    A control: it shows the measurement sees data held in memory.
    """
    code = ("import sys\n"
            "from genreslice.training.dataset import load_dataset_info, read_split\n"
            "from genreslice.training.data_source import load_slices\n"
            "paths, labels, _ = read_split(load_dataset_info(sys.argv[1]), 'train')\n"
            "x = load_slices(paths)\n")
    return peak_rss_mib([sys.executable, "-c", code, os.fspath(dataset)])[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=2000, help="slices in the small data set (default: 2000)")
    parser.add_argument("--large", type=int, default=20000, help="slices in the large data set (default: 20000)")
    parser.add_argument("--repeat", type=int, default=4, help="timed rounds: throughput passes, and fits of 3 epochs each kind (default: 4)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default: 64, compact's own)")
    parser.add_argument("--loader-workers", type=int, default=2, help="loader threads (default: 2)")
    parser.add_argument("--skip-memory", action="store_true", help="skip the two genreslice train runs")
    parser.add_argument("--presets", nargs="*", metavar="NAME",
                        help="measure the model presets instead (all without names): parameters and training speed")
    parser.add_argument("--preset-slices", type=int, default=512,
                        help="training slices of the --presets epoch (default: 512)")
    args = parser.parse_args(argv)
    if args.presets is not None:
        return presets_main(args)

    with tempfile.TemporaryDirectory(prefix="genreslice-bench-train-") as scratch:
        scratch = Path(scratch)
        started = time.perf_counter()
        small = make_dataset(scratch / "small", args.small)
        print(f"Wrote a {args.small}-slice data set in {time.perf_counter() - started:.1f} s.", flush=True)

        single, parallel, n = measure_throughput(small, args.batch_size, args.loader_workers, args.repeat)
        print(f"Data source ({n} training slices, batch {args.batch_size}, warm page cache): "
              f"{single:,.0f} slices/s on 1 thread, {parallel:,.0f} slices/s on {args.loader_workers} threads "
              f"(target >= 3,000).", flush=True)

        lazy, memory, n_train = measure_epochs(small, args.batch_size, args.loader_workers, args.repeat)
        ratio = statistics.median(lazy) / statistics.median(memory)
        print(f"One compact epoch on {n_train} slices (+ validation), median of {len(lazy)}: lazy "
              f"{statistics.median(lazy):.2f} s, in memory {statistics.median(memory):.2f} s; "
              f"lazy / in memory = {ratio:.3f} (target <= 1.10); best of each: {min(lazy) / min(memory):.3f}.",
              flush=True)
        print(f"  every run, lazy: {', '.join(f'{t:.2f}' for t in lazy)}; "
              f"in memory: {', '.join(f'{t:.2f}' for t in memory)}", flush=True)

        if not args.skip_memory:
            large = make_dataset(scratch / "large", args.large)
            figures = {}
            for name, dataset in (("small", small), ("large", large)):
                rss, wall = peak_rss_of_train(dataset, scratch / f"model-{name}", args.loader_workers)
                figures[name] = rss
                slices = sum(1 for _ in open(dataset / "slices.csv")) - 1
                print(f"genreslice train, 1 epoch, {slices} slices: peak RSS {rss:,.1f} MiB, {wall:.0f} s.", flush=True)
            growth = figures["large"] / figures["small"]
            print(f"Peak memory, {args.large} vs {args.small} slices: {growth:.3f}x "
                  f"(+{(growth - 1) * 100:.1f}%; target <= 1.15x).", flush=True)
            for name, dataset in (("small", small), ("large", large)):
                print(f"Control, loading every training slice of the {name} set into memory (the predecessor's "
                      f"way, no model): peak RSS {peak_rss_of_loading_all(dataset):,.0f} MiB.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

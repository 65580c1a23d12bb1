"""Representations and models compared on one split: ``python -m benchmarks.bench_models`` (or ``make bench-models``).

Generates the demo synthesizer's harder corpus (:func:`genreslice.scripts.demo_corpus.write_demo_corpus` with
``hard=True``: six genres that share instruments, a borrowed arrangement of another genre in every song, random
tone, room, noise floor and compression; short clips), builds it once per representation (``--features sox`` and
``mel``) with the default artist-disjoint split, trains every model preset on each data set (plus the best
preset with augmentation, to see whether it helps), one ``genreslice train`` process per model so each row's peak memory is its own, and
prints the ``genreslice compare`` table of the test split (song accuracy by majority and mean vote, macro-F1,
parameters, epochs, training time and peak memory) and writes its chart.

Everything goes through the command line, as a user would run it. Re-running with the same ``--work`` folder reuses
the corpus and the data sets and continues (or keeps) the trained models, so an interrupted run loses little.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

#: Train, validation and test shares of the artists: a test split of 4-5 songs per genre, so one song is not a
#: fifth of a genre's score (the corpus names its artists so that the artist hash follows these).
SPLIT_RATIOS = "0.6,0.2,0.2"


def _genreslice(*args: str, log: Path | None = None) -> float:
    """Run ``genreslice ARGS`` (this Python's); its wall time in seconds. Its output goes to ``log`` when given."""
    command = [sys.executable, "-m", "genreslice", *args]
    started = time.perf_counter()
    if log is None:
        subprocess.run(command, check=True)
    else:
        with open(log, "ab") as handle:
            handle.write(f"$ {shlex.join(command)}\n".encode())
            handle.flush()
            finished = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, check=False)
        if finished.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise SystemExit(f"{shlex.join(command)} failed with status {finished.returncode}:\n" + "\n".join(tail))
    return time.perf_counter() - started


def _names(text: str, known, option: str) -> list[str]:
    """The comma-separated names of ``text``, stripped, each once; a name not in ``known`` (when given) ends the
    run before any work, naming the option."""
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if known is not None and name not in known]
    if unknown:
        raise SystemExit(f"bench_models: {option}: {', '.join(unknown)} is not one of {', '.join(known)}")
    return names


def main(argv: list[str] | None = None) -> int:
    from genreslice.training.models import PRESETS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("bench-out/models"),
                        help="working folder: corpus, data sets, models, table, chart (default bench-out/models)")
    parser.add_argument("--songs-per-genre", type=int, default=24, help="songs of each genre, 2 per artist (24)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each song in seconds (12)")
    parser.add_argument("--seed", type=int, default=7, help="corpus seed; training uses seed 0 (7)")
    parser.add_argument("--features", default="sox,mel", help="representations to build (sox,mel)")
    parser.add_argument("--models", default=",".join(PRESETS), help=f"presets to train ({','.join(PRESETS)})")
    parser.add_argument("--augmented", default="mel:crnn",
                        help="presets also trained with --augment: PRESET on every representation or FEATURES:PRESET "
                             "on one (mel:crnn); '' for none")
    parser.add_argument("--augment", default="specaugment,gain,offset", help="the --augment value of those runs")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs per model (20)")
    parser.add_argument("--only-sox", default="despoisj",
                        help="presets trained on the sox data set only (despoisj: the lineage's network on its own "
                             "spectrograms; its 34 M parameters cost a third of the run); '' for none")
    args = parser.parse_args(argv)
    features_list = _names(args.features, ("sox", "mel"), "--features")
    models_list = _names(args.models, PRESETS, "--models")
    only_sox = _names(args.only_sox, PRESETS, "--only-sox")
    augmented = []  # (features or "", preset), checked before an hour of work rather than after it
    for item in _names(args.augmented, None, "--augmented"):
        only, _, name = item.rpartition(":")
        if only not in ("", *features_list) or name not in PRESETS:
            parser.error(f"--augmented {item!r}: give PRESET or FEATURES:PRESET, with FEATURES of --features "
                         f"({','.join(features_list)}) and PRESET one of {', '.join(PRESETS)}")
        augmented.append((only, name))

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    music = work / "music"
    started = time.perf_counter()
    if not music.is_dir():
        from genreslice.scripts.demo_corpus import HARD_GENRES, write_demo_corpus

        print(f"== generating {args.songs_per_genre} songs x {len(HARD_GENRES)} genres of {args.seconds:g} s "
              f"(hard corpus, seed {args.seed})", flush=True)
        partial = work / "music.partial"
        write_demo_corpus(partial, songs_per_genre=args.songs_per_genre, seconds=args.seconds, seed=args.seed,
                          hard=True, split_ratios=tuple(float(share) for share in SPLIT_RATIOS.split(",")))
        os.replace(partial, music)
    models = []
    for features in features_list:
        dataset = work / f"dataset-{features}"
        seconds = _genreslice("build", str(music), str(dataset), "--features", features, "--workers", "2",
                              "--split-ratios", SPLIT_RATIOS, "--no-progress", log=log)
        print(f"== built {dataset.name} in {seconds:.0f} s", flush=True)
        runs = [(name, ()) for name in models_list]
        runs += [(name, ("--augment", args.augment)) for only, name in augmented if only in ("", features)]
        for name, extra in dict.fromkeys(runs):  # each run once, in order
            if features != "sox" and name in only_sox:
                continue
            model = work / f"{features}-{name}{'-augment' if extra else ''}"
            seconds = _genreslice("train", str(dataset), str(model), "--model", name, "--epochs", str(args.epochs),
                                  "--seed", "0", "--no-progress", *extra, log=log)
            _genreslice("evaluate", str(dataset), str(model), "--no-progress", log=log)
            print(f"== trained and evaluated {model.name} in {seconds:.0f} s", flush=True)
            models.append(model)
    table = work / "compare.md"
    print(flush=True)
    subprocess.run([sys.executable, "-m", "genreslice", "compare", *map(str, models), "--out", str(table),
                    "--chart", str(work / "compare.png")], check=True)
    print("\n" + table.read_text())
    print(f"\nall done in {(time.perf_counter() - started) / 60:.1f} min; table {table}, chart {work / 'compare.png'}, "
          f"commands and their output in {log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Early-stop defaults benchmark: ``python -m benchmarks.bench_stopping`` (or ``make bench-stopping``).

Checks the default stop rule of ``genreslice train`` (``--patience``, with ``--monitor val_loss --keep best``) where
a newcomer meets it: a small collection of 3 artists per genre (2 songs each, 4 genres, so one artist of each genre
per split) and the demo's corpus (10 artists per genre). For each corpus and seed it generates the songs with the
demo's synthesizer, builds them once with the default stratified artist split, then trains the ``compact`` model
with each ``--patience`` in ``--patience-values`` (everything else at its default, 50 epochs at most) and scores
the test split. It prints, per run, the epoch training stopped at, the kept epoch, its validation accuracy and
the test song accuracy, then per patience the means over seeds, and the test song accuracy each patience gives
relative to the longest patience in the same run (a ratio within one run; the machine's speed does not enter).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

CORPORA = {"small": 6, "demo": 20}  # songs per genre; 2 songs per artist


def run(root: Path, corpus: str, seed: int, patience_values: list[int], seconds: float) -> list[dict]:
    """Generate, build and train one corpus at one seed; one row per patience."""
    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.build import BuildConfig, build_dataset
    from genreslice.scripts.demo_corpus import write_demo_corpus
    from genreslice.training.evaluate import evaluate_model
    from genreslice.training.settings import TrainConfig
    from genreslice.training.train import train_model

    folder = root / f"{corpus}-{seed}"
    write_demo_corpus(folder / "music", songs_per_genre=CORPORA[corpus], songs_per_artist=2, seconds=seconds,
                      seed=seed)
    build_dataset(folder / "music", folder / "dataset", make_label_source("id3"), BuildConfig(workers=2))
    rows = []
    for patience in patience_values:
        model = folder / f"model-p{patience}"
        started = time.perf_counter()
        result = train_model(folder / "dataset", model, TrainConfig(model="compact", seed=seed, patience=patience))
        seconds_taken = time.perf_counter() - started
        scores = evaluate_model(folder / "dataset", model).metrics
        rows.append({
            "corpus": corpus, "seed": seed, "patience": patience, "epochs": result.epochs_run,
            "kept": result.kept_epoch, "val_accuracy": result.metrics.get("val_accuracy", float("nan")),
            "test_slice": scores["slice_accuracy"], "test_song": scores["song_accuracy_majority"],
            "seconds": seconds_taken,
        })
        row = rows[-1]
        print(f"{corpus:5s} seed {seed} patience {patience:2d}: stopped after epoch {row['epochs']:2d}, kept epoch "
              f"{row['kept']:2d} (validation accuracy {row['val_accuracy']:.3f}); test slices {row['test_slice']:.3f}, "
              f"songs {row['test_song']:.3f}; {row['seconds']:.0f} s", flush=True)
    return rows


def summarize(rows: list[dict], patience_values: list[int]) -> None:
    longest = max(patience_values)
    print("\ncorpus  patience  mean epochs  mean kept  mean val acc  mean test song acc  min  vs patience "
          f"{longest}  mean train s")
    for corpus in CORPORA:
        reference = [row["test_song"] for row in rows if row["corpus"] == corpus and row["patience"] == longest]
        for patience in patience_values:
            chosen = [row for row in rows if row["corpus"] == corpus and row["patience"] == patience]
            if not chosen:
                continue
            songs = [row["test_song"] for row in chosen]
            ratio = statistics.mean(songs) / statistics.mean(reference) if reference and statistics.mean(reference) else float("nan")
            print(f"{corpus:6s}  {patience:8d}  {statistics.mean(r['epochs'] for r in chosen):11.1f}  "
                  f"{statistics.mean(r['kept'] for r in chosen):9.1f}  "
                  f"{statistics.mean(r['val_accuracy'] for r in chosen):12.3f}  {statistics.mean(songs):18.3f}  "
                  f"{min(songs):.3f}  {ratio:14.3f}  {statistics.mean(r['seconds'] for r in chosen):12.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="small,demo", help="which corpora: small, demo (default both)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per corpus (default 3)")
    parser.add_argument("--patience-values", default="3,5,10,20", help="patience values to compare")
    parser.add_argument("--seconds", type=float, default=30.0, help="song length (default 30, as the demo)")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    patience_values = [int(value) for value in args.patience_values.split(",")]
    corpora = [name for name in args.corpora.split(",") if name]
    unknown = sorted(set(corpora) - set(CORPORA))
    if unknown:
        parser.error(f"--corpora: unknown {', '.join(unknown)} (choose from {', '.join(CORPORA)})")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-stopping-") as scratch:
        root = args.work or Path(scratch)
        for corpus in corpora:
            for seed in range(args.seeds):
                rows += run(root, corpus, seed, patience_values, args.seconds)
    summarize(rows, patience_values)
    return 0


if __name__ == "__main__":
    sys.exit(main())

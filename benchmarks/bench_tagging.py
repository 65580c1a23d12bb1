"""Other label sets end to end: ``python -m benchmarks.bench_tagging`` (or ``make bench-tagging``).

Three generated corpora go through ``genreslice build``, ``train`` and ``evaluate`` as a user would run them:

* **multi-label**: the demo synthesizer's tagged songs (:func:`genreslice.scripts.demo_corpus.write_tagged_corpus`:
  each song has some of five instruments and a mood), labelled by a CSV and built with ``--task multilabel``;
  and the same audio with the tag sets shuffled among the songs (a control: tags that do not match the sound,
  which no model can learn; its scores are what chance gives). Printed: song-level macro and micro ROC-AUC and
  PR-AUC of the test split, as MTG-Jamendo's baselines report them.
* **GTZAN layout**: ``genres/<genre>/<genre>.000NN.au`` files of the demo synthesizer's four genres, labelled by
  ``--labels folders``. Printed: song accuracy.
* **dance styles**: waltz (3/4), tango (2/4 with its dotted rhythm) and salsa (the 3-2 clave) patterns at their
  tempos, labelled by a CSV (``--labels csv``). Printed: song accuracy.

And **dry runs** over the real MTG-Jamendo split-0 files of the genre, mood/theme, instrument and top-50 categories
(when present): rows per split counted from the files against the tracks the dry run would build, tags, and the
seconds of the whole command.

Re-running with the same ``--work`` folder reuses the corpora, data sets and models.
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_models import _genreslice  # runs `genreslice ARGS`, output to the log, returns seconds


def _build_train_evaluate(audio: Path, work: Path, name: str, build_options: list[str], train_options: list[str],
                          log: Path) -> dict:
    """Build ``audio`` into ``work/name-data``, train into ``work/name-model``, evaluate the test split; returns
    the evaluation's metrics.json with the seconds of each step."""
    data, model = work / f"{name}-data", work / f"{name}-model"
    seconds = {"build": _genreslice("build", str(audio), str(data), *build_options, "--no-progress", log=log)}
    seconds["train"] = _genreslice("train", str(data), str(model), *train_options, "--no-progress", log=log)
    seconds["evaluate"] = _genreslice("evaluate", str(data), str(model), "--no-progress", log=log)
    metrics = json.loads((model / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    return {**metrics, "step_seconds": seconds}


def multilabel(work: Path, args: argparse.Namespace, log: Path) -> None:
    from genreslice.scripts.demo_corpus import labels_csv_text, write_tagged_corpus

    corpus = work / "tagged"
    labels = work / "tags.csv"
    if not labels.is_file():
        songs = write_tagged_corpus(corpus, songs=args.songs, seconds=args.seconds, seed=args.seed)
        labels.write_text(labels_csv_text(songs), encoding="utf-8")
    lines = labels.read_text(encoding="utf-8").splitlines()
    rows = [line.split(",") for line in lines[1:]]
    tag_sets = [row[1] for row in rows]
    random.Random(args.seed).shuffle(tag_sets)
    shuffled = work / "tags-shuffled.csv"
    shuffled.write_text(lines[0] + "\n" + "".join(f"{row[0]},{tags},{row[2]}\n" for row, tags in zip(rows, tag_sets)),
                        encoding="utf-8")
    train = ["--model", args.model, "--epochs", str(args.epochs)]
    results = {}
    for name, csv_file in (("tags", labels), ("shuffled", shuffled)):
        results[name] = _build_train_evaluate(corpus, work, name, ["--labels", "csv", "--metadata", str(csv_file),
                                                                   "--task", "multilabel", "--split-ratios",
                                                                   "0.6,0.2,0.2"], train, log)
    tags = results["tags"]
    print(f"Multi-label corpus: {args.songs} songs of {args.seconds:g} s, {len(tags['classes'])} tags "
          f"({', '.join(tags['classes'])}); {args.model}, at most {args.epochs} epochs; test split: "
          f"{tags['n_songs']} songs.")
    print(f"  {'labels':<28}{'ROC-AUC macro':>14}{'PR-AUC macro':>14}{'ROC-AUC micro':>14}{'PR-AUC micro':>14}"
          f"{'F macro':>9}{'train s':>9}")
    for name, title in (("tags", "the songs' tags"), ("shuffled", "shuffled among songs")):
        songs = results[name]["songs"]
        print(f"  {title:<28}" + "".join(f"{songs[key]:>14.4f}" for key in ("roc_auc_macro", "pr_auc_macro",
                                                                            "roc_auc_micro", "pr_auc_micro"))
              + f"{songs['f_score_macro']:>9.4f}{results[name]['step_seconds']['train']:>9.1f}")
    positives = np.mean([tags["per_tag"][name]["support"] for name in tags["classes"]]) / tags["n_songs"]
    print(f"  (chance: ROC-AUC 0.5; PR-AUC about the share of songs with a tag, here {positives:.2f})")


def gtzan(work: Path, args: argparse.Namespace, log: Path) -> None:
    from genreslice.scripts.demo_corpus import GENRES, _write_wav, synthesize_song

    root = work / "gtzan" / "genres"
    if not root.is_dir():
        rng = np.random.default_rng(args.seed)
        scratch = work / "gtzan-song.wav"
        for genre in GENRES:
            folder = root / genre.lower()
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(args.songs // len(GENRES)):
                _write_wav(scratch, synthesize_song(genre, rng, args.seconds))
                target = folder / f"{genre.lower()}.{number:05d}.au"
                subprocess.run(["sox", "-R", "--no-glob", str(scratch), str(target)], check=True, capture_output=True,
                               timeout=120)
        scratch.unlink()
    result = _build_train_evaluate(root, work, "gtzan", ["--labels", "folders", "--split-ratios", "0.6,0.2,0.2"],
                                   ["--model", args.model, "--epochs", str(args.epochs)], log)
    print(f"GTZAN layout (genres/<genre>/<genre>.000NN.au, --labels folders): classes {', '.join(result['classes'])}; "
          f"test split {result['n_songs']} songs: song accuracy {result['song_accuracy_majority']:.4f} (majority), "
          f"{result['song_accuracy_mean']:.4f} (mean); macro F1 {result['macro_f1']:.4f}.")


#: ``style -> (beats per minute, beats per bar, onsets in beats within a bar with their accents)``.
DANCES = {
    "waltz": ((84, 96), 3, ((0.0, 1.0), (1.0, 0.45), (2.0, 0.45))),
    "tango": ((60, 66), 4, ((0.0, 1.0), (1.5, 0.7), (2.0, 0.9), (3.0, 0.6))),
    "salsa": ((180, 200), 8, ((0.0, 1.0), (1.5, 0.8), (3.0, 0.9), (5.0, 0.8), (6.0, 0.9))),
}


def _dance_song(style: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A dance-style rhythm: its accents on a low drum and a clap, a bass and a plucked chord on each bar."""
    from genreslice.scripts.demo_corpus import RATE, _kick, _midi_hz, _pluck, _snare, _Track

    (low, high), beats, onsets = DANCES[style]
    beat = 60 / rng.uniform(low, high)
    root = 45 + int(rng.integers(0, 10))
    track, kick, clap = _Track(seconds), _kick(), _snare(rng)
    for bar in range(int(seconds / (beat * beats)) + 1):
        start = bar * beat * beats
        for offset, accent in onsets:
            track.add(start + offset * beat, kick if accent > 0.8 else clap, accent * 0.8)
        track.add(start, _pluck(_midi_hz(root + (0, 5, 7, 0)[bar % 4] - 12), beat * beats, rng), 0.5)
        for offset in range(1, beats):
            track.add(start + offset * beat, _pluck(_midi_hz(root + 12 + (0, 4, 7)[offset % 3]), beat, rng), 0.2)
    audio = track.audio / max(1e-9, np.abs(track.audio).max()) * rng.uniform(0.6, 0.9)
    return audio + rng.normal(0, 1e-3, int(seconds * RATE))[: len(audio)]


def dances(work: Path, args: argparse.Namespace, log: Path) -> None:
    from genreslice.scripts.demo_corpus import _write_wav

    root, labels = work / "dances", work / "dances.csv"
    if not labels.is_file():
        rng = np.random.default_rng(args.seed)
        rows = ["path,label,artist"]
        for style in DANCES:
            for number in range(args.songs // len(DANCES)):
                rel = f"{style} set/track {number:03d}.wav"
                (root / f"{style} set").mkdir(parents=True, exist_ok=True)
                _write_wav(root / rel, _dance_song(style, rng, args.seconds))
                rows.append(f"{rel},{style},{style} orchestra {number // 2}")
        labels.write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = _build_train_evaluate(root, work, "dances", ["--labels", "csv", "--metadata", str(labels),
                                                          "--split-ratios", "0.6,0.2,0.2"],
                                   ["--model", args.model, "--epochs", str(args.epochs)], log)
    print(f"Dance styles (--labels csv): classes {', '.join(result['classes'])}; test split {result['n_songs']} "
          f"songs: song accuracy {result['song_accuracy_majority']:.4f} (majority), "
          f"{result['song_accuracy_mean']:.4f} (mean); macro F1 {result['macro_f1']:.4f}.")


#: Where the real MTG-Jamendo split-0 files are, when the repository sits beside ``shared/``.
SHARED_SPLIT = Path(__file__).resolve().parents[2] / "shared" / "data" / "mtg-jamendo" / "split-0"
CATEGORY_STEMS = {"genre": "autotagging_genre", "mood/theme": "autotagging_moodtheme",
                  "instrument": "autotagging_instrument", "top50": "autotagging_top50tags"}


def dry_runs(work: Path, args: argparse.Namespace, log: Path) -> None:
    """``genreslice build --dry-run --task multilabel`` over the real split-0 files of every category, with a
    1-byte file at every ``PATH`` they name (the dry run never decodes audio); rows are counted here by hand."""
    split_dir = args.jamendo
    if not (split_dir / "autotagging_moodtheme-train.tsv").is_file():
        print(f"Dry runs: skipped, no MTG-Jamendo split-0 files in {split_dir} (--jamendo)")
        return
    rows = {category: {split: [line.split("\t") for line in (split_dir / f"{stem}-{split}.tsv").read_bytes()
                               .decode("utf-8").split("\r\n")[1:] if line]
                       for split in ("train", "validation", "test")}
            for category, stem in CATEGORY_STEMS.items()}
    audio = work / "jamendo-audio"
    paths = {row[3] for splits in rows.values() for split_rows in splits.values() for row in split_rows}
    if not audio.is_dir():
        for path in paths:
            (audio / path).parent.mkdir(parents=True, exist_ok=True)
            (audio / path).write_bytes(path.encode())  # distinct files: no two are copies
    print(f"Dry runs over the real split-0 files, --task multilabel ({len(paths)} audio paths):")
    print(f"  {'category':<12}{'rows train/val/test':>24}{'built train/val/test':>24}{'tags':>6}{'per track':>10}"
          f"{'seconds':>9}")
    for category, splits in rows.items():
        command = [sys.executable, "-m", "genreslice", "build", str(audio), str(work / "unused"), "--labels",
                   "jamendo", "--metadata", str(split_dir), "--category", category, "--task", "multilabel",
                   "--dry-run", "--no-progress"]
        started = time.perf_counter()
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
        if finished.returncode != 0:
            raise SystemExit(f"{shlex.join(command)} failed:\n{finished.stderr[-2000:]}")
        lines = finished.stdout.splitlines()
        built = next(line.split()[1:4] for line in lines if line.startswith("tracks "))
        tags_line = next(line for line in lines if " tags, " in line and "per track" in line)
        counted = [str(len(splits[split])) for split in ("train", "validation", "test")]
        moved = any("moved from their official split" in line for line in lines)
        print(f"  {category:<12}{'/'.join(counted):>24}{'/'.join(built):>24}{tags_line.split()[0]:>6}"
              f"{tags_line.split()[2]:>10}{seconds:>9.1f}" + ("   (some moved!)" if moved else "")
              + ("" if built == counted else "   (rows and tracks differ!)"))


PARTS = {"multilabel": multilabel, "gtzan": gtzan, "dances": dances, "dryruns": dry_runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("bench-out/tagging"),
                        help="working folder: corpora, data sets, models, log (default bench-out/tagging)")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"what to run ({','.join(PARTS)})")
    parser.add_argument("--songs", type=int, default=160, help="songs of each corpus (160)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each song (10)")
    parser.add_argument("--model", default="crnn", help="preset trained on each data set (crnn, the default)")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs (20)")
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (0)")
    parser.add_argument("--jamendo", type=Path, default=SHARED_SPLIT,
                        help="MTG-Jamendo's splits/split-0/ folder, for the dry runs (default: the shared data)")
    args = parser.parse_args(argv)
    parts = [name.strip() for name in args.parts.split(",") if name.strip()]
    unknown = [name for name in parts if name not in PARTS]
    if unknown:
        parser.error(f"--parts: {', '.join(unknown)} is not one of {', '.join(PARTS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    log = args.work / "log.txt"
    print(f"Commands and their output: {log}", flush=True)
    for name in parts:
        started = time.perf_counter()
        PARTS[name](args.work, args, log)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

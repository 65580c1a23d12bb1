"""``genreslice demo``: the whole job on a generated corpus, with the real commands.

Makes a tagged MP3 corpus (``scripts.demo_corpus``), then runs ``genreslice build``, ``train``, ``evaluate`` and
``predict`` on it exactly as a user would type them, and ends with a short report.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from genreslice.errors import GenresliceError
from genreslice.pipeline.layout import write_text_atomic
from genreslice.pipeline.splits import SPLITS
from genreslice.scripts.demo_corpus import GENRES, write_demo_corpus

DEMO_JSON = "demo.json"
SPLIT_RATIOS = (0.6, 0.2, 0.2)


class DemoError(GenresliceError):
    """The demo cannot run in the chosen folder, or one of its commands failed."""


@dataclass(frozen=True)
class DemoConfig:
    """What the corpus is made of; a folder holds one corpus, so a re-run must ask for the same."""

    seed: int = 0
    songs_per_genre: int = 20
    seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.songs_per_genre < 4:
            raise ValueError(f"songs_per_genre={self.songs_per_genre} must be at least 4 (artists in every split)")
        if not 3.0 <= self.seconds <= 600.0:
            raise ValueError(f"seconds={self.seconds} must be between 3 and 600")


def _prepare_folder(out: Path, config: DemoConfig) -> bool:
    """Check ``out`` is new, empty or an earlier demo of the same corpus; returns whether the corpus exists."""
    recorded_path = out / DEMO_JSON
    if recorded_path.is_file():
        try:
            recorded = json.loads(recorded_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DemoError(f"{recorded_path}: cannot be read ({err}); choose another --out") from err
        if recorded != asdict(config):
            raise DemoError(f"{out} holds a demo of another corpus ({recorded}); choose another --out or the same "
                            f"settings")
        return (out / "music").is_dir()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DemoError(f"{out} exists and is not an earlier demo; choose a new or empty folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    return False


def run_demo(out: str | os.PathLike, config: DemoConfig, *, run_command: Callable[[list[str]], int],
             workers: int, progress: bool = True) -> int:
    """Generate the corpus and run the four commands through ``run_command`` (the ``genreslice`` entry point).

    Returns the exit status: 0 when every step worked.
    """
    out = Path(out)
    timings: dict[str, float] = {}
    started = time.monotonic()
    music, dataset, model = out / "music", out / "dataset", out / "model"
    if not _prepare_folder(out, config):
        print(f"== Making {config.songs_per_genre * len(GENRES)} songs of {config.seconds:g} s in {music} "
              f"({', '.join(GENRES)}; tagged MP3s, seed {config.seed}) ...", flush=True)
        write_text_atomic(out / DEMO_JSON, json.dumps(asdict(config), indent=2) + "\n")
        # Made aside and renamed when complete, so an interrupted run makes the corpus again, never half of it.
        partial = out / ".music-partial"
        shutil.rmtree(partial, ignore_errors=True)
        write_demo_corpus(partial, songs_per_genre=config.songs_per_genre, seconds=config.seconds, seed=config.seed,
                          split_ratios=SPLIT_RATIOS)
        os.replace(partial, music)
    timings["corpus"] = time.monotonic() - started
    quiet = [] if progress else ["--no-progress"]
    steps = [
        ("build", ["build", str(music), str(dataset), "--split-ratios", ",".join(map(str, SPLIT_RATIOS)),
                   "--workers", str(workers), *quiet]),
        ("train", ["train", str(dataset), str(model), "--model", "compact", "--seed", str(config.seed), *quiet]),
        ("evaluate", ["evaluate", str(dataset), str(model), *quiet]),
    ]
    for name, argv in steps:
        print(f"\n== genreslice {' '.join(argv)}", flush=True)
        step_started = time.monotonic()
        status = run_command(argv)
        timings[name] = time.monotonic() - step_started
        if status != 0:
            raise DemoError(f"'genreslice {name}' failed with exit status {status}; see its message above")

    held_out = _test_songs(dataset)
    predictions = out / "predictions.jsonl"
    argv = ["predict", str(model), *(str(music / path) for path in held_out), "--workers", str(workers), *quiet]
    print(f"\n== genreslice predict {model} <the {len(held_out)} songs of the test split> "
          f"--workers {workers}", flush=True)
    step_started = time.monotonic()
    status = _predict_to_file(run_command, argv, predictions)
    timings["predict"] = time.monotonic() - step_started
    if status != 0:
        raise DemoError(f"'genreslice predict' failed with exit status {status}; see its message above")
    _report(out, held_out, predictions, timings, time.monotonic() - started)
    return 0


def _predict_to_file(run_command: Callable[[list[str]], int], argv: list[str], target: Path) -> int:
    """Run predict as the reader sees it (a table), then again as JSON lines kept for the report."""
    import contextlib
    import io

    status = run_command(argv)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
        json_status = run_command([*argv, "--format", "json", "--no-progress"])
    write_text_atomic(target, buffer.getvalue())
    return status or json_status


def _test_songs(dataset: Path) -> dict[str, str]:
    """Audio path (relative to the music folder) -> genre, for the tracks of the test split."""
    with open(dataset / "tracks.csv", newline="", encoding="utf-8") as handle:
        return {row["path"]: row["genre"] for row in csv.DictReader(handle)
                if row["split"] == "test" and row["status"] == "ok"}


def _report(out: Path, held_out: dict[str, str], predictions: Path, timings: dict[str, float], total: float) -> None:
    dataset = json.loads((out / "dataset" / "dataset.json").read_text(encoding="utf-8"))
    model = json.loads((out / "model" / "model.json").read_text(encoding="utf-8"))
    metrics = json.loads((out / "model" / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    with open(out / "dataset" / "tracks.csv", newline="", encoding="utf-8") as handle:
        tracks = [row for row in csv.DictReader(handle) if row["status"] == "ok"]
    songs_per_split = {split: sum(row["split"] == split for row in tracks) for split in SPLITS}
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines() if line]
    music = out / "music"
    right = sum(record["genre"] == held_out.get(os.path.relpath(record["path"], music)) for record in records)
    classes = dataset["classes"]
    print("\n== Demo report")
    print(f"corpus      {len(tracks)} songs of {len(classes)} genres ({', '.join(classes)}) in {music}")
    print(f"data set    {sum(int(row['n_slices']) for row in tracks)} slices; songs per split by artist: "
          + ", ".join(f"{split} {count}" for split, count in songs_per_split.items()) + f"  ({out / 'dataset'})")
    print(f"training    {model['training']['model']} model, {model['epochs_run']} epochs, {model['stop']['message']}; "
          f"best validation accuracy {model['metrics'].get('val_accuracy', float('nan')):.3f}")
    print(f"test split  slice accuracy {metrics['slice_accuracy']:.3f}; song accuracy {metrics['song_accuracy_majority']:.3f} "
          f"(majority vote), {metrics['song_accuracy_mean']:.3f} (mean probability); chance {1 / len(classes):.3f}")
    print(f"predict     {right} of {len(records)} held-out songs classified as their tag says, straight from the MP3s")
    print(f"plots       {out / 'model' / 'curves.png'}  {out / 'model' / 'eval' / 'test' / 'confusion.png'}")
    print("time        " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
          + f"; {total:.0f} s in all")
    print("Next: the README's 'Use it on your own data' runs the same commands on FMA, MTG-Jamendo or your music.")

"""``genreslice demo``: the whole job on a generated corpus, with the real commands.

Makes a tagged MP3 corpus (:mod:`genreslice.scripts.demo_corpus`), then runs ``genreslice build``, ``train``, ``evaluate`` and
``predict`` on it with the settings a user would type (the functions behind the commands, with their reports and
their error messages), and ends with a short report.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from genreslice.errors import GenresliceError, ParameterError
from genreslice.genre_getters import make_label_source
from genreslice.pipeline.build import BuildConfig
from genreslice.pipeline.layout import TRACKS_CSV, write_text_atomic
from genreslice.pipeline.plan import GenreSelection
from genreslice.pipeline.spectrogram import SpectrogramSpec
from genreslice.pipeline.splits import SPLITS
from genreslice.pipeline.tracks import TrackRow, read_tracks_csv
from genreslice.scripts.commands import build, evaluate, export, predict, train
from genreslice.scripts.demo_corpus import GENRES, write_demo_corpus
from genreslice.scripts.exit_status import run_reporting_errors
from genreslice.training.settings import TrainConfig

DEMO_JSON = "demo.json"
SPLIT_RATIOS = (0.6, 0.2, 0.2)
#: The demo's representation: log-mel slices, on which the default model (the CRNN) did best in
#: ``make bench-models``; ``genreslice build`` itself keeps SoX's spectrogram as its default. A folder whose data
#: set an earlier version's demo built (SoX's slices, the compact model) keeps its own (see :func:`_features`).
FEATURES = "mel"


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
            raise ParameterError(f"songs_per_genre={self.songs_per_genre} must be at least 4 (artists in every split)")
        if not 3.0 <= self.seconds <= 600.0:
            raise ParameterError(f"seconds={self.seconds} must be between 3 and 600")


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


def run_demo(out: str | os.PathLike, config: DemoConfig, *, workers: int, progress: bool = True) -> int:
    """Generate the corpus, then run build, train, evaluate and predict on it as their commands do.

    Each step prints the command line a user would type for it, then the command's own report. Returns the exit
    status: 0 when every step worked.
    """
    out = Path(out)
    timings: dict[str, float] = {}
    started = time.monotonic()
    music, dataset, model = out / "music", out / "dataset", out / "model"
    features = _features(dataset)
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
        (["build", str(music), str(dataset), "--features", features, "--split-ratios",
          ",".join(map(str, SPLIT_RATIOS)), "--workers", str(workers), *quiet],
         lambda: build.build(music, dataset, make_label_source("id3"),
                             BuildConfig(split_ratios=SPLIT_RATIOS, workers=workers,
                                         spec=SpectrogramSpec(features=features)),
                             selection=GenreSelection(), progress=progress)),
        (["train", str(dataset), str(model), "--seed", str(config.seed), *quiet],
         lambda: train.train(dataset, model, TrainConfig(seed=config.seed), progress=progress)),
        (["evaluate", str(dataset), str(model), *quiet],
         lambda: evaluate.evaluate(dataset, model, progress=progress)),
    ]
    for shown, step in steps:
        print(f"\n== genreslice {' '.join(shown)}", flush=True)
        _succeeded(shown[0], _run_step(shown[0], step, timings))

    held_out = _test_songs(dataset)
    songs: list = []
    print(f"\n== genreslice predict {model} <the {len(held_out)} songs of the test split> "
          f"--workers {workers}", flush=True)
    status = _run_step("predict", lambda: predict.predict(model, [str(music / path) for path in held_out],
                                                          workers=workers, progress=progress, on_song=songs.append),
                       timings)
    records = [song.to_dict() for song in songs]
    write_text_atomic(out / "predictions.jsonl",
                      "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    _succeeded("predict", status)
    from genreslice.training.export import missing_packages  # TensorFlow is loaded by now

    exported = out / "exported"
    if missing_packages("onnx"):
        print(f"\n== genreslice export skipped: it needs {', '.join(missing_packages('onnx'))} "
              "(pip install 'genreslice[export]')", flush=True)
    else:
        print(f"\n== genreslice export {model} {exported}", flush=True)
        _succeeded("export", _run_step("export", lambda: export.export(model, exported), timings))
    _report(out, held_out=held_out, records=records, timings=timings, total=time.monotonic() - started)
    return 0


def _features(dataset: Path) -> str:
    """The representation to build: that of the data set an earlier run of the demo built in the folder (the
    demo of earlier versions built SoX's slices; its re-run reuses them and their model), else :data:`FEATURES`."""
    try:
        settings = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))
        features = settings["spectrogram"].get("features", "sox")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return FEATURES  # none yet, or damaged: the build says what it finds
    return features if features in ("sox", "mel") else FEATURES


def _run_step(command: str, step: Callable[[], int], timings: dict[str, float]) -> int:
    """Run one command's function, its errors reported as the command reports them; records its seconds in
    ``timings`` and returns its exit status."""
    started = time.monotonic()
    status = run_reporting_errors(command, step, nested=True)
    timings[command] = time.monotonic() - started
    return status


def _succeeded(command: str, status: int) -> None:
    if status != 0:
        raise DemoError(f"'genreslice {command}' failed with exit status {status}; see its message above")


def _test_songs(dataset: Path) -> dict[str, str]:
    """Audio path (relative to the music folder) -> genre, for the tracks of the test split."""
    return {row.path: row.genre for row in _built_tracks(dataset) if row.split == "test"}


def _built_tracks(dataset: Path) -> list[TrackRow]:
    """The data set's tracks whose slices were built, as ``tracks.csv`` lists them."""
    return [row for row in read_tracks_csv(dataset / TRACKS_CSV) if row.status == "ok"]


def _report(out: Path, *, held_out: dict[str, str], records: list[dict], timings: dict[str, float],
            total: float) -> None:
    dataset = json.loads((out / "dataset" / "dataset.json").read_text(encoding="utf-8"))
    model = json.loads((out / "model" / "model.json").read_text(encoding="utf-8"))
    metrics = json.loads((out / "model" / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    tracks = _built_tracks(out / "dataset")
    songs_per_split = {split: sum(row.split == split for row in tracks) for split in SPLITS}
    music = out / "music"
    right = sum(record["genre"] == held_out.get(os.path.relpath(record["path"], music)) for record in records)
    classes = dataset["classes"]
    print("\n== Demo report")
    print(f"corpus      {len(tracks)} songs of {len(classes)} genres ({', '.join(classes)}) in {music}")
    print(f"data set    {sum(row.n_slices for row in tracks)} slices; songs per split by artist: "
          + ", ".join(f"{split} {count}" for split, count in songs_per_split.items()) + f"  ({out / 'dataset'})")
    kept = model.get("kept") if isinstance(model.get("kept"), dict) else {}
    print(f"training    {model['training']['model']} model, {model['epochs_run']} epochs, {model['stop']['message']}; "
          f"validation accuracy {model['metrics'].get('val_accuracy', float('nan')):.3f}"
          + (f" (epoch {kept['epoch']}, kept)" if "epoch" in kept else ""))
    print(f"test split  slice accuracy {metrics['slice_accuracy']:.3f}; song accuracy {metrics['song_accuracy_majority']:.3f} "
          f"(majority vote), {metrics['song_accuracy_mean']:.3f} (mean probability); chance {1 / len(classes):.3f}")
    print(f"predict     {right} of {len(records)} held-out songs classified as their tag says, straight from the MP3s")
    print(f"plots       {out / 'model' / 'curves.png'}  {out / 'model' / 'eval' / 'test' / 'confusion.png'}")
    print("time        " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
          + f"; {total:.0f} s in all")
    print(f"caution     a toy: it knows {len(classes)} synthetic genres and calls any other sound (speech, birdsong, "
          "noise) one of them, often sure of it, and --min-share cannot be relied on to catch it; see the "
          "README's 'What the demo model "
          "says about other sounds'")
    if (out / "exported" / "genreslice-model.json").is_file():
        print(f"export      {out / 'exported'}: the network as ONNX, its card and classify.py, which needs no "
              "genreslice")
    print(f"Next: genreslice serve {out / 'model'} answers POST /classify on http://127.0.0.1:8000; genreslice "
          "predict MODEL_DIR FILES --write-tags --dry-run shows the genres it would write into your files' tags. "
          "The README's 'Use it on your own data' runs the same commands on FMA, MTG-Jamendo or your music.")

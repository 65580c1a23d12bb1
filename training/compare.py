"""``genreslice compare``: trained models side by side, one row per model folder, on one split.

Each row gathers what the model folder already records (``model.json``, ``history.csv``, ``eval/<split>/``) and
counts the network's parameters from ``model.keras`` (its weights file is read, the model is not built). A model
without an evaluation of the split is evaluated first (:func:`genreslice.training.evaluate.evaluate_model`, which
writes ``eval/<split>/``) on the data set given, or else on the one its ``model.json`` records. Only then is
TensorFlow imported: comparing models that are all evaluated reads files and nothing more.

Which models may share a table: those scored on the same songs of the split, with the same genres. Models of
one data set always are; so are models of two data sets built from one collection with other spectrogram settings
(``sox`` and ``mel`` features), whose splits hold the same songs. Models scored on other songs are refused unless
``allow_mixed``: their accuracies do not measure the same thing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreslice.errors import ParameterError
from genreslice.pipeline import layout
from genreslice.pipeline.layout import DATASET_JSON
from genreslice.pipeline.progress import check_verbose
from genreslice.pipeline.spectrogram import spectrogram_differences
from genreslice.pipeline.splits import SPLITS
from genreslice.training.dataset import DatasetInfo, load_dataset_info, read_split
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.plots import duration_text, plot_comparison
from genreslice.training.settings import recorded_settings
from genreslice.training.voting import VOTES, check_vote, class_scores, confusion_matrix

__all__ = ["FORMATS", "ComparisonTable", "CompareObserver", "compare_models", "count_parameters"]

# The names of a model folder's files, as genreslice.training.model_dir and .evaluate define them: those modules
# import Keras, which a comparison of evaluated models must not wait for.
MODEL_JSON = "model.json"
MODEL_FILE = "model.keras"
HISTORY_CSV = "history.csv"
STATE_JSON = "checkpoint/state.json"
EVAL_DIR = "eval"
METRICS_JSON = "metrics.json"
SONGS_CSV = "songs.csv"

#: The output formats of :meth:`ComparisonTable.to_text`.
FORMATS = ("table", "csv", "json", "markdown")
#: The representation of a data set whose ``spectrogram`` block names no ``features``: SoX's spectrogram.
DEFAULT_FEATURES = "sox"
#: Training settings with columns of their own: the preset, and the epoch limit (in the ``epochs`` column).
_OWN_COLUMN_SETTINGS = ("model", "epochs")
#: What a cell shows for a value that was not recorded (a setting an older version did not have).
MISSING = "-"


class CompareObserver:
    """Hooks for progress display while evaluations run; the default does nothing."""

    def on_evaluate(self, model_dir: Path, dataset_dir: Path, split: str, reason: str) -> None:
        """``model_dir`` is about to be evaluated on ``split`` of ``dataset_dir``, for ``reason``."""

    def on_start(self, n_slices: int, n_batches: int) -> None:
        """As :class:`genreslice.training.evaluate.EvaluateObserver`: the evaluation's classification begins."""

    def on_batch_end(self, batch: int) -> None:
        """As :class:`genreslice.training.evaluate.EvaluateObserver`: one batch has been classified."""


@dataclass(frozen=True)
class _Model:
    """A model folder as given, with its ``model.json``."""

    path: Path
    record: dict

    @property
    def training(self) -> dict:
        """The recorded training settings in full: an option a run does not record had its default (the run
        records only the options it changed, and earlier versions none of them)."""
        recorded = self.record.get("training")
        full = recorded_settings(recorded)
        return {**(recorded if isinstance(recorded, dict) else {}), **full}  # in the recorded order, defaults last

    @property
    def trained_on(self) -> dict:
        dataset = self.record.get("dataset")
        return dataset if isinstance(dataset, dict) else {}

    @property
    def kept_epoch(self):
        """The epoch whose weights ``model.keras`` holds, as evaluate records it in ``metrics.json``."""
        kept = self.record.get("kept")
        return (kept if isinstance(kept, dict) else {}).get("epoch", self.record.get("best_epoch"))


@dataclass(frozen=True)
class _Evaluation:
    """``eval/<split>/`` of a model: ``metrics.json`` and the per-song verdicts of ``songs.csv`` (None if absent)."""

    metrics: dict
    songs: list[dict] | None

    @property
    def fingerprint(self) -> str | None:
        return (self.metrics.get("dataset") or {}).get("fingerprint")

    @property
    def dataset_dir(self) -> Path | None:
        path = (self.metrics.get("dataset") or {}).get("path")
        return Path(path) if path else None


@dataclass(frozen=True)
class _Plan:
    """What to do about one model: use its evaluation, or evaluate it on ``dataset`` first (``reason`` says why)."""

    model: _Model
    evaluation: _Evaluation | None
    dataset: DatasetInfo | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComparisonTable:
    """Trained models side by side on one split.

    Attributes
    ----------
    split : str
        The split every model was scored on.
    vote : str
        The song vote behind the ``macro_f1`` column (both song accuracies and both macro-F1 are in every row).
    rows : tuple of dict
        One per model folder, in the order given. Keys: ``model`` (a short name, unique in the table),
        ``model_dir``, ``dataset``, ``dataset_dir``, ``features``, ``preset``, ``parameters``, ``options`` (the
        training settings that differ between the rows; :data:`MISSING` where a model did not record one),
        ``training`` (all its settings, with the defaults of the options it does not record), ``status``, ``epochs_run``, ``max_epochs``, ``stop_reason``,
        ``training_seconds``, ``peak_memory_mib``, ``n_songs``, ``n_slices``, ``slice_accuracy``,
        ``song_accuracy_majority``, ``song_accuracy_mean``, ``macro_f1_majority``, ``macro_f1_mean``,
        ``macro_f1`` (under ``vote``) and ``evaluated`` (``"now"`` or ``"before"``; None: no evaluation). A value
        that is not known is None.
    option_keys : tuple of str
        The training settings that differ between the rows (nested settings as ``key.subkey``), in sorted order.
    mixed : bool
        The models were scored on different songs (allowed with ``allow_mixed``).
    notes : tuple of str
        Cautions: unfinished runs, evaluations made now or on another data set than the one trained on.
    """

    split: str
    vote: str
    rows: tuple[dict, ...]
    option_keys: tuple[str, ...]
    mixed: bool = False
    notes: tuple[str, ...] = field(default=())

    def columns(self) -> list[tuple[str, str]]:
        """``(key, header)`` of the table's columns, the differing options among them; the number of songs only
        where it differs between the rows (the caption says it otherwise)."""
        songs = [("n_songs", "songs")] if len({row["n_songs"] for row in self.rows}) > 1 else []
        return [("model", "model"), ("dataset", "data set"), ("features", "features"), ("preset", "preset"),
                ("parameters", "params"), *((f"options.{key}", key) for key in self.option_keys),
                ("epochs", "epochs"), ("stop_reason", "stop"), ("training_seconds", "train time"),
                ("peak_memory_mib", "peak MiB"), *songs, ("slice_accuracy", "slice acc"),
                ("song_accuracy_majority", "song acc maj"), ("song_accuracy_mean", "song acc mean"),
                ("macro_f1", "macro-F1 maj" if self.vote == "majority" else "macro-F1 mean")]

    def csv_columns(self) -> list[str]:
        """The columns of the CSV output and of :meth:`to_frame`: every field, the differing options by name."""
        return ["model", "model_dir", "dataset", "dataset_dir", "features", "preset", "parameters",
                *(f"options.{key}" for key in self.option_keys), "status", "epochs_run", "max_epochs",
                "stop_reason", "training_seconds", "peak_memory_mib", "n_songs", "n_slices", "slice_accuracy",
                "song_accuracy_majority", "song_accuracy_mean", "macro_f1_majority", "macro_f1_mean", "evaluated"]

    def caption(self) -> str:
        """One line above the table: the split, its songs and the data sets."""
        datasets = list(dict.fromkeys(row["dataset"] for row in self.rows if row["n_songs"] is not None))
        songs = sorted({row["n_songs"] for row in self.rows if row["n_songs"] is not None})
        counted = f" ({' or '.join(map(str, songs))} songs)" if songs else ""
        return f"{self.split} split{counted} of {', '.join(datasets) or 'no data set'}"

    def to_frame(self):
        """The rows as a :class:`pandas.DataFrame` with :meth:`csv_columns`, one row per model."""
        import pandas as pd

        return pd.DataFrame([_flat(row, self.csv_columns()) for row in self.rows], columns=self.csv_columns())

    def to_text(self, format: str = "table") -> str:
        """The table as text.

        Parameters
        ----------
        format : {"table", "csv", "json", "markdown"}
            table: aligned columns for a terminal, under a caption line. csv: :meth:`csv_columns`, raw numbers
            (seconds, fractions), empty where unknown. json: an object with ``split``, ``vote``, ``mixed``,
            ``option_keys``, ``notes`` and ``models`` (the rows). markdown: the table's columns as a pipe table.

        Raises
        ------
        ParameterError
            An unknown format.
        """
        if format not in FORMATS:
            raise ParameterError(f"format={format!r} must be one of {', '.join(FORMATS)}")
        if format == "csv":
            columns = self.csv_columns()
            return layout.csv_text(columns, (_flat(row, columns) for row in self.rows))
        if format == "json":
            document = {"split": self.split, "vote": self.vote, "mixed": self.mixed,
                        "option_keys": list(self.option_keys), "notes": list(self.notes),
                        "models": [_jsonable(row) for row in self.rows]}
            return json.dumps(document, indent=2) + "\n"
        columns = self.columns()
        headers = [header for _, header in columns]
        cells = [[_cell(key, row) for key, _ in columns] for row in self.rows]
        right = [_is_number_column(key) for key, _ in columns]
        if format == "markdown":
            escape = _markdown_cell
            lines = ["| " + " | ".join(escape(h) for h in headers) + " |",
                     "|" + "|".join("---:" if r else "---" for r in right) + "|"]
            lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in cells]
            return "\n".join(lines) + "\n"
        widths = [max(len(text) for text in column) for column in zip(headers, *cells)]

        def line(texts: list[str]) -> str:
            return "  ".join(text.rjust(width) if r else text.ljust(width)
                             for text, width, r in zip(texts, widths, right)).rstrip()

        return "\n".join([f"{self.caption()}:", line(headers), line(["-" * width for width in widths]),
                          *(line(row) for row in cells)]) + "\n"

    def write_chart(self, path: str | os.PathLike) -> None:
        """Draw song accuracy per model (both votes as bars) with its training time as a PNG (written atomically).

        Models without an evaluation get no bars; their training time is still drawn.
        """
        plot_comparison(
            [row["model"] for row in self.rows],
            {"majority vote": [row["song_accuracy_majority"] for row in self.rows],
             "mean vote": [row["song_accuracy_mean"] for row in self.rows]},
            [row["training_seconds"] for row in self.rows],
            path,
            title=f"Song accuracy on the {self.caption()}",
        )


def compare_models(model_dirs: Sequence[str | os.PathLike], *, split: str = "test",
                   dataset_dir: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                   allow_mixed: bool = False, evaluate_missing: bool = True, vote: str = "majority",
                   observer: CompareObserver | None = None, verbose: int = 0) -> ComparisonTable:
    """Put trained models side by side on one split, evaluating those not yet evaluated there.

    Parameters
    ----------
    model_dirs : sequence of str or os.PathLike
        Folders made by ``genreslice train``, each given once. A run that has not finished is listed with what
        it has (its best epoch so far is evaluated; a note says so); one without a finished epoch has no scores.
    split : {"test", "validation", "train"}
        The split every model is scored on.
    dataset_dir : str, os.PathLike, a sequence of them, or None
        The data set(s) to evaluate on. A model is scored on the one it was trained on (same fingerprint), else
        on one with its spectrogram settings and genres; with one data set given, every model is scored on it.
        An evaluation made on another data set than the given ones is made again. None: evaluations are used
        as they are, and a model without one is evaluated on the data set its ``model.json`` records.
    allow_mixed : bool
        Also accept models scored on different songs (other data sets, other splits of a collection).
    evaluate_missing : bool
        Evaluate models that have no evaluation of ``split`` (or an outdated one, or one made on another data set
        than the one given). False: such a model is listed without scores, or refused when its evaluation was
        made on another data set than the one given.
    vote : {"majority", "mean"}
        The song vote of the ``macro_f1`` column.
    observer : CompareObserver, optional
        Told of each evaluation before it runs, then of its batches.
    verbose : {0, 1}
        1: a progress bar over each evaluation's batches. 0 (the default): print nothing.

    Returns
    -------
    ComparisonTable
        One row per model folder, in the order given.

    Raises
    ------
    ParameterError
        A bad ``split``, ``vote`` or ``verbose``, no model folder, or a folder given twice.
    ModelDirError
        A folder is missing, is not a model folder or has a damaged ``model.json``; a model needs an evaluation
        and no data set for it is known (the message says which to give); or the models were scored on different
        songs and ``allow_mixed`` is False (the message names the folders and their data sets).
    DatasetError
        A data set given cannot be read.
    """
    if split not in SPLITS:
        raise ParameterError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    check_vote(vote)
    verbose = check_verbose(verbose)
    models = [_read_model(path) for path in _distinct_folders(model_dirs, what="model folder")]
    given = [load_dataset_info(path) for path in _distinct_folders(_as_list(dataset_dir), what="data set")]
    plans = [_plan(model, split, given, evaluate_missing=evaluate_missing) for model in models]
    # Refused before any evaluation runs: an evaluation takes minutes on a large data set.
    song_sets = [_planned_songs(plan, split) for plan in plans]
    mixed, notes = _check_mixture(plans, song_sets, split, allow_mixed=allow_mixed)

    evaluated = []
    for plan in plans:
        notes.extend(plan.notes)
        if plan.dataset is None:
            evaluated.append((plan.evaluation, "before" if plan.evaluation else None))
            continue
        result = _evaluate(plan, split, observer=observer, verbose=verbose)
        notes.extend(f"{plan.model.path}: {note}" for note in result.notes)
        evaluated.append((_Evaluation(result.metrics, _read_songs(result.out_dir / SONGS_CSV)), "now"))

    rows = [_row(plan.model, evaluation, how, vote) for plan, (evaluation, how) in zip(plans, evaluated)]
    for row, name in zip(rows, _short_names([row["model_dir"] for row in rows])):
        row["model"] = name
    dataset_paths = [row["dataset_dir"] for row in rows if row["dataset_dir"] is not None]
    dataset_names = dict(zip(dataset_paths, _short_names(dataset_paths)))
    for row in rows:
        row["dataset"] = dataset_names.get(row["dataset_dir"])
    option_keys = _differing_settings([row["training"] for row in rows])
    for row in rows:
        row["options"] = {key: _setting(row["training"], key) for key in option_keys}
    return ComparisonTable(split=split, vote=vote, rows=tuple(rows), option_keys=tuple(option_keys), mixed=mixed,
                           notes=tuple(notes))


def count_parameters(model_file: str | os.PathLike) -> int:
    """The number of weights of a saved Keras 3 model (``.keras``), trainable or not, as ``Model.count_params``.

    Read from the archive's weights file without building the model (no TensorFlow); the optimizer's variables
    are not counted.

    Raises
    ------
    ModelDirError
        The file is missing or is not a Keras 3 archive.
    """
    import h5py  # Keras's own dependency, for its weights files

    path = Path(model_file)
    total = 0

    def add(name: str, item) -> None:
        nonlocal total
        if isinstance(item, h5py.Dataset) and name.split("/", 1)[0] != "optimizer":
            total += int(item.size)

    try:
        with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
            h5.visititems(add)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ModelDirError(f"{path}: cannot be read as a Keras model file ({type(err).__name__}: {err})") from err
    return total


# Reading the folders.

def _as_list(paths) -> list:
    if paths is None:
        return []
    if isinstance(paths, (str, os.PathLike)):
        return [paths]
    return list(paths)


def _distinct_folders(paths: Sequence[str | os.PathLike], *, what: str) -> list[Path]:
    """``paths`` as Paths; a folder given twice (under any spelling) is refused."""
    if what == "model folder" and not paths:
        raise ParameterError("model_dirs is empty: give at least one model folder")
    seen: dict[Path, Path] = {}
    folders = []
    for path in map(Path, paths):
        key = path.resolve()
        if key in seen:
            twice = f"{path}" if str(path) == str(seen[key]) else f"{seen[key]} and {path}"
            raise ParameterError(f"the {what} {twice} is given twice; give each {what} once")
        seen[key] = path
        folders.append(path)
    return folders


def _read_model(path: Path) -> _Model:
    """The folder and its ``model.json``; refused with a message that says what to do."""
    if not path.exists():
        raise ModelDirError(f"{path}: no such folder; give the folders that 'genreslice train' wrote")
    if not path.is_dir():
        raise ModelDirError(f"{path}: not a folder; give the folders that 'genreslice train' wrote")
    record_path = path / MODEL_JSON
    if not record_path.is_file():
        hint = ("it is a data set: give it with --dataset" if (path / DATASET_JSON).is_file()
                else "give the folders that 'genreslice train' wrote")
        raise ModelDirError(f"{path}: no {MODEL_JSON}, so not a model folder made by 'genreslice train'; {hint}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{record_path}: damaged, cannot be read as JSON ({err}); train the model again, or "
                            "leave this folder out") from err
    if not isinstance(record, dict) or not isinstance(record.get("classes"), list):
        raise ModelDirError(f"{record_path}: damaged, it has no 'classes' list; train the model again, or leave "
                            "this folder out")
    if record.get("task") == "multilabel":
        raise ModelDirError(f"{path} holds a multi-label model: compare ranks single-label models by accuracy. "
                            f"Compare multi-label models by the {EVAL_DIR}/SPLIT/summary.tsv that 'genreslice "
                            "evaluate' writes (ROC-AUC, PR-AUC, F-score)")
    return _Model(path=path, record=record)


def _read_evaluation(model: _Model, split: str) -> tuple[_Evaluation | None, str]:
    """The model's evaluation of ``split``, or None with the reason it cannot be used."""
    folder = model.path / EVAL_DIR / split
    if not (folder / METRICS_JSON).is_file():
        return None, f"it has no evaluation of the {split} split"
    try:
        metrics = json.loads((folder / METRICS_JSON).read_text(encoding="utf-8"))
        songs = _read_songs(folder / SONGS_CSV)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        return None, f"its {folder / METRICS_JSON} or {SONGS_CSV} cannot be read ({err})"
    needed = ("slice_accuracy", "song_accuracy_majority", "song_accuracy_mean", "n_songs", "classes")
    if not isinstance(metrics, dict) or any(key not in metrics for key in needed):
        return None, f"its {folder / METRICS_JSON} lacks scores"
    if songs is not None and not {row[key] for row in songs for key in ("genre", "majority", "mean")} <= set(
            metrics["classes"]):
        return None, f"its {folder / SONGS_CSV} names genres its {METRICS_JSON} does not"
    evaluated = metrics.get("model") if isinstance(metrics.get("model"), dict) else {}
    if (evaluated.get("status"), evaluated.get("kept_epoch")) != (model.record.get("status"), model.kept_epoch):
        return None, (f"its evaluation of the {split} split was made on an earlier state of the model "
                      f"(status {evaluated.get('status')!r}, epoch {evaluated.get('kept_epoch')}; now "
                      f"{model.record.get('status')!r}, epoch {model.kept_epoch})")
    # A run still training records no kept epoch: its model file replaced after the evaluation tells.
    unfinished = model.record.get("status") != "finished"
    if unfinished and _modified(model.path / MODEL_FILE) > _modified(folder / METRICS_JSON):
        return None, f"its training went on after its evaluation of the {split} split"
    return _Evaluation(metrics=metrics, songs=songs), ""


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_songs(path: Path) -> list[dict] | None:
    """``songs.csv``'s rows, or None where an evaluation has none."""
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if rows and not {"track_id", "genre", "majority", "mean"} <= set(rows[0]):
        raise ValueError(f"{path} lacks the columns track_id, genre, majority and mean")
    return rows


def _history(model: _Model) -> tuple[int | None, float | None]:
    """Epochs and training seconds from ``history.csv`` (rewritten after every epoch): for runs that have not
    finished, and for runs recorded before ``training_seconds`` was."""
    try:
        with open(model.path / HISTORY_CSV, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        return len(rows), round(sum(float(row["seconds"]) for row in rows), 1)
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return None, None


def _state_peak_memory(model: _Model) -> float | None:
    """The peak memory of a run that has not finished, from its ``checkpoint/state.json``."""
    try:
        state = json.loads((model.path / STATE_JSON).read_text(encoding="utf-8"))
        peaks = [row["peak_memory_mib"] for row in state["history"] if row.get("peak_memory_mib") is not None]
        return float(max(peaks)) if peaks else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


# Planning the evaluations.

def _plan(model: _Model, split: str, given: list[DatasetInfo], *, evaluate_missing: bool) -> _Plan:
    """Use the model's evaluation, or evaluate it on which data set; refuse when none is known."""
    evaluation, why_not = _read_evaluation(model, split)
    if evaluation is not None and (not given or evaluation.fingerprint in {info.fingerprint for info in given}):
        # The evaluation's own cautions: another data set than the one trained on, an unfinished run, a split
        # training saw.
        recorded = evaluation.metrics.get("notes")
        notes = [f"{model.path}: {note}" for note in (recorded if isinstance(recorded, list) else [])]
        return _Plan(model, evaluation, notes=tuple(notes))
    if evaluation is not None:
        why_not = (f"its evaluation of the {split} split was made on another data set "
                   f"({evaluation.dataset_dir}) than the one given")
        if not evaluate_missing:
            raise ModelDirError(f"{model.path}: {why_not}; let compare evaluate it again (without --no-evaluate), "
                                "or leave out --dataset")
    if not (model.path / MODEL_FILE).is_file():
        return _Plan(model, None, notes=(f"{model.path}: no {MODEL_FILE}, so no scores: its training has not "
                                         "finished an epoch",))
    if not evaluate_missing:
        return _Plan(model, None, notes=(f"{model.path}: {why_not}; not evaluated (--no-evaluate)",))
    return _Plan(model, None, dataset=_dataset_for(model, given, why_not), reason=why_not)


def _dataset_for(model: _Model, given: list[DatasetInfo], why: str) -> DatasetInfo:
    """The data set to evaluate ``model`` on: one given, else the one ``model.json`` records."""
    for info in given:
        if info.fingerprint == model.trained_on.get("fingerprint"):
            return info
    for info in given:
        if not _unsuitable(model, info):
            return info
    if len(given) == 1:  # refused now, before other models' evaluations run
        raise ModelDirError(f"{model.path}: {why}, and the data set given ({given[0].root}) does not suit it "
                            f"({_unsuitable(model, given[0])}); give the data set it was trained on with --dataset")
    if given:
        names = ", ".join(str(info.root) for info in given)
        raise ModelDirError(f"{model.path}: {why}, and none of the data sets given ({names}) has its spectrogram "
                            "settings and genres; give the data set it was trained on with --dataset")
    recorded = model.trained_on.get("path")
    if not recorded:
        raise ModelDirError(f"{model.path}: {why}, and its {MODEL_JSON} does not record its data set; give the "
                            "data set it was trained on with --dataset DIR")
    try:
        return load_dataset_info(recorded)
    except DatasetError as err:
        raise ModelDirError(f"{model.path}: {why}, and the data set its {MODEL_JSON} records cannot be read "
                            f"({err}); if it was moved, give it with --dataset DIR") from err


def _unsuitable(model: _Model, info: DatasetInfo) -> str:
    """Why ``model`` cannot be evaluated on ``info`` (other spectrogram settings, a genre it does not know), as
    evaluate would refuse it; empty if it can."""
    differences = [f"spectrogram.{key}: model {mine!r}, data set {theirs!r}" for key, mine, theirs
                   in spectrogram_differences(model.record.get("spectrogram"), info.spectrogram)]
    unknown = [name for name in info.classes if name not in model.record["classes"]]
    if unknown:
        differences.append(f"genres the model was not trained on: {', '.join(unknown)}")
    return "; ".join(differences)


def _songs_key(pairs) -> str:
    """A digest of a split's songs and their genres: equal for two data sets whose split holds the same songs."""
    digest = hashlib.sha256()
    for track, genre in sorted(set(pairs)):
        digest.update(f"{track}\0{genre}\n".encode())
    return digest.hexdigest()


def _planned_songs(plan: _Plan, split: str) -> tuple[str, str, int] | None:
    """``(songs key, data set path, songs)`` the model is or will be scored on; None without scores."""
    if plan.dataset is not None:
        _, labels, track_ids = read_split(plan.dataset, split)
        pairs = set(zip(track_ids.tolist(), (plan.dataset.classes[i] for i in labels.tolist())))
        return _songs_key(pairs), str(plan.dataset.root), len(pairs)
    evaluation = plan.evaluation
    if evaluation is None:
        return None
    if evaluation.songs is None:  # an evaluation without songs.csv: its data set stands for its songs
        return f"fingerprint {evaluation.fingerprint}", str(evaluation.dataset_dir), evaluation.metrics["n_songs"]
    return (_songs_key((row["track_id"], row["genre"]) for row in evaluation.songs), str(evaluation.dataset_dir),
            len(evaluation.songs))


def _check_mixture(plans: list[_Plan], song_sets: list, split: str, *, allow_mixed: bool) -> tuple[bool, list[str]]:
    """Whether the models are scored on different songs (refused unless ``allow_mixed``), and a note when the same
    songs come from several data sets."""
    groups: dict[str, list] = {}
    for plan, songs in zip(plans, song_sets):
        if songs is not None:
            groups.setdefault(songs[0], []).append((plan.model.path, songs[1], songs[2]))
    if len(groups) == 1:
        (members,) = groups.values()
        datasets = list(dict.fromkeys(dataset for _, dataset, _ in members))
        same = (f"the models are scored on {len(datasets)} data sets that hold the same {members[0][2]} songs of "
                f"the {split} split ({', '.join(datasets)}): song scores compare, slice counts may differ")
        return False, [same] if len(datasets) > 1 else []
    if len(groups) <= 1:
        return False, []
    if allow_mixed:
        return True, [f"the models were scored on different songs of the {split} split (allowed by --allow-mixed): "
                      "their scores measure different things"]
    described = "; ".join(
        f"{', '.join(str(path) for path, _, _ in members)} on {', '.join(dict.fromkeys(d for _, d, _ in members))} "
        f"({members[0][2]} songs)" for members in groups.values())
    raise ModelDirError(f"the models were scored on different songs of the {split} split, so their scores do not "
                        f"compare: {described}. Compare models of one data set, or give --allow-mixed "
                        "(allow_mixed=True) to list them anyway")


def _evaluate(plan: _Plan, split: str, *, observer: CompareObserver | None, verbose: int):
    if observer is not None:
        observer.on_evaluate(plan.model.path, plan.dataset.root, split, plan.reason)
    from genreslice.training.evaluate import evaluate_model  # imports TensorFlow

    return evaluate_model(plan.dataset.root, plan.model.path, split=split, observer=observer, verbose=verbose)


# The rows.

def _row(model: _Model, evaluation: _Evaluation | None, how: str | None, vote: str) -> dict:
    record, training = model.record, model.training
    finished = record.get("status") == "finished"
    epochs, seconds = _history(model)
    if finished and isinstance(record.get("epochs_run"), int):
        epochs = record["epochs_run"]
    if finished and isinstance(record.get("training_seconds"), (int, float)):
        seconds = float(record["training_seconds"])
    peak = record.get("peak_memory_mib") if finished else _state_peak_memory(model)
    stop = record.get("stop") if isinstance(record.get("stop"), dict) else {}
    spectrogram = record.get("spectrogram") if isinstance(record.get("spectrogram"), dict) else {}
    try:
        parameters = count_parameters(model.path / MODEL_FILE) if (model.path / MODEL_FILE).is_file() else None
    except ModelDirError:
        parameters = None
    dataset_dir = evaluation.dataset_dir if evaluation else None
    if dataset_dir is None and model.trained_on.get("path"):
        dataset_dir = Path(model.trained_on["path"])
    metrics = evaluation.metrics if evaluation else {}
    f1 = _macro_f1(evaluation)
    return {
        "model": None,  # a short name, set once all rows are known
        "model_dir": str(model.path),
        "dataset": None,
        "dataset_dir": str(dataset_dir) if dataset_dir else None,
        "features": spectrogram.get("features", DEFAULT_FEATURES),
        "preset": training.get("model"),
        "parameters": parameters,
        "options": {},
        "training": training,
        "status": record.get("status"),
        "epochs_run": epochs,
        "max_epochs": training.get("epochs"),
        "stop_reason": stop.get("reason") if finished else "not finished",
        "training_seconds": seconds,
        "peak_memory_mib": float(peak) if isinstance(peak, (int, float)) else None,
        "n_songs": metrics.get("n_songs"),
        "n_slices": metrics.get("n_slices"),
        "slice_accuracy": metrics.get("slice_accuracy"),
        "song_accuracy_majority": metrics.get("song_accuracy_majority"),
        "song_accuracy_mean": metrics.get("song_accuracy_mean"),
        "macro_f1_majority": f1["majority"],
        "macro_f1_mean": f1["mean"],
        "macro_f1": f1[vote],
        "evaluated": how,
    }


def _macro_f1(evaluation: _Evaluation | None) -> dict[str, float | None]:
    """Macro-F1 under each vote, from ``songs.csv``'s verdicts, as evaluate scores it: over the model's genres
    that are in the split or among its predictions. Without ``songs.csv``, only the evaluation's own vote."""
    scores: dict[str, float | None] = dict.fromkeys(VOTES)
    if evaluation is None:
        return scores
    metrics = evaluation.metrics
    if evaluation.songs is None:
        scores[metrics.get("vote", "majority")] = metrics.get("macro_f1")
        return scores
    classes = list(metrics["classes"])
    index = {name: position for position, name in enumerate(classes)}
    truth = [index[row["genre"]] for row in evaluation.songs]
    for name in VOTES:
        confusion = confusion_matrix(truth, [index[row[name]] for row in evaluation.songs], len(classes))
        present = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
        scores[name] = float(class_scores(confusion)["f1"][present].mean()) if present.any() else None
    return scores


def _short_names(paths: Sequence[str]) -> list[str]:
    """The last part of each path, with as many parent folders as it takes to tell different paths apart."""
    parts = [Path(os.path.abspath(path)).parts for path in paths]
    names = []
    for own in parts:
        depth = 1
        while depth < len(own) and any(other != own and other[-depth:] == own[-depth:] for other in parts):
            depth += 1
        names.append("/".join(own[-depth:]))
    return names


def _flatten(settings: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _setting(training: dict, key: str):
    """A (dotted) setting's value; :data:`MISSING` where the model did not record it."""
    return _flatten(training).get(key, MISSING)


def _differing_settings(trainings: list[dict]) -> list[str]:
    """The settings, compared key by key, whose value is not the same in every row (missing counts as a value)."""
    flats = [_flatten(training) for training in trainings]
    keys = sorted({key for flat in flats for key in flat} - set(_OWN_COLUMN_SETTINGS))
    return [key for key in keys if len({json.dumps(flat.get(key, MISSING), sort_keys=True) for flat in flats}) > 1]


# Cells.

_NUMBER_COLUMNS = {"parameters", "epochs", "training_seconds", "peak_memory_mib", "n_songs", "slice_accuracy",
                   "song_accuracy_majority", "song_accuracy_mean", "macro_f1"}


def _is_number_column(key: str) -> bool:
    return key in _NUMBER_COLUMNS


def _cell(key: str, row: dict) -> str:
    """A table cell: numbers rounded for reading, :data:`MISSING` where unknown."""
    if key.startswith("options."):
        return _setting_text(row["options"][key.removeprefix("options.")])
    if key == "epochs":
        run, limit = row["epochs_run"], row["max_epochs"]
        return MISSING if run is None else f"{run}/{limit}" if limit is not None else str(run)
    value = row.get(key)
    if value is None:
        return MISSING
    if key == "parameters":
        return _count_text(value)
    if key == "training_seconds":
        return duration_text(value)
    if key == "peak_memory_mib":
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _setting_text(value) -> str:
    if value is MISSING or value == MISSING:
        return MISSING
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value) if value else "none"  # --augment's list, as the option takes it
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _count_text(count: int) -> str:
    """134467 -> 134.5k, 34247875 -> 34.2M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= size:
            return f"{count / size:.1f}{suffix}"
    return str(count)


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _flat(row: dict, columns: list[str]) -> dict:
    """A row's values under the CSV columns (options by ``options.KEY``); lists and dicts as the table shows them
    (:func:`_setting_text`: ``--augment``'s list comma-joined, ``none`` when empty; others as JSON text)."""
    flat = {}
    for column in columns:
        if column.startswith("options."):
            value = row["options"][column.removeprefix("options.")]
            flat[column] = _setting_text(value) if isinstance(value, (list, dict)) else value
        else:
            flat[column] = row.get(column)
    return flat


def _jsonable(row: dict) -> dict:
    """A row for JSON: numpy numbers as Python numbers."""
    return json.loads(json.dumps(row, default=lambda value: value.item() if isinstance(value, np.generic)
                                 else str(value)))

"""``compare_models``: rows read from real model folders and evaluations, evaluations run on demand, refusals."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from genreslice.errors import ParameterError
from genreslice.pipeline.layout import DATASET_JSON, SLICES_CSV
from genreslice.training.compare import compare_models, count_parameters
from genreslice.training.dataset import load_dataset_info
from genreslice.training.errors import ModelDirError
from genreslice.training.voting import score_songs

# What a model folder holds besides the files compare reads: left out of the copies.
NOT_COPIED = shutil.ignore_patterns("eval", "logs", "checkpoint", "lock", "curves.png")


def model_copy(toy_model, target, change=None):
    """The toy model in a folder of its own, without evaluations; ``change(record)`` edits its model.json."""
    shutil.copytree(toy_model / "model", target, ignore=NOT_COPIED)
    if change:
        record = json.loads((target / "model.json").read_text())
        change(record)
        (target / "model.json").write_text(json.dumps(record, indent=2))
    return target


def dataset_copy(toy_model, target, keep=lambda rows: rows):
    """A data set with the toy data set's slices (linked) and ``keep(rows)`` of its slices.csv rows."""
    target.mkdir()
    shutil.copy(toy_model / "dataset" / DATASET_JSON, target / DATASET_JSON)
    (target / "slices").symlink_to(toy_model / "dataset" / "slices", target_is_directory=True)
    header, *rows = (toy_model / "dataset" / SLICES_CSV).read_text().splitlines(keepends=True)
    (target / SLICES_CSV).write_text(header + "".join(keep(rows)))
    return target


def other_settings(record):
    record["training"]["learning_rate"] = 0.0005
    record["training"]["l2"] = 0.001  # an option a run records only when it is not the default
    record["training"]["mixup"] = 0.2  # a setting this version does not know
    record["training_seconds"] = 600.0


@pytest.fixture(scope="module")
def pair(toy_model, tmp_path_factory):
    """Two copies of the toy model, one with other recorded settings, compared once: both evaluated then."""
    root = tmp_path_factory.mktemp("compare")
    first = model_copy(toy_model, root / "base model")
    second = model_copy(toy_model, root / "lower rate", other_settings)
    return first, second, compare_models([first, second])


def test_rows_hold_model_json_and_the_evaluation_made_on_demand(toy_model, pair):
    first, second, table = pair
    assert [row["model"] for row in table.rows] == ["base model", "lower rate"]
    assert [row["evaluated"] for row in table.rows] == ["now", "now"]
    record = json.loads((toy_model / "model" / "model.json").read_text())
    for folder, row in zip((first, second), table.rows):
        metrics = json.loads((folder / "eval" / "test" / "metrics.json").read_text())
        assert metrics["dataset"]["path"] == str((toy_model / "dataset").resolve()) == row["dataset_dir"]
        for key in ("n_songs", "n_slices", "slice_accuracy", "song_accuracy_majority", "song_accuracy_mean"):
            assert row[key] == metrics[key]
        assert row["macro_f1_majority"] == row["macro_f1"] == metrics["macro_f1"]
        assert row["dataset"] == "dataset" and row["features"] == "sox" and row["preset"] == "compact"
        assert row["epochs_run"] == record["epochs_run"] and row["max_epochs"] == record["training"]["epochs"]
        assert row["stop_reason"] == record["stop"]["reason"] and row["status"] == "finished"
        assert row["peak_memory_mib"] == record["peak_memory_mib"] and row["parameters"] == 134467
    assert table.rows[0]["training_seconds"] == record["training_seconds"]
    assert table.rows[1]["training_seconds"] == 600.0
    # Only the settings that differ get columns: an option not recorded had its default; a setting the first
    # model's version did not have shows as "-".
    assert table.option_keys == ("l2", "learning_rate", "mixup")
    assert [row["options"] for row in table.rows] == [{"l2": 0.0, "learning_rate": 0.001, "mixup": "-"},
                                                      {"l2": 0.001, "learning_rate": 0.0005, "mixup": 0.2}]
    assert table.mixed is False and table.split == "test"


def test_text_formats_carry_the_same_values(pair):
    _, _, table = pair
    rows = list(csv.DictReader(table.to_text("csv").splitlines()))
    assert [row["model"] for row in rows] == ["base model", "lower rate"]
    assert rows[0]["options.mixup"] == "-" and rows[0]["options.l2"] == "0.0"
    assert rows[1]["options.learning_rate"] == "0.0005"
    assert float(rows[1]["training_seconds"]) == 600.0 and int(rows[0]["parameters"]) == 134467
    document = json.loads(table.to_text("json"))
    assert document["option_keys"] == ["l2", "learning_rate", "mixup"] and document["split"] == "test"
    assert document["models"][1]["training"]["l2"] == 0.001
    lines = table.to_text("table").splitlines()
    assert lines[0] == "test split (6 songs) of dataset:"
    assert lines[1].split()[:8] == ["model", "data", "set", "features", "preset", "params", "l2", "learning_rate"]
    assert " 10.0 min " in lines[4] and " 134.5k " in lines[3] and " songs " not in lines[1]
    markdown = table.to_text("markdown").splitlines()
    assert markdown[0].startswith("| model | data set |") and markdown[1].startswith("|---|---|")
    assert markdown[2].startswith("| base model | dataset | sox | compact | 134.5k | 0 | 0.001 | - |")
    assert markdown[3].startswith("| lower rate | dataset | sox | compact | 134.5k | 0.001 | 0.0005 | 0.2 |")
    assert table.to_frame().loc[1, "options.l2"] == 0.001
    with pytest.raises(ParameterError, match="format='html'"):
        table.to_text("html")


def test_augment_lists_read_as_the_option_is_given(toy_model, pair, tmp_path):
    first, _, _ = pair
    augmented = model_copy(toy_model, tmp_path / "augmented",
                           lambda record: record["training"].update(augment=["offset", "specaugment"]))
    shutil.copytree(first / "eval", augmented / "eval")  # the same weights: the same evaluation
    table = compare_models([first, augmented])
    assert table.option_keys == ("augment",)
    assert [row["options"] for row in table.rows] == [{"augment": []}, {"augment": ["offset", "specaugment"]}]
    markdown = table.to_text("markdown").splitlines()
    assert markdown[2].startswith("| base model | dataset | sox | compact | 134.5k | none |")
    assert markdown[3].startswith("| augmented | dataset | sox | compact | 134.5k | offset,specaugment |")
    rows = list(csv.DictReader(table.to_text("csv").splitlines()))
    assert [row["options.augment"] for row in rows] == ["none", "offset,specaugment"]


def test_existing_evaluations_are_read_without_tensorflow(pair):
    first, second, _ = pair
    code = ("import sys; from genreslice.training.compare import compare_models; "
            f"table = compare_models([{str(first)!r}, {str(second)!r}]); "
            "assert [row['evaluated'] for row in table.rows] == ['before', 'before'], table.rows; "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_macro_f1_of_both_votes_equals_evaluate_scoring(tmp_path):
    """From songs.csv's verdicts, compare scores both votes as evaluate scores one."""
    generator = np.random.default_rng(3)
    classes = ["a", "b", "c", "d", "e"]
    songs = np.repeat(np.arange(12), 5)
    labels = np.repeat(generator.integers(0, 3, 12), 5)  # "d" is never true but predicted; "e" neither: unscored
    probabilities = np.hstack([generator.dirichlet(np.ones(4), len(songs)), np.zeros((len(songs), 1))])
    folder = tmp_path / "model"
    (folder / "eval" / "test").mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps({"classes": classes, "status": "finished"}))
    scores = {vote: score_songs(probabilities, labels, songs.astype(str), classes, vote=vote) for vote in
              ("majority", "mean")}
    majority = scores["majority"]
    metrics = {**majority.metrics, "classes": classes, "model": {"status": "finished", "kept_epoch": None},
               "dataset": {"path": str(tmp_path), "fingerprint": "x"}}
    (folder / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics))
    with open(folder / "eval" / "test" / "songs.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "genre", "majority", "mean"])
        for i, song in enumerate(majority.tally.song_ids):
            writer.writerow([song, classes[majority.truth[i]], classes[majority.winners["majority"][i]],
                             classes[majority.winners["mean"][i]]])
    (row,) = compare_models([folder], vote="mean").rows
    assert row["macro_f1_majority"] == pytest.approx(scores["majority"].metrics["macro_f1"])
    assert row["macro_f1_mean"] == row["macro_f1"] == pytest.approx(scores["mean"].metrics["macro_f1"])
    assert row["macro_f1_majority"] != row["macro_f1_mean"]
    assert row["parameters"] is None and row["preset"] is None and row["options"] == {}


def test_another_split_is_evaluated_into_its_own_folder(pair):
    first, _, _ = pair
    (row,) = compare_models([first], split="validation").rows
    metrics = json.loads((first / "eval" / "validation" / "metrics.json").read_text())
    assert row["n_songs"] == metrics["n_songs"] == 3 and row["evaluated"] == "now"
    assert (first / "eval" / "test" / "metrics.json").is_file()


def test_other_songs_are_refused_unless_mixing_is_allowed(toy_model, pair, tmp_path):
    first, _, _ = pair
    dropped = next(row.split(",")[1] for row in (toy_model / "dataset" / SLICES_CSV).read_text().splitlines()
                   if ",test," in row)
    fewer = dataset_copy(toy_model, tmp_path / "fewer songs", lambda rows: [r for r in rows if dropped not in r])
    other = model_copy(toy_model, tmp_path / "other")
    (row,) = compare_models([other], dataset_dir=fewer).rows
    assert row["n_songs"] == 5 and row["dataset_dir"] == str(fewer.resolve())

    with pytest.raises(ModelDirError) as refused:
        compare_models([first, other])
    message = str(refused.value)
    assert "\n" not in message and "different songs of the test split" in message and "--allow-mixed" in message
    assert f"{first} on {(toy_model / 'dataset').resolve()} (6 songs)" in message
    assert f"{other} on {fewer.resolve()} (5 songs)" in message
    table = compare_models([first, other], allow_mixed=True)
    assert table.mixed and [row["n_songs"] for row in table.rows] == [6, 5]
    assert any("allowed by --allow-mixed" in note for note in table.notes)

    # Given a data set, an evaluation made on another one is made again on it.
    table = compare_models([first, other], dataset_dir=toy_model / "dataset")
    assert [row["evaluated"] for row in table.rows] == ["before", "now"]
    assert [row["n_songs"] for row in table.rows] == [6, 6] and not table.mixed
    with pytest.raises(ModelDirError, match="made on another data set"):
        compare_models([other], dataset_dir=fewer, evaluate_missing=False)


def test_data_sets_holding_the_same_songs_compare(toy_model, pair, tmp_path):
    first, _, _ = pair
    reordered = dataset_copy(toy_model, tmp_path / "same songs", lambda rows: rows[::-1])
    assert load_dataset_info(reordered).fingerprint != load_dataset_info(toy_model / "dataset").fingerprint
    other = model_copy(toy_model, tmp_path / "other")
    compare_models([other], dataset_dir=reordered)
    table = compare_models([first, other])
    assert not table.mixed and [row["dataset"] for row in table.rows] == ["dataset", "same songs"]
    assert any("hold the same 6 songs" in note for note in table.notes)


def test_unfinished_and_unevaluated_models_are_listed_with_what_they_have(toy_model, tmp_path):
    def unfinished(record):
        for key in ("stop", "epochs_run", "best_epoch", "kept", "metrics", "training_seconds", "epoch_seconds",
                    "peak_memory_mib"):
            del record[key]
        record["status"] = "training"

    running = model_copy(toy_model, tmp_path / "running", unfinished)
    history = (running / "history.csv").read_text().splitlines(keepends=True)
    (running / "history.csv").write_text("".join(history[:6]))
    seconds = round(sum(float(line.split(",")[-1]) for line in history[1:6]), 1)
    (running / "checkpoint").mkdir()
    (running / "checkpoint" / "state.json").write_text(json.dumps({"history": [{"peak_memory_mib": 500.5}]}))
    idle = model_copy(toy_model, tmp_path / "not evaluated")
    table = compare_models([running, idle], evaluate_missing=False)
    assert [row["n_songs"] for row in table.rows] == [None, None]
    row = table.rows[0]
    assert (row["status"], row["stop_reason"], row["epochs_run"]) == ("training", "not finished", 5)
    assert row["training_seconds"] == seconds and row["peak_memory_mib"] == 500.5
    assert [note.split(":")[0] for note in table.notes] == [str(running), str(idle)]
    assert "not evaluated (--no-evaluate)" in table.notes[1]
    assert table.to_text("table").splitlines()[3].split()[-4:] == ["-"] * 4

    table = compare_models([running])
    assert table.rows[0]["n_songs"] == 6 and any("training is not finished" in note for note in table.notes)


def test_refusals_name_the_folder(toy_model, tmp_path):
    good = model_copy(toy_model, tmp_path / "good")
    (tmp_path / "empty").mkdir()
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "model.json").write_text('{"classes": [')
    cases = [(tmp_path / "missing", "no such folder"), (tmp_path / "empty", "no model.json"),
             (toy_model / "dataset", "it is a data set: give it with --dataset"),
             (tmp_path / "damaged", "damaged, cannot be read as JSON")]
    for folder, expected in cases:
        with pytest.raises(ModelDirError, match=expected) as refused:
            compare_models([good, folder])
        assert str(folder) in str(refused.value) and "\n" not in str(refused.value)
    with pytest.raises(ParameterError, match="given twice"):
        compare_models([good, tmp_path / "good" / ".." / "good"])
    with pytest.raises(ParameterError, match="split='tests'"):
        compare_models([good], split="tests")

    other_rate = dataset_copy(toy_model, tmp_path / "other rate")
    meta = json.loads((other_rate / DATASET_JSON).read_text())
    meta["spectrogram"]["pixels_per_second"] = 100
    (other_rate / DATASET_JSON).write_text(json.dumps(meta))
    with pytest.raises(ModelDirError, match=r"good: it has no evaluation .* \(spectrogram.pixels_per_second: model "
                                            r"50, data set 100\); give the data set it was trained on"):
        compare_models([good], dataset_dir=other_rate)
    assert not (good / "eval").exists()

    moved = model_copy(toy_model, tmp_path / "moved", lambda r: r["dataset"].update(path=str(tmp_path / "gone")))
    with pytest.raises(ModelDirError, match=r"moved: it has no evaluation .* give it with --dataset"):
        compare_models([moved])


def test_parameters_counted_from_the_file(toy_model, tmp_path):
    from genreslice.training.tf_modules import keras

    model = keras.models.load_model(toy_model / "model" / "model.keras", compile=False)
    assert count_parameters(toy_model / "model" / "model.keras") == model.count_params()
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(ModelDirError, match="broken.keras"):
        count_parameters(tmp_path / "broken.keras")


def test_chart_shows_bars_and_times(pair, tmp_path):
    _, _, table = pair
    table.write_chart(tmp_path / "chart.png")
    with Image.open(tmp_path / "chart.png") as image:
        assert image.format == "PNG" and image.width >= 640 and image.height >= 400
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    # The two votes' bars and the training-time diamonds, on white.
    assert {(31, 119, 180), (255, 127, 14), (214, 39, 40), (255, 255, 255)} <= colours
    assert np.mean(np.all(pixels == (31, 119, 180), axis=1)) > 0.01

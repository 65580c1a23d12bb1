"""``evaluate_model`` on a data set built from real audio, checked against an independent computation."""
from __future__ import annotations

import csv
import json
import shutil

import keras
import numpy as np
import pytest
from PIL import Image

from pipeline.layout import DATASET_JSON, SLICES_CSV
from training.data_source import load_slices
from training.dataset import load_dataset_info, read_split
from training.errors import DatasetError, ModelDirError
from training.evaluate import evaluate_model


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture(scope="module")
def evaluated(toy_model):
    return evaluate_model(toy_model / "dataset", toy_model / "model", split="test", loader_workers=2)


def test_metrics_agree_with_the_model_slice_by_slice(toy_model, evaluated):
    info = load_dataset_info(toy_model / "dataset")
    paths, labels, track_ids = read_split(info, "test")
    model = keras.models.load_model(toy_model / "model" / "model.keras")
    predicted = np.argmax(model.predict(load_slices(paths), verbose=0), axis=1)

    metrics = json.loads((evaluated.out_dir / "metrics.json").read_text())
    assert evaluated.out_dir == toy_model / "model" / "eval" / "test"
    assert metrics["split"] == "test" and metrics["classes"] == ["Electronic", "Jazz", "Rock"]
    assert metrics["n_slices"] == len(paths) == 24 and metrics["n_songs"] == len(set(track_ids)) == 6
    assert metrics["slice_accuracy"] == pytest.approx(np.mean(predicted == labels))
    # The toy genres are easy: every test song is right under both votes.
    assert metrics["song_accuracy_majority"] == metrics["song_accuracy_mean"] == 1.0
    assert metrics["macro_f1"] == 1.0
    assert metrics["per_genre"] == {name: {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
                                    for name in metrics["classes"]}
    assert metrics["dataset"]["same_as_training"] is True and metrics["model"]["status"] == "finished"
    assert metrics["notes"] == [] and evaluated.notes == ()


def test_songs_and_confusion_files(toy_model, evaluated):
    info = load_dataset_info(toy_model / "dataset")
    _, labels, track_ids = read_split(info, "test")
    truth = {track: info.classes[label] for track, label in zip(track_ids, labels)}
    songs = list(csv.DictReader(open(evaluated.out_dir / "songs.csv", newline="", encoding="utf-8")))
    assert {row["track_id"]: row["genre"] for row in songs} == truth
    assert all(int(row["n_slices"]) == 4 for row in songs)
    assert all(row["majority"] == row["genre"] == row["mean"] for row in songs)
    assert all(0.5 < float(row["majority_share"]) <= 1.0 and 1 / 3 < float(row["mean_probability"]) <= 1.0
               for row in songs)

    rows = read_rows(evaluated.out_dir / "confusion.csv")
    assert rows[0] == ["true \\ predicted", "Electronic", "Jazz", "Rock"]
    assert [row[0] for row in rows[1:]] == ["Electronic", "Jazz", "Rock"]
    matrix = np.array([[int(value) for value in row[1:]] for row in rows[1:]])
    np.testing.assert_array_equal(matrix, np.diag([2, 2, 2]))
    assert matrix.tolist() == evaluated.metrics["confusion_matrix"]

    with Image.open(evaluated.out_dir / "confusion.png") as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 200
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    # Diagonal cells are the darkest blue (a full row), off-diagonal ones white-ish.
    assert np.any(np.all(pixels == (8, 48, 107), axis=1)) and np.any(np.all(pixels == (247, 251, 255), axis=1))


def test_other_splits_carry_notes(toy_model, tmp_path):
    result = evaluate_model(toy_model / "dataset", copy_model(toy_model, tmp_path / "model"), split="validation",
                            vote="mean")
    assert result.out_dir.name == "validation" and result.metrics["n_songs"] == 3
    assert result.metrics["vote"] == "mean"
    assert any("chose its best epoch" in note for note in result.notes)
    saved = json.loads((result.out_dir / "metrics.json").read_text())
    assert saved["notes"] == list(result.notes)


def copy_model(toy_model, target):
    """The toy model's files in a folder of its own, so a test's evaluation does not replace the shared one's."""
    target.mkdir()
    for name in ("model.json", "model.keras"):
        shutil.copy(toy_model / "model" / name, target / name)
    return target


def copy_tables(toy_model, target, change=None):
    """A data set folder with the toy data set's tables (slices are not copied: refusals come first)."""
    target.mkdir()
    meta = json.loads((toy_model / "dataset" / DATASET_JSON).read_text())
    if change:
        change(meta)
    (target / DATASET_JSON).write_text(json.dumps(meta))
    shutil.copy(toy_model / "dataset" / SLICES_CSV, target / SLICES_CSV)
    return target


def test_a_data_set_made_differently_is_refused(toy_model, tmp_path):
    def other_rate(meta):
        meta["spectrogram"]["pixels_per_second"] = 100

    model = copy_model(toy_model, tmp_path / "model")
    data = copy_tables(toy_model, tmp_path / "other rate", other_rate)
    with pytest.raises(ModelDirError, match="spectrogram.pixels_per_second: model 50, data set 100"):
        evaluate_model(data, model)

    def more_genres(meta):
        meta["classes"] = ["Electronic", "Jazz", "Pop", "Rock"]

    data = copy_tables(toy_model, tmp_path / "more genres", more_genres)
    with pytest.raises(ModelDirError, match=r"classes: model \['Electronic', 'Jazz', 'Rock'\], data set"):
        evaluate_model(data, model)
    assert sorted(path.name for path in model.iterdir()) == ["model.json", "model.keras"]  # nothing written


def test_an_empty_split_and_a_bad_model_folder(toy_model, tmp_path):
    data = copy_tables(toy_model, tmp_path / "no test")
    rows = read_rows(data / SLICES_CSV)
    split = rows[0].index("split")
    with open(data / SLICES_CSV, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([rows[0], *(row for row in rows[1:] if row[split] != "test")])
    with pytest.raises(DatasetError, match="the test split has no slices"):
        evaluate_model(data, copy_model(toy_model, tmp_path / "model"))

    with pytest.raises(ModelDirError, match="no model.json"):
        evaluate_model(toy_model / "dataset", tmp_path)
    broken = tmp_path / "broken model"
    broken.mkdir()
    shutil.copy(toy_model / "model" / "model.json", broken / "model.json")
    (broken / "model.keras").write_bytes(b"not a zip file at all")
    with pytest.raises(ModelDirError, match="model.keras: cannot be loaded as a Keras model"):
        evaluate_model(toy_model / "dataset", broken)
    with pytest.raises(DatasetError, match="split='holdout'"):
        evaluate_model(toy_model / "dataset", toy_model / "model", split="holdout")


def test_wrong_labels_show_off_the_diagonal(toy_model, tmp_path):
    """Labels rotated (Electronic songs called Jazz, Jazz called Rock, Rock called Electronic): the same model now
    gets every song wrong, and the matrix says which way (rows = the data set's genre, columns = predicted)."""
    data = copy_tables(toy_model, tmp_path / "rotated")
    (data / "slices").symlink_to(toy_model / "dataset" / "slices")
    rows = read_rows(data / SLICES_CSV)
    genre = rows[0].index("genre")
    rotate = {"Electronic": "Jazz", "Jazz": "Rock", "Rock": "Electronic"}
    for row in rows[1:]:
        row[genre] = rotate[row[genre]]
    with open(data / SLICES_CSV, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    model = copy_model(toy_model, tmp_path / "model")
    result = evaluate_model(data, model)
    metrics = result.metrics
    # Row "Electronic" holds the Rock songs, predicted Rock; row "Jazz" the Electronic ones; row "Rock" the Jazz ones.
    assert metrics["confusion_matrix"] == [[0, 0, 2], [2, 0, 0], [0, 2, 0]]
    assert metrics["song_accuracy_majority"] == metrics["song_accuracy_mean"] == 0.0
    assert metrics["slice_accuracy"] <= 0.25  # a slice the model gets wrong would now count as right
    assert metrics["per_genre"]["Jazz"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert metrics["macro_f1"] == 0.0
    assert metrics["dataset"]["same_as_training"] is False
    assert any("differs from the one the model was trained on" in note for note in result.notes)
    confusion = read_rows(model / "eval" / "test" / "confusion.csv")
    assert confusion[1:] == [["Electronic", "0", "0", "2"], ["Jazz", "2", "0", "0"], ["Rock", "0", "2", "0"]]
    songs = list(csv.DictReader(open(model / "eval" / "test" / "songs.csv", newline="", encoding="utf-8")))
    assert {(row["genre"], row["majority"]) for row in songs} == {("Electronic", "Rock"), ("Jazz", "Electronic"),
                                                                 ("Rock", "Jazz")}

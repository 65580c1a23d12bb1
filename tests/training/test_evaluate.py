"""``evaluate_model`` on a data set built from real audio, checked against an independent computation."""
from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from genreslice.pipeline import layout
from genreslice.pipeline.layout import DATASET_JSON, SLICES_CSV
from tests.helpers import build_could_start, hold_lock, stop
from genreslice.training.data_source import load_slices
from genreslice.training.dataset import load_dataset_info, read_split
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.evaluate import evaluate_model


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
    with pytest.raises(ModelDirError, match=r"classes: model \['Electronic', 'Jazz', 'Rock'\], data set "
                                            r"\['Electronic', 'Jazz', 'Pop', 'Rock'\] \(the model was not trained "
                                            r"on \['Pop'\]\)"):
        evaluate_model(data, model)
    assert sorted(path.name for path in model.iterdir()) == ["model.json", "model.keras"]  # nothing written


def test_a_data_set_of_some_of_the_models_genres_is_scored_over_the_models(toy_model, tmp_path):
    def without_rock(meta):
        meta["classes"] = ["Electronic", "Jazz"]

    data = copy_tables(toy_model, tmp_path / "two genres", without_rock)
    rows = read_rows(data / SLICES_CSV)
    with open(data / SLICES_CSV, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([rows[0], *(row for row in rows[1:] if row[2] != "Rock")])
    (data / "slices").symlink_to(toy_model / "dataset" / "slices", target_is_directory=True)
    result = evaluate_model(data, copy_model(toy_model, tmp_path / "model"), split="test")

    metrics = json.loads((result.out_dir / "metrics.json").read_text())
    assert metrics["classes"] == ["Electronic", "Jazz", "Rock"] and metrics["missing_classes"] == ["Rock"]
    assert metrics["dataset_classes"] == ["Electronic", "Jazz"]
    assert metrics["n_songs"] == 4 and metrics["song_accuracy_majority"] == 1.0  # Jazz stays Jazz, not Rock
    assert metrics["per_genre"]["Rock"]["support"] == 0 and metrics["per_genre"]["Jazz"]["recall"] == 1.0
    assert metrics["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 0]]
    assert result.notes[0] == ("the data set lacks 1 of the model's genres (Rock): they have no songs to score "
                               "(empty rows of the confusion matrix), and songs predicted as them count as errors")
    assert metrics["notes"] == list(result.notes)


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
    data = rotated_dataset(toy_model, tmp_path / "rotated")
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


def digest(folder):
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file()}


def rotated_dataset(toy_model, target):
    """The toy data set with every song's genre label moved on by one: evaluations of it differ in every file."""
    data = copy_tables(toy_model, target)
    (data / "slices").symlink_to(toy_model / "dataset" / "slices")
    rows = read_rows(data / SLICES_CSV)
    genre = rows[0].index("genre")
    rotate = {"Electronic": "Jazz", "Jazz": "Rock", "Rock": "Electronic"}
    for row in rows[1:]:
        row[genre] = rotate[row[genre]]
    (data / SLICES_CSV).write_text(layout.csv_text(rows[0], rows[1:]), encoding="utf-8")
    return data


def test_an_interrupted_evaluation_leaves_the_previous_results_whole(toy_model, tmp_path, monkeypatch):
    import genreslice.training.evaluate as evaluate_module

    model = copy_model(toy_model, tmp_path / "model")
    evaluate_model(toy_model / "dataset", model)
    before = digest(model / "eval" / "test")
    assert sorted(before) == ["confusion.csv", "confusion.png", "metrics.json", "songs.csv"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # after confusion.csv, before the other files

    monkeypatch.setattr(evaluate_module, "plot_confusion_matrix", interrupted)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(rotated_dataset(toy_model, tmp_path / "rotated"), model)
    assert digest(model / "eval" / "test") == before  # every file of the first run, none of the second
    assert os.listdir(model / "eval") == ["test"]


def test_a_stop_between_the_two_renames_puts_the_previous_results_back(toy_model, tmp_path, monkeypatch):
    model = copy_model(toy_model, tmp_path / "model")
    evaluate_model(toy_model / "dataset", model)
    before = digest(model / "eval" / "test")
    replace, stops = os.replace, []

    def stopped_after_moving_the_old_aside(source, destination, **kwargs):
        if Path(destination) == model / "eval" / "test" and not stops:  # the new results into place, the first time
            stops.append(source)
            raise KeyboardInterrupt
        return replace(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", stopped_after_moving_the_old_aside)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(rotated_dataset(toy_model, tmp_path / "rotated"), model)
    monkeypatch.undo()
    assert stops and digest(model / "eval" / "test") == before and os.listdir(model / "eval") == ["test"]


def test_a_full_disk_keeps_the_previous_results_and_names_the_folder(toy_model, tmp_path, monkeypatch):
    model = copy_model(toy_model, tmp_path / "model")
    evaluate_model(toy_model / "dataset", model)
    before = digest(model / "eval" / "test")
    replace = os.replace

    def disk_full(source, destination, **kwargs):
        if Path(destination).name == "metrics.json":
            raise OSError(28, "No space left on device")
        return replace(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ModelDirError) as caught:
        evaluate_model(rotated_dataset(toy_model, tmp_path / "rotated"), model)
    assert str(caught.value) == (f"{model / 'eval' / 'test'}: cannot be written (No space left on device). Free "
                                 "space on its disk (or fix what the error names), then run the same command again; "
                                 "the previous results of this split are kept until then")
    assert digest(model / "eval" / "test") == before and os.listdir(model / "eval") == ["test"]


def test_leftovers_of_killed_evaluations_are_removed_by_the_next(toy_model, tmp_path):
    model = copy_model(toy_model, tmp_path / "model")
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        eval_dir = model / "eval"
        host = socket.gethostname()
        for name in (f".test.{host}.{ended.pid}.0123abcd.tmp", f".validation.{host}.{ended.pid}.0123abcd.tmp.old",
                     f".test.{host}.{running.pid}.0123abcd.tmp", f".test.another-machine.{ended.pid}.0123abcd.tmp"):
            (eval_dir / name).mkdir(parents=True)
            (eval_dir / name / "confusion.csv").write_text("half")
        (eval_dir / "test").mkdir()
        (eval_dir / "test" / ".songs.csv.x1y2.tmp").write_text("half")  # as evaluations wrote files until now
        (eval_dir / "test" / "confusion.csv").write_text("of an earlier run")
        result = evaluate_model(toy_model / "dataset", model)
        # The folder of a process that still runs may be an evaluation at work: it stays. The previous results a
        # killed run had moved aside (and not replaced yet) are put back.
        # Nor is a folder of another machine sharing the model folder.
        assert sorted(os.listdir(eval_dir)) == [f".test.another-machine.{ended.pid}.0123abcd.tmp",
                                                f".test.{host}.{running.pid}.0123abcd.tmp", "test", "validation"]
        assert (eval_dir / "validation" / "confusion.csv").read_text() == "half"
        assert sorted(os.listdir(eval_dir / "test")) == ["confusion.csv", "confusion.png", "metrics.json",
                                                          "songs.csv"]
        assert read_rows(eval_dir / "test" / "confusion.csv")[1:] == [
            [name, *map(str, row)] for name, row in zip(result.metrics["classes"], result.metrics["confusion_matrix"])]
    finally:
        running.kill()
        running.wait()


def test_genre_names_with_commas_quotes_and_line_breaks_survive_the_csv_files(toy_model, tmp_path):
    import pandas as pd

    names = {"Electronic": 'Electronic, "EDM"', "Jazz": "Jazz\rSwing", "Rock": "Rock\n'n' Roll"}

    def renamed(meta):
        meta["classes"] = [names[name] for name in meta["classes"]]

    data = copy_tables(toy_model, tmp_path / "data", renamed)
    (data / "slices").symlink_to(toy_model / "dataset" / "slices")
    rows = read_rows(data / SLICES_CSV)
    genre = rows[0].index("genre")
    for row in rows[1:]:
        row[genre] = names[row[genre]]
    (data / SLICES_CSV).write_text(layout.csv_text(rows[0], rows[1:]), encoding="utf-8")
    model = copy_model(toy_model, tmp_path / "model")
    record = json.loads((model / "model.json").read_text())
    renamed(record)
    (model / "model.json").write_text(json.dumps(record))

    result = evaluate_model(data, model)
    classes = list(names.values())
    assert result.metrics["classes"] == classes and result.metrics["song_accuracy_majority"] == 1.0
    songs = pd.read_csv(result.out_dir / "songs.csv", dtype=str)
    assert len(songs) == 6 and set(songs["genre"]) == set(classes) and (songs["genre"] == songs["majority"]).all()
    confusion = read_rows(result.out_dir / "confusion.csv")
    assert confusion[0] == ["true \\ predicted", *classes] and [row[0] for row in confusion[1:]] == classes
    assert pd.read_csv(result.out_dir / "confusion.csv").shape == (3, 4)


def test_evaluation_is_refused_while_a_build_changes_the_data_set(toy_model, tmp_path):
    model = copy_model(toy_model, tmp_path / "model")
    lock = toy_model / "dataset" / layout.STATE_DIR / "lock"
    assert lock.is_file()  # the build left it
    holder = hold_lock(lock)
    try:
        with pytest.raises(DatasetError) as caught:
            evaluate_model(toy_model / "dataset", model)
    finally:
        holder.kill()
        holder.wait()
    assert str(caught.value) == (f"a build is changing {toy_model / 'dataset'} (process {holder.pid}); wait for it "
                                 "to finish, then run this command again")
    assert sorted(os.listdir(model)) == ["model.json", "model.keras"]  # nothing written


def test_an_evaluation_reads_the_data_set_beside_other_readers(toy_model, tmp_path):
    from genreslice.training.evaluate import EvaluateObserver

    lock = toy_model / "dataset" / layout.STATE_DIR / "lock"
    other_reader = hold_lock(lock, shared=True)  # a training, say
    seen = []

    class Probe(EvaluateObserver):
        def on_start(self, n_slices, n_batches):
            stop(other_reader)  # from now on only the evaluation holds the lock
            seen.append(build_could_start(lock))

    try:
        result = evaluate_model(toy_model / "dataset", copy_model(toy_model, tmp_path / "model"), observer=Probe())
    finally:
        stop(other_reader)
    assert result.metrics["n_songs"] == 6 and seen == [False]
    assert build_could_start(lock)


@pytest.mark.parametrize("batch_size", [256, 4], ids=["first batch", "later batch, through TensorFlow"])
def test_a_damaged_slice_says_how_to_render_it_anew(toy_model, tmp_path, batch_size):
    data = tmp_path / "data"
    shutil.copytree(toy_model / "dataset", data)
    info = load_dataset_info(data)
    paths, _, _ = read_split(info, "test")
    victim = Path(paths[-1])
    damaged = bytearray(victim.read_bytes())
    damaged[len(damaged) // 2:len(damaged) // 2 + 16] = bytes(16)  # the same size: a build would not notice
    victim.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError) as caught:
        evaluate_model(data, copy_model(toy_model, tmp_path / "model"), batch_size=batch_size)
    message = str(caught.value)
    assert message.startswith(f"{victim}: cannot be read as a slice (") and "\n" not in message
    assert message.endswith(f". To render it anew, delete its track folder {victim.parent} and run 'genreslice "
                            f"build' again with the same AUDIO_DIR and {data} as DATASET_DIR; then run the same "
                            "command again")


@pytest.mark.parametrize("kept", [None, ["epoch", 3], "epoch 3"])
def test_a_damaged_kept_record_does_not_lose_the_evaluation(toy_model, tmp_path, kept):
    model = copy_model(toy_model, tmp_path / "model")
    record = json.loads((model / "model.json").read_text())
    record["kept"] = kept
    (model / "model.json").write_text(json.dumps(record))
    result = evaluate_model(toy_model / "dataset", model, split="validation")
    saved = json.loads((result.out_dir / "metrics.json").read_text())
    assert saved["model"]["kept_epoch"] == record.get("best_epoch") and saved["n_songs"] == 3

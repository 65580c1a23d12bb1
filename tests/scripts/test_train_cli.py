"""``genreslice train`` as a user runs it: a real subprocess on a data set built from real audio."""
from __future__ import annotations

import csv
import json
import os

import pytest

from tests.helpers import genreslice, help_of, tagged_mp3

GENRES = ("Jazz", "Rock", "Electronic")
SOURCES = {"Jazz": ("sine",), "Rock": ("square", "pinknoise"), "Electronic": ("sawtooth",)}


@pytest.fixture(scope="module")
def built(tmp_path_factory, sox_info):
    """12 songs of 3 genres by 12 artists, built with room for a validation split."""
    root = tmp_path_factory.mktemp("train_cli")
    for index in range(12):
        genre = GENRES[index % 3]
        tagged_mp3(root / "music" / f"{genre} 'n' $(song) {index}.mp3", 8.0, genre, f"Artist {index}",
                   *SOURCES[genre], f"{200 + 40 * index}")
    result = genreslice("build", str(root / "music"), str(root / "dataset"), "--split-ratios", "0.5,0.25,0.25",
                        "--no-progress", "--workers", "2")
    assert result.returncode == 0, result.stderr
    splits = {row["split"] for row in csv.DictReader(open(root / "dataset" / "slices.csv", newline=""))}
    assert splits >= {"train", "validation"}
    return root


@pytest.mark.slow
def test_train_from_the_command_line(built):
    model_dir = built / "my model"
    options = ["--epochs", "2", "--patience", "0", "--target-accuracy", "off", "--no-progress", "--batch-size", "8",
               "--l2", "1e-4", "--lr-schedule", "cosine", "--width", "0.5", "--augment", "specaugment,gain"]
    result = genreslice("train", str(built / "dataset"), str(model_dir), *options)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "TensorFlow sees" in out and "Training crnn on" in out and "starting at epoch 1 of at most 2" in out
    assert "epoch 1/2: loss" in out and "epoch 2/2: loss" in out and "validation loss" in out
    # Every genre of this small data set has 1 or 2 tracks in validation and test: said before training starts.
    tracks = json.loads((built / "dataset" / "dataset.json").read_text())["counts"]["tracks"]
    thin = [(genre, split) for split in ("validation", "test") for genre in GENRES if tracks[split][genre] < 5]
    assert thin and out.index("Warning: genres with no or few tracks in a split") < out.index("TensorFlow sees")
    for genre, split in thin:
        count = tracks[split][genre]
        assert (f"{genre} has only {count} track{'s' if count > 1 else ''} in the {split} split" if count
                else f"{genre} has no tracks in the {split} split") in out
    assert f"Trained {model_dir}: 2 epochs (2 in this run); reached the last epoch (2)." in out
    assert "I0000" not in result.stderr and "cuda" not in result.stderr.lower()  # TensorFlow's start-up noise
    record = json.loads((model_dir / "model.json").read_text())
    dataset = json.loads((built / "dataset" / "dataset.json").read_text())
    assert record["classes"] == dataset["classes"] == sorted(GENRES)
    assert record["spectrogram"] == dataset["spectrogram"] and record["training"]["batch_size"] == 8
    assert {key: record["training"][key] for key in ("l2", "lr_schedule", "width", "augment")} == {
        "l2": 1e-4, "lr_schedule": "cosine", "width": 0.5, "augment": ["gain", "specaugment"]}
    rows = list(csv.DictReader(open(model_dir / "history.csv", newline="")))
    assert [row["epoch"] for row in rows] == ["1", "2"] and float(rows[-1]["learning_rate"]) == pytest.approx(0)

    again = genreslice("train", str(built / "dataset"), str(model_dir), *options)
    assert again.returncode == 0 and "is already trained (2 epochs" in again.stdout

    refused = genreslice("train", str(built / "dataset"), str(model_dir), "--epochs", "3", "--no-progress")
    assert refused.returncode == 1
    assert "holds a run with other settings" in refused.stderr and "batch_size: was 8, now 32" in refused.stderr
    assert "augment: was ['gain', 'specaugment'], now []" in refused.stderr
    assert "width: was 0.5, now 1.0" in refused.stderr


def test_train_errors_name_the_problem(tmp_path):
    result = genreslice("train", str(tmp_path), str(tmp_path / "model"), "--no-progress")
    assert result.returncode == 1
    assert f"genreslice train: error: {tmp_path}: no dataset.json" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--target-accuracy", "1.5"], "1.5 must be between 0 and 1"),
    (["--target-loss", "lots"], "'lots' is not a number or 'off'"),
    (["--patience", "-1"], "-1 must be 0 or more"),
    (["--model", "vgg"], "invalid choice: 'vgg'"),
    (["--learning-rate", "0"], "0 must be more than 0"),
    (["--class-weights", "sometimes"], "invalid choice: 'sometimes'"),
    (["--width", "0"], "0 must be more than 0"),
    (["--l2", "-0.1"], "-0.1 must be 0 or more"),
    (["--lr-schedule", "step"], "invalid choice: 'step'"),
    (["--augment", "gain,mixup"], "'mixup' is not one of offset, gain, specaugment (or none)"),
])
def test_bad_train_arguments_exit_2(tmp_path, args, message):
    result = genreslice("train", str(tmp_path), str(tmp_path / "model"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_train_help_explains_every_option():
    text = help_of("train", 17)
    assert "(default: 0)" in text  # the seed's default is shown although it is falsy


def without_tensorflow(tmp_path):
    """An environment in which importing TensorFlow fails, so that a test can tell that it was not imported."""
    fake = tmp_path / "fake modules" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('TensorFlow was imported')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake.parent),
                                                                       os.environ.get("PYTHONPATH")]))}


def test_a_model_folder_given_as_the_data_set_is_named_before_tensorflow_loads(tmp_path):
    model_dir = tmp_path / "m6"
    model_dir.mkdir()
    (model_dir / "model.json").write_text("{}")
    env = without_tensorflow(tmp_path)
    result = genreslice("train", str(model_dir), str(tmp_path / "m7"), "--no-progress", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (f"genreslice train: error: {model_dir} is a model folder, not a data set; usage: "
                             "genreslice train DATASET_DIR MODEL_DIR\n")

    missing = genreslice("train", str(tmp_path / "nodata"), str(tmp_path / "m7"), "--no-progress", env=env)
    assert missing.returncode == 1
    assert missing.stderr == f"genreslice train: error: {tmp_path / 'nodata'}: no such data set folder\n"
    empty = genreslice("train", str(tmp_path), str(tmp_path / "m7"), "--no-progress", env=env)
    assert empty.returncode == 1 and f"{tmp_path}: no dataset.json" in empty.stderr
    assert "TensorFlow was imported" not in missing.stderr + empty.stderr


def test_monitor_and_keep_are_checked_choices(tmp_path):
    for option, value in (("--monitor", "accuracy"), ("--keep", "first")):
        result = genreslice("train", str(tmp_path), str(tmp_path / "model"), option, value)
        assert result.returncode == 2 and f"invalid choice: '{value}'" in result.stderr
    text = help_of("train", 15)
    assert "--monitor {val_loss,val_accuracy,val_roc_auc}" in text and "--keep {best,last}" in text

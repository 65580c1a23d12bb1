"""Multi-label tagging: the metrics against hand-computed values (and scikit-learn), reading tags, and a
multi-label model trained, resumed, evaluated and scored per tag."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from benchmarks.synthetic_slices import write_synthetic_tagged_dataset
from genreslice.training.checkpoints import load_state
from genreslice.training.dataset import load_dataset_info, read_split
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.evaluate import evaluate_model
from genreslice.training.settings import TrainConfig
from genreslice.training.tagging import (
    average_precision,
    per_tag_tsv,
    recorded_thresholds,
    roc_auc,
    song_tags,
    summary_tsv,
    tag_scores,
    tune_thresholds,
)
from genreslice.training.train import train_model


def test_roc_auc_and_average_precision_by_hand():
    # Positives score 0.9 and 0.4, negatives 0.8 and 0.1: of the 4 (positive, negative) pairs, 3 are ordered.
    assert roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == 0.75
    # Ranked 0.9+, 0.8-, 0.4+, 0.1-: precision 1 at recall 1/2, then 2/3 at recall 1: AP = 1/2 + 1/3.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1]) == pytest.approx(1 / 2 + 1 / 3)
    # A tie between a positive and a negative counts one half: pairs (0.5+, 0.5-) 1/2, (0.5+, 0.2-) 1, (0.7+, *) 2.
    assert roc_auc([1, 1, 0, 0], [0.5, 0.7, 0.5, 0.2]) == pytest.approx(3.5 / 4)
    # Tied scores form one threshold: at 0.7, 1 of 1 right; at 0.5, 2 of 3 (recall 1): AP = 1/2 * 1 + 1/2 * 2/3.
    assert average_precision([1, 1, 0, 0], [0.5, 0.7, 0.5, 0.2]) == pytest.approx(1 / 2 + 1 / 3)
    assert np.isnan(roc_auc([1, 1], [0.3, 0.4])) and np.isnan(roc_auc([0, 0], [0.3, 0.4]))
    assert np.isnan(average_precision([0, 0], [0.3, 0.4]))


def test_metrics_match_scikit_learn_on_random_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 60))
        truth = rng.random(n) < rng.uniform(0.1, 0.9)
        score = np.round(rng.random(n), int(rng.integers(1, 3)))  # rounded: many ties
        if truth.all() or not truth.any():
            continue
        assert roc_auc(truth, score) == pytest.approx(metrics.roc_auc_score(truth, score), abs=1e-12)
        assert average_precision(truth, score) == pytest.approx(metrics.average_precision_score(truth, score),
                                                                abs=1e-12)


def test_thresholds_and_scores_by_hand():
    truth = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], dtype=bool)
    probability = np.array([[0.9, 0.2], [0.6, 0.1], [0.7, 0.3], [0.1, 0.8]])
    # Tag 0 ranked 0.9+, 0.7-, 0.6+, 0.1-: F at 0.9 = 2/3, at 0.7 = 1/2, at 0.6 = 4/5, at 0.1 = 2/3: 0.6.
    # Tag 1: 0.8+ first, F = 1 at 0.8. A tag no song has would keep 0.5.
    thresholds = tune_thresholds(truth, probability)
    assert thresholds.tolist() == [0.6, 0.8]
    assert tune_thresholds(np.zeros((2, 1), dtype=bool), np.array([[0.4], [0.9]])).tolist() == [0.5]
    scores = tag_scores(truth, probability, thresholds)
    # Tag 0 predicted for the songs at 0.9, 0.6, 0.7: 2 right, 1 wrong; tag 1 for the song at 0.8: right.
    assert scores["per_tag"]["precision"] == [pytest.approx(2 / 3), 1.0]
    assert scores["per_tag"]["recall"] == [1.0, 1.0]
    assert scores["precision_micro"] == pytest.approx(3 / 4) and scores["recall_micro"] == 1.0
    assert scores["f_score_macro"] == pytest.approx((4 / 5 + 1) / 2)
    assert scores["roc_auc_macro"] == pytest.approx((0.75 + 1.0) / 2)  # tag 0: 3 of 4 pairs ordered
    assert scores["pr_auc_macro"] == pytest.approx((1 / 2 + 1 / 3 + 1.0) / 2)
    # Micro: the 8 (song, tag) pairs pooled; positives 0.9, 0.6, 0.8 against negatives 0.7, 0.1, 0.2, 0.1, 0.3:
    # 0.9 and 0.8 beat all 5, 0.6 beats 4: 14 of 15.
    assert scores["roc_auc_micro"] == pytest.approx(14 / 15)
    assert scores["per_tag"]["support"] == [2, 1] and scores["undefined"] == 0
    tsv = per_tag_tsv(["a", "b"], scores).splitlines()
    assert tsv == ["tag\troc_auc\tpr_auc", "a\t0.7500\t0.8333", "b\t1.0000\t1.0000"]
    summary = dict(line.split("\t") for line in summary_tsv(scores).splitlines())
    assert list(summary)[:2] == ["ROC-AUC-macro", "PR-AUC-macro"] and summary["ROC-AUC-micro"] == "0.933333"


def test_a_tag_no_song_has_is_left_out_of_the_macro_averages():
    truth = np.array([[1, 0], [0, 0]], dtype=bool)
    scores = tag_scores(truth, np.array([[0.9, 0.4], [0.2, 0.6]]), [0.5, 0.5])
    assert scores["undefined"] == 1 and scores["per_tag"]["roc_auc"] == [1.0, None]
    assert scores["roc_auc_macro"] == 1.0
    assert per_tag_tsv(["a", "b"], scores).splitlines()[2] == "b\t\t"


def test_probabilities_that_are_not_finite_are_refused_and_damaged_thresholds_ignored():
    with pytest.raises(ValueError, match="probabilities must be finite"):
        song_tags([[0.2, np.nan]], [[1, 0]], ["x"])
    assert recorded_thresholds({"thresholds": {"by_tag": {"a": 0.3, "b": 0.7}}}, ["a", "b"])[0].tolist() == [0.3, 0.7]
    for damaged in ({"a": float("nan"), "b": 0.7}, {"a": True, "b": 0.7}, {"a": 1.5, "b": 0.7}, {"a": 0.3},
                    ["a", "b"], "x"):
        thresholds, tuned = recorded_thresholds({"thresholds": {"by_tag": damaged}}, ["a", "b"])
        assert thresholds.tolist() == [0.5, 0.5] and not tuned
    assert recorded_thresholds({"thresholds": [1, 2]}, ["a"])[1] is False


def test_song_scores_are_the_mean_of_their_slices():
    songs = song_tags([[0.2, 0.9], [0.4, 0.5], [1.0, 0.0]], [[1, 0], [1, 0], [0, 1]], ["x", "x", "y"])
    assert songs.song_ids.tolist() == ["x", "y"] and songs.n_slices.tolist() == [2, 1]
    assert songs.probability.tolist() == [pytest.approx([0.3, 0.7]), [1.0, 0.0]]
    assert songs.truth.tolist() == [[True, False], [False, True]]


def test_tags_are_read_as_multi_hot_rows(tmp_path):
    root = write_synthetic_tagged_dataset(tmp_path / "data", tracks=6, slices_per_track=2, split_tracks=(1, 1, 1))
    info = load_dataset_info(root)
    assert info.multilabel and info.classes == ("bright", "drums", "low", "pulse")
    paths, labels, track_ids = read_split(info, "train")
    with open(root / "slices.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["split"] == "train"]
    assert labels.shape == (len(rows), 4) and len(paths) == len(rows)
    for row, label in zip(rows, labels):
        assert [info.classes[k] for k in np.flatnonzero(label)] == row["tags"].split(";")
    lines = (root / "slices.csv").read_text(encoding="utf-8").splitlines()
    fields = lines[1].split(",")
    assert fields[4] == "train"
    lines[1] = ",".join([*fields[:3], "drums;violin", *fields[4:]])
    (root / "slices.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"tags \['violin'\] are not in dataset.json's classes"):
        read_split(load_dataset_info(root), "train")


@pytest.mark.slow
def test_a_multilabel_model_trains_resumes_and_is_scored_per_tag(tmp_path):
    root = write_synthetic_tagged_dataset(tmp_path / "data", tracks=48, slices_per_track=4, seed=2)
    config = TrainConfig(model="compact", epochs=2, batch_size=16, patience=0, loader_workers=1)
    first = train_model(root, tmp_path / "model", config)
    assert first.epochs_run == 2
    resumed = train_model(root, tmp_path / "model", TrainConfig(**{**config.__dict__, "epochs": 4}))
    assert resumed.resumed_from == 2 and resumed.epochs_run == 4
    record = json.loads((tmp_path / "model" / "model.json").read_text())
    assert record["task"] == "multilabel" and record["training"]["monitor"] == "val_roc_auc"
    assert record["training"]["class_weights"] == "none" and record["training"]["target_accuracy"] is None
    assert list(record["thresholds"]["by_tag"]) == ["bright", "drums", "low", "pulse"]
    assert record["thresholds"]["validation"]["songs"] == 8
    history = (tmp_path / "model" / "history.csv").read_text().splitlines()
    assert history[0].endswith(",roc_auc,val_roc_auc") and len(history) == 5
    assert "val_roc_auc" in record["metrics"]

    result = evaluate_model(root, tmp_path / "model", split="test")
    metrics = result.metrics
    assert metrics["task"] == "multilabel" and metrics["n_songs"] == 16
    assert metrics["thresholds"] == "tuned on the validation split"
    # Four epochs learn the tags' patterns well above chance (0.5; bench_tagging measures a shuffled control).
    assert metrics["songs"]["roc_auc_macro"] > 0.7
    tags = (result.out_dir / "tags.tsv").read_text().splitlines()
    assert tags[0] == "tag\troc_auc\tpr_auc" and len(tags) == 5
    assert [line.split("\t")[0] for line in tags[1:]] == ["bright", "drums", "low", "pulse"]
    # The TSV's figures are metrics.json's, to the 4 decimals written.
    for line in tags[1:]:
        name, roc, pr = line.split("\t")
        assert float(roc) == pytest.approx(metrics["per_tag"][name]["roc_auc"], abs=5e-5)
        assert float(pr) == pytest.approx(metrics["per_tag"][name]["pr_auc"], abs=5e-5)
    summary = dict(line.split("\t") for line in (result.out_dir / "summary.tsv").read_text().splitlines())
    assert float(summary["ROC-AUC-macro"]) == pytest.approx(metrics["songs"]["roc_auc_macro"], abs=1e-6)
    songs = list(csv.DictReader((result.out_dir / "songs.csv").open(encoding="utf-8")))
    assert len(songs) == 16 and set(songs[0]) == {"track_id", "tags", "n_slices", "predicted", "top_probabilities"}

    # A committed state whose history lacks the monitored score cannot be replayed: it is refused as damaged.
    state_path = tmp_path / "model" / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    for row in state["history"]:
        del row["val_roc_auc"]
    state_path.write_text(json.dumps(state))
    with pytest.raises(ModelDirError, match="not a usable training state \\(history row 1"):
        load_state(tmp_path / "model")


def test_a_model_of_another_task_is_refused(tmp_path, toy_model):
    root = write_synthetic_tagged_dataset(tmp_path / "data", tracks=6, slices_per_track=2, split_tracks=(1, 1, 1))
    with pytest.raises(ModelDirError, match="holds a single-label .* model and the data set .* is multi-label"):
        evaluate_model(root, toy_model / "model", split="test")


def test_val_roc_auc_is_refused_on_a_single_label_data_set(tmp_path, small_dataset):
    with pytest.raises(ValueError, match="--monitor val_roc_auc scores tags: .* is a single-label data set"):
        train_model(small_dataset, tmp_path / "model", TrainConfig(model="compact", epochs=1, monitor="val_roc_auc"))
    assert not (tmp_path / "model" / "model.keras").exists()

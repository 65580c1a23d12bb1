"""``--task multilabel`` from the command line: a CSV-tagged corpus of SoX-synthesised songs built, trained,
evaluated and predicted, every output format read back."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from genreslice.scripts.cli import main
from tests.helpers import genreslice, read_csv, synth

#: ``(waveform, frequency) -> tags``: a song is low or high, and sine or square: two tags each.
SOUNDS = {("sine", 220): ("low", "smooth"), ("square", 220): ("low", "buzzy"), ("sine", 880): ("high", "smooth"),
          ("square", 880): ("high", "buzzy")}


@pytest.fixture(scope="module")
def tagged(tmp_path_factory, sox_info) -> Path:
    """``music/`` with 4 songs per sound (one artist each) and ``tags.csv`` with their two tags."""
    root = tmp_path_factory.mktemp("tagged corpus")
    rows = ["path,label,artist,split"]
    for (wave, frequency), tags in SOUNDS.items():
        for number in range(4):
            rel = f"{wave} {frequency}/song {number}.wav"
            synth(root / "music" / rel, 6.0, wave, f"{frequency + 9 * number}", channels=1, rate=22050)
            split = ("train", "train", "validation", "test")[number]
            rows.append(f"{rel},{';'.join(tags)},{wave} {frequency} band {number},{split}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``genreslice ARGS`` in this process (TensorFlow loads once for the tests): exit status, stdout, stderr."""
    try:
        code = main([*args])
    except SystemExit as exit_:  # usage errors leave through argparse, as on the command line
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.slow
def test_build_train_evaluate_and_predict_tags(tagged, tmp_path, capsys):
    # The build as a user runs it; the rest in this process, which has TensorFlow loaded already.
    built = genreslice("build", str(tagged / "music"), str(tmp_path / "data"), "--labels", "csv", "--metadata",
                       str(tagged / "tags.csv"), "--task", "multilabel", "--no-progress")
    assert built.returncode == 0, built.stderr
    dataset = json.loads((tmp_path / "data" / "dataset.json").read_text())
    assert dataset["classes"] == ["buzzy", "high", "low", "smooth"]
    assert dataset["counts"]["tracks"]["train"] == {"buzzy": 4, "high": 4, "low": 4, "smooth": 4}
    data, model = str(tmp_path / "data"), str(tmp_path / "model")

    code, out, err = run(capsys, "train", data, model, "--model", "compact", "--epochs", "2", "--batch-size", "8",
                         "--no-progress")
    assert code == 0, err
    assert re.search(r"epoch 2/2: loss [0-9.]+, ROC-AUC [0-9.]+; validation loss [0-9.]+, ROC-AUC [0-9.]+", out)
    assert "Tag thresholds tuned on the validation songs are in" in out
    record = json.loads((tmp_path / "model" / "model.json").read_text())
    assert set(record["thresholds"]["by_tag"]) == {"buzzy", "high", "low", "smooth"}

    code, out, err = run(capsys, "evaluate", data, model, "--no-progress")
    assert code == 0, err
    assert "ROC-AUC" in out and "tags.tsv, summary.tsv" in out
    eval_dir = tmp_path / "model" / "eval" / "test"
    rows = list(csv.reader((eval_dir / "tags.tsv").open(encoding="utf-8"), delimiter="\t"))
    assert rows[0] == ["tag", "roc_auc", "pr_auc"] and [row[0] for row in rows[1:]] == dataset["classes"]
    summary = dict(line.split("\t") for line in (eval_dir / "summary.tsv").read_text().splitlines())
    assert len(summary) == 10 and 0.0 <= float(summary["ROC-AUC-macro"]) <= 1.0

    music = str(tagged / "music")
    code, out, err = run(capsys, "predict", model, music, "--top", "2", "--no-progress")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["tags", "slices", "top", "2", "by"] and len(lines) == 1 + 16
    code, out, err = run(capsys, "predict", model, music, "--top", "2", "--format", "json", "--no-progress")
    songs = [json.loads(line) for line in out.splitlines()]
    thresholds = record["thresholds"]["by_tag"]
    assert len(songs) == 16
    for song in songs:
        probabilities = song["mean_probability"]
        assert song["status"] == "ok" and len(song["top"]) == 2 and "genre" not in song
        ranked = sorted(probabilities, key=lambda name: -probabilities[name])
        assert [name for name, _ in song["top"]] == ranked[:2]
        # The tags are those at or above their thresholds, most probable first (the probabilities shown are
        # rounded to 4 decimals: one that close to its threshold could go either way).
        for name, probability in probabilities.items():
            if abs(probability - thresholds[name]) > 1e-4:
                assert (name in song["tags"]) == (probability > thresholds[name]), (name, song)
        assert song["tags"] == sorted(song["tags"], key=lambda name: -probabilities[name])
    # Exported, the network and its card give the same tags without genreslice.
    code, out, err = run(capsys, "export", model, str(tmp_path / "exported"))
    assert code == 0, err
    card = json.loads((tmp_path / "exported" / "genreslice-model.json").read_text(encoding="utf-8"))
    assert card["task"] == "multilabel" and card["voting"]["thresholds"] == pytest.approx(thresholds, abs=1e-6)
    exported = subprocess.run([sys.executable, str(tmp_path / "exported" / "classify.py"),
                               str(tmp_path / "exported"), *(str(tagged / "music" / song["path"])
                                                            for song in songs)],
                              capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert exported.returncode == 0, exported.stderr
    for song, answer in zip(songs, map(json.loads, exported.stdout.splitlines()), strict=True):
        assert answer["mean_probability"] == pytest.approx(song["mean_probability"], abs=2e-4)
        if all(abs(p - thresholds[name]) > 1e-3 for name, p in song["mean_probability"].items()):
            assert answer["tags"] == song["tags"]
    code, out, err = run(capsys, "predict", model, music, "--top", "3", "--format", "csv", "--no-progress")
    records = list(csv.DictReader(io.StringIO(out)))
    assert len(records) == 16 and list(records[0])[:5] == ["path", "status", "reason", "tags", "top"]
    assert all(len(record["top"].split(";")) == 3 for record in records)
    assert {f"probability_{name}" for name in dataset["classes"]} <= set(records[0])
    code, _, err = run(capsys, "predict", model, music, "--min-share", "0.5", "--no-progress")
    assert code != 0 and "--min-share applies to single-label models" in err
    code, _, err = run(capsys, "compare", model)
    assert code != 0 and "holds a multi-label model" in err


def test_tags_of_a_build_are_kept_in_tracks_csv(tagged, tmp_path):
    built = genreslice("build", str(tagged / "music"), str(tmp_path / "data"), "--labels", "csv", "--metadata",
                       str(tagged / "tags.csv"), "--task", "multilabel", "--classes", "low,smooth",
                       "--no-progress")
    assert built.returncode == 0, built.stderr
    rows = {row["path"]: row for row in read_csv(tmp_path / "data" / "tracks.csv")}
    assert rows["sine 220/song 0.wav"]["tags"] == "low;smooth"
    assert rows["square 880/song 0.wav"]["status"] == "skipped"
    assert rows["square 880/song 0.wav"]["reason"].startswith("no tag selected (tags: high, buzzy")
    assert rows["square 220/song 1.wav"]["tags"] == "low"

"""``genreslice evaluate`` and ``genreslice predict`` as a user runs them; every output format parsed back."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil

import pytest

from genreslice.scripts.cli import main
from genreslice.scripts.exit_status import EXIT_SOME_FAILED
from tests.helpers import genreslice, help_of, toy_song

TRUTH = {"a jazz song.mp3": "Jazz", "b 'electro' song.mp3": "Electronic", "c rock song.mp3": "Rock"}


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Three new 10-second songs and one file that is not audio, in one folder."""
    root = tmp_path_factory.mktemp("cli songs") / "my music"
    for (name, genre), pitch in zip(TRUTH.items(), (345, 456, 567)):
        toy_song(root / name, genre, pitch, seconds=10.0)
    (root / "d broken.mp3").write_bytes(b"ID3" + bytes(500))
    return root


def test_help_explains_every_option():
    text = help_of("evaluate", 7)
    assert "--split" in text and "metrics.json" in text
    text = help_of("predict", 8)
    assert "--format" in text and "--vote" in text and f"{EXIT_SOME_FAILED} when some could not be" in text


def test_predict_json_lines_and_exit_status(toy_model, songs):
    result = genreslice("predict", str(toy_model / "model"), str(songs), "--format", "json", "--no-progress",
                        "--workers", "2")
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["path"] for record in records] == [str(songs / name) for name in (*TRUTH, "d broken.mp3")]
    for record in records[:3]:
        assert record["status"] == "ok" and record["genre"] == TRUTH[record["path"].rsplit("/", 1)[1]]
        assert record["n_slices"] == 3 and record["vote"] == "majority" and 0.5 < record["vote_share"] <= 1
        assert sum(record["votes"].values()) == 3 and set(record["mean_probability"]) == set(TRUTH.values())
    assert records[3]["status"] == "failed" and records[3]["genre"] is None and "SoX" in records[3]["reason"]
    assert "classified 3 of 4 files" in result.stderr and "1 could not be classified" in result.stderr
    assert "I0000" not in result.stderr  # TensorFlow's start-up noise is held back


def test_predict_table_and_csv(toy_model, songs, capsys):
    good = [str(songs / name) for name in TRUTH]
    assert main(["predict", str(toy_model / "model"), *good, "--no-progress", "--vote", "mean"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert re.match(r"genre +share +slices +top 3 by mean probability +file$", lines[0])
    for line, path in zip(lines[1:], good, strict=True):
        genre, share, slices, *top = line.split(path)[0].split()
        assert genre == TRUTH[path.rsplit("/", 1)[1]] and line.endswith(path)
        assert 0.5 < float(share) <= 1.0 and slices == "3"
        assert top[0] == genre and len(top) == 6 and sum(float(p) for p in top[1::2]) == pytest.approx(1, abs=0.02)
    assert "classified 3 of 3 files" in out.err

    assert main(["predict", str(toy_model / "model"), str(songs), "--format", "csv", "--no-progress"]) \
        == EXIT_SOME_FAILED
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0])[:8] == ["path", "status", "reason", "genre", "vote", "vote_share", "n_slices", "duration_s"]
    assert list(rows[0])[8:] == [f"{kind}_{name}" for kind in ("votes", "probability")
                                 for name in ("Electronic", "Jazz", "Rock")]
    assert [row["genre"] for row in rows] == [*TRUTH.values(), ""]
    for row in rows[:3]:
        assert sum(int(row[f"votes_{name}"]) for name in ("Electronic", "Jazz", "Rock")) == int(row["n_slices"])
        assert float(row["duration_s"]) == pytest.approx(10.0, abs=0.1)
    assert rows[3]["status"] == "failed" and rows[3]["reason"] and rows[3]["votes_Jazz"] == ""


def test_predict_refuses_a_missing_model(tmp_path, songs):
    result = genreslice("predict", str(tmp_path), str(songs), "--no-progress")
    assert result.returncode == 1 and "no model.json" in result.stderr and "Traceback" not in result.stderr
    result = genreslice("predict", str(tmp_path), str(songs), "--format", "xml")
    assert result.returncode == 2 and "invalid choice: 'xml'" in result.stderr


def test_evaluate_prints_a_summary_and_writes_its_files(toy_model, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    for name in ("model.json", "model.keras"):
        shutil.copy(toy_model / "model" / name, model / name)
    result = genreslice("evaluate", str(toy_model / "dataset"), str(model), "--no-progress")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"on the test split of {toy_model / 'dataset'}: 24 slices of 6 songs" in out
    assert re.search(r"slice accuracy +1\.0000", out)
    assert re.search(r"song accuracy, majority vote +1\.0000  6 of 6 songs", out)
    assert re.search(r"song accuracy, mean probability +1\.0000  6 of 6 songs", out)
    for genre in TRUTH.values():
        assert re.search(rf"{genre} +1\.0000 +1\.0000 +1\.0000 +2\n", out)
    assert f"Wrote {model / 'eval' / 'test'}" in out
    metrics = json.loads((model / "eval" / "test" / "metrics.json").read_text())
    assert metrics["n_songs"] == 6 and metrics["song_accuracy_majority"] == 1.0
    assert sorted(path.name for path in (model / "eval" / "test").iterdir()) == [
        "confusion.csv", "confusion.png", "metrics.json", "songs.csv"]

    result = genreslice("evaluate", str(tmp_path), str(model), "--no-progress")
    assert result.returncode == 1 and "no dataset.json" in result.stderr


def test_csv_and_json_agree_and_survive_line_breaks_in_names(toy_model, songs, tmp_path, capsys):
    folder = tmp_path / "odd names"
    folder.mkdir()
    first = songs / next(iter(TRUTH))
    shutil.copy(first, folder / "new\nline.mp3")
    (folder / "short\r\nbroken.mp3").write_bytes(b"\xff\xfb" + bytes(300))
    model = str(toy_model / "model")
    assert main(["predict", model, str(folder), "--format", "json", "--no-progress"]) == EXIT_SOME_FAILED
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(["predict", model, str(folder), "--format", "csv", "--no-progress"]) == EXIT_SOME_FAILED
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out, newline="")))
    assert [row["path"] for row in rows] == [record["path"] for record in records] == [
        str(folder / "new\nline.mp3"), str(folder / "short\r\nbroken.mp3")]
    assert records[0]["genre"] == rows[0]["genre"] == TRUTH[first.name]
    for name, probability in records[0]["mean_probability"].items():
        assert float(rows[0][f"probability_{name}"]) == probability
        assert int(rows[0][f"votes_{name}"]) == records[0]["votes"][name]
    assert rows[1]["status"] == records[1]["status"] != "ok" and rows[1]["reason"] == records[1]["reason"]

    assert main(["predict", model, str(folder), "--no-progress"]) == EXIT_SOME_FAILED
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].endswith("new\\nline.mp3") and "short\\r\\nbroken.mp3: " in lines[2]

"""``genreslice evaluate`` and ``genreslice predict`` as a user runs them; every output format parsed back."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess

import pytest

from genreslice.scripts.cli import main
from genreslice.scripts.exit_status import EXIT_SOME_FAILED
from tests.helpers import genreslice, help_of, synth, toy_song

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
    text = help_of("predict", 12)
    assert "--format" in text and "--vote" in text and f"{EXIT_SOME_FAILED} when some could not be" in text
    assert "--allow-failures" in text and "--min-share" in text and "--output" in text and "--top" in text


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


def test_predict_table_ranks_the_top_genres_by_the_chosen_vote(toy_model, songs, capsys):
    """Majority: the top column shows vote shares (the JSON's votes / n_slices), the winner first."""
    model, good = str(toy_model / "model"), [str(songs / name) for name in TRUTH]
    assert main(["predict", model, *good, "--no-progress", "--format", "json"]) == 0
    records = {record["path"]: record for record in map(json.loads, capsys.readouterr().out.splitlines())}
    assert main(["predict", model, *good, "--no-progress", "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.match(r"genre +share +slices +top 2 by vote share +file$", lines[0])
    for line, path in zip(lines[1:], good, strict=True):
        genre, share, slices, *top = line.split(path)[0].split()
        record = records[path]
        assert len(top) == 4 and top[0] == genre == record["genre"]
        ranked = sorted(record["votes"], key=lambda name: (name != genre, -record["votes"][name],
                                                           -record["mean_probability"][name]))[:2]
        assert top[0::2] == ranked
        assert [float(score) for score in top[1::2]] == [round(record["votes"][name] / 3, 2) for name in ranked]
    assert main(["predict", model, good[0], "--no-progress", "--top", "99"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert "top 3 by vote share" in header and len(row.split(good[0])[0].split()) == 3 + 6  # capped at 3 genres
    assert genreslice("predict", model, good[0], "--top", "0").returncode == 2


def mixed_song(path, jazz_seconds: float, rock_seconds: float):
    """Jazz (a sine) then Rock (pink noise), one file: slices that disagree."""
    first = synth(path.with_name("jazz part.wav"), jazz_seconds, "sine", "333")
    second = synth(path.with_name("rock part.wav"), rock_seconds, "pinknoise")
    subprocess.run(["sox", "--no-glob", str(first), str(second), str(path)], check=True, capture_output=True,
                   timeout=120)
    return path


def test_predict_min_share_answers_unsure_and_keeps_the_scores(toy_model, tmp_path, capsys):
    """Three slices, two of Jazz and one of Rock: a 0.67 majority, unsure below --min-share 0.7."""
    song = mixed_song(tmp_path / "two thirds jazz.wav", 5.2, 2.7)
    model = str(toy_model / "model")
    assert main(["predict", model, str(song), "--no-progress", "--format", "json"]) == 0
    [plain] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert plain["genre"] == "Jazz" and plain["vote_share"] == pytest.approx(2 / 3, abs=1e-4)
    assert "unsure" not in plain and "best_guess" not in plain
    assert main(["predict", model, str(song), "--no-progress", "--format", "json", "--min-share", "0.7"]) == 0
    out = capsys.readouterr()
    [record] = [json.loads(line) for line in out.out.splitlines()]
    assert record["status"] == "ok" and record["genre"] is None and record["unsure"] is True
    assert record["best_guess"] == "Jazz" and record["min_share"] == 0.7
    assert record["votes"] == plain["votes"] and record["mean_probability"] == plain["mean_probability"]
    assert "1 unsure (best genre below --min-share 0.7)" in out.err
    assert main(["predict", model, str(song), "--no-progress", "--min-share", "0.7"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert row.split()[:3] == ["unsure", "0.67", "3"] and row.split()[3:5] == ["Jazz", "0.67"]
    assert main(["predict", model, str(song), "--no-progress", "--format", "csv", "--min-share", "0.6"]) == 0
    [row] = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert (row["genre"], row["unsure"], row["best_guess"], row["min_share"]) == ("Jazz", "False", "Jazz", "0.6")
    result = genreslice("predict", model, str(song), "--min-share", "1.5")
    assert result.returncode == 2 and "--min-share: 1.5 is not from 0 to 1" in result.stderr


def test_predict_output_file_and_allow_failures(toy_model, songs, tmp_path, capsys):
    out = tmp_path / "results dir" / "genres.jsonl"
    out.parent.mkdir()
    out.write_text("old results\n")
    args = ["predict", str(toy_model / "model"), str(songs), "--no-progress", "--format", "json", "-o", str(out)]
    assert main(args) == EXIT_SOME_FAILED  # the broken file, as without -o
    captured = capsys.readouterr()
    assert captured.out == "" and f"results in {out}" in captured.err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["status"] for record in records] == ["ok", "ok", "ok", "failed"]
    assert sorted(path.name for path in out.parent.iterdir()) == ["genres.jsonl"]  # no temporary file left
    out.unlink()
    assert main([*args, "--allow-failures"]) == 0  # failures still reported, in the file and on stderr
    captured = capsys.readouterr()
    assert captured.out == "" and "1 could not be classified" in captured.err
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["ok", "ok", "ok", "failed"]
    result = genreslice("predict", str(toy_model / "model"), str(songs), "-o", str(tmp_path / "no such" / "x.txt"))
    assert result.returncode == 2 and "its folder does not exist" in result.stderr
    assert not (tmp_path / "no such").exists()


def test_predict_classifies_a_one_second_clip_with_a_note(toy_model, tmp_path, capsys):
    clip = toy_song(tmp_path / "one second.mp3", "Rock", 456, seconds=1.0)
    assert main(["predict", str(toy_model / "model"), str(clip), "--no-progress", "--format", "json"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["status"] == "ok" and record["genre"] == "Rock" and record["n_slices"] == 1
    assert record["reason"] == (f"padded: {record['duration_s']:g} s of audio is shorter than one slice (2.55 s); "
                                "repeated to fill one slice")


def test_predict_says_when_model_dir_and_path_are_swapped(toy_model, songs, tmp_path):
    song = songs / next(iter(TRUTH))
    result = genreslice("predict", str(song), str(toy_model / "model"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"MODEL_DIR {str(song)!r} is a file, not a model folder (no model.json)" in result.stderr
    assert "the arguments look swapped" in result.stderr
    assert "usage: genreslice predict [OPTIONS] MODEL_DIR PATH [PATH ...]" in result.stderr
    assert "Not a directory" not in result.stderr
    result = genreslice("predict", str(song), str(songs))  # a file, and no model folder anywhere
    assert result.returncode == 1 and "is a file, not a model folder (no model.json)" in result.stderr
    assert "swapped" not in result.stderr and "Not a directory" not in result.stderr
    result = genreslice("predict", str(tmp_path / "nowhere"), str(songs))
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_options_may_stand_between_model_dir_and_paths_and_undo_takes_neither():
    from genreslice.scripts.cli import make_parser

    parser = make_parser()
    args = parser.parse_args(["predict", "models/first", "--format", "json", "a.mp3", "b.mp3", "--vote", "mean"])
    assert (args.model_dir, args.paths, args.format, args.vote) == ("models/first", ["a.mp3", "b.mp3"], "json", "mean")
    args = parser.parse_args(["predict", "--undo", "log.jsonl"])
    assert (args.undo, args.model_dir, args.paths) == ("log.jsonl", None, [])
    args = parser.parse_args(["predict", "--undo=log.jsonl"])
    assert args.undo == "log.jsonl"
    args = parser.parse_args(["predict", "m", "--format", "json", "a.mp3", "--", "--undo"])  # a file named --undo
    assert (args.model_dir, args.paths, args.undo) == ("m", ["a.mp3", "--undo"], None)
    args = parser.parse_args(["predict", "m", "x.mp3"])  # the positionals are required again after an --undo parse
    assert (args.model_dir, args.paths, args.undo) == ("m", ["x.mp3"], None)
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "m"])

"""``genreslice predict --write-tags`` and ``genreslice predict --undo LOG`` as a user runs them, on copies of real
files: what is written, kept and skipped, the undo log, and undoing."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import mutagen
import pytest
from mutagen.id3 import ID3

from genreslice.pipeline.library_tags import read_genres
from genreslice.scripts.cli import main, make_parser
from genreslice.scripts.exit_status import EXIT_SOME_FAILED
from tests.helpers import genreslice, synth, tag_id3, toy_song

#: A Jazz song without a genre, under a name that is not UTF-8 (its records show it as ``\xe9``).
UNTAGGED = os.fsdecode(b"a caf\xe9 'jazz' song.mp3")
TAGGED = "b electro song tagged Rock.mp3"  # an Electronic song whose tag says Rock
MIXED = "c two thirds jazz.wav"  # 2 of its 3 slices Jazz: unsure below --min-share 0.7


def pcm(path: Path) -> bytes:
    """The decoded audio, as SoX gives it (no dither, whose noise differs between runs)."""
    return subprocess.run(["sox", "-D", "--no-glob", str(path.absolute()), "-t", "raw", "-e", "signed", "-b", "32",
                           "-"], check=True, capture_output=True, timeout=60).stdout


def shown(path: Path) -> str:
    """A path as the command's messages show it: a byte that is not UTF-8 as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def digest(folder: Path) -> dict[str, str]:
    return {os.fsencode(path.name).hex(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def originals(tmp_path_factory, sox_info):
    """The three songs, made once: copy them before changing them."""
    root = tmp_path_factory.mktemp("tag cli songs")
    tag_id3(toy_song(root / UNTAGGED, "Jazz", 345, seconds=8.0), title="Blue in green", artist="A trio")
    tag_id3(toy_song(root / TAGGED, "Electronic", 456, seconds=8.0), genre="Rock", title="Beeps")
    first = synth(root / "jazz part.wav", 5.2, "sine", "333")
    second = synth(root / "rock part.wav", 2.7, "pinknoise")
    subprocess.run(["sox", "--no-glob", str(first), str(second), str(root / MIXED)], check=True,
                   capture_output=True, timeout=60)
    first.unlink()
    second.unlink()
    return root


@pytest.fixture
def music(originals, tmp_path, monkeypatch):
    """A fresh copy of the songs; the current folder is an empty one beside it (where a default log would go)."""
    folder = tmp_path / "my music"
    folder.mkdir()
    for path in originals.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return folder


def tag_lines(err: str) -> list[str]:
    prefix = "genreslice predict: tags: "
    return [line[len(prefix):] for line in err.splitlines() if line.startswith(prefix)]


def test_dry_run_changes_no_byte_and_makes_no_log(toy_model, music, capsys):
    before = digest(music)
    args = ["predict", str(toy_model / "model"), str(music), "--no-progress", "--write-tags", "--dry-run",
            "--min-share", "0.7"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert tag_lines(out.err) == [f"{shown(music / UNTAGGED)}: genre (none) -> 'Jazz'",
                                  f"{music / TAGGED}: kept, already has genre 'Rock' (--overwrite to replace)",
                                  f"{music / MIXED}: skipped, unsure (best guess Jazz 0.67 below --min-share 0.7)"]
    assert ("genreslice predict: tags (dry run, nothing written): would write 1, keep 1 (already had a genre), "
            "skip 1 (unsure), fail 0.") in out.err
    assert digest(music) == before and list(Path.cwd().iterdir()) == []
    assert main([*args, "--overwrite"]) == 0
    assert tag_lines(capsys.readouterr().err)[1] == f"{music / TAGGED}: genre 'Rock' -> 'Electronic'"
    assert digest(music) == before and list(Path.cwd().iterdir()) == []


def test_write_then_overwrite_then_undo(toy_model, music, tmp_path, capsys):
    untagged, tagged, mixed = music / UNTAGGED, music / TAGGED, music / MIXED
    audio = {path: pcm(path) for path in (untagged, tagged, mixed)}
    log = tmp_path / "undo log.jsonl"
    model = str(toy_model / "model")
    args = ["predict", model, str(music), "--no-progress", "--format", "json", "--write-tags", "--undo-log", str(log)]

    assert main([*args, "--min-share", "0.7"]) == 0
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]  # the predictions, as without --write-tags
    assert [record["genre"] for record in records] == ["Jazz", "Electronic", None]
    assert read_genres(untagged).values == ("Jazz",)
    assert ID3(untagged).getall("TIT2")[0].text == ["Blue in green"] and ID3(untagged).getall("TPE1")[0].text == [
        "A trio"]
    assert read_genres(tagged).values == ("Rock",) and read_genres(mixed).values == ()
    assert mutagen.File(mixed).tags is None  # skipped: not even an empty tag added
    assert f"wrote 1, kept 1 (already had a genre), skipped 1 (unsure), failed 0; undo with: genreslice predict " \
           f"--undo='{log}'." in out.err
    header, change = (json.loads(line) for line in log.read_text(encoding="utf-8").splitlines())
    assert header["model_dir"] == os.path.abspath(model) and header["tool"] == "genreslice predict --write-tags"
    assert (bytes.fromhex(change["path_bytes"]), change["field"], change["old"], change["new"]) == (
        os.fsencode(untagged), "TCON", [], ["Jazz"])

    assert main([*args, "--overwrite"]) == 0  # no --min-share: the mixed song gets its best guess
    lines = tag_lines(capsys.readouterr().err)
    assert lines[0].endswith(": unchanged, its genre is 'Jazz' already")
    assert lines[1:3] == [f"{tagged}: genre 'Rock' -> 'Electronic'", f"{mixed}: genre (none) -> 'Jazz'"]
    assert [read_genres(path).values for path in (untagged, tagged, mixed)] == [("Jazz",), ("Electronic",),
                                                                                ("Jazz",)]
    assert {path: pcm(path) for path in audio} == audio  # the audio itself never changed
    assert sorted(path.name for path in music.iterdir()) == sorted([UNTAGGED, TAGGED, MIXED])  # no copy left

    tag_id3(tagged, genre="Blues")  # changed by hand since
    result = genreslice("predict", "--undo", str(log))  # a real process: needs no model, loads no TensorFlow
    assert result.returncode == EXIT_SOME_FAILED, result.stderr
    assert result.stdout.splitlines() == [
        f"{mixed}: restored, genre 'Jazz' -> (none)",
        f"{tagged}: left alone, its genre was changed since: it is 'Blues', the tag write made it 'Electronic'",
        f"{shown(untagged)}: restored, genre 'Jazz' -> (none)"]
    assert f"3 files in {log}: restored 2, already as they were 0, left alone (changed since) 1, failed 0." \
        in result.stderr
    assert [read_genres(path).values for path in (untagged, tagged, mixed)] == [(), ("Blues",), ()]

    tag_id3(tagged, genre="Electronic")  # back as the write left it; and a run killed mid-record
    with open(log, "a", encoding="utf-8") as handle:
        handle.write('{"path": "/music/x.mp3", "field": "TC')
    assert main(["predict", "--undo", str(log)]) == 0
    out = capsys.readouterr()
    assert f"{log}: line 6 is damaged (not JSON" in out.err and "1 damaged line of the log skipped" in out.err
    assert out.out.splitlines()[1] == f"{tagged}: restored, genre 'Electronic' -> 'Rock'"
    assert out.out.count("already as it was, genre (none)") == 2
    assert [read_genres(path).values for path in (untagged, tagged, mixed)] == [(), ("Rock",), ()]


def test_multilabel_records_write_their_tags(music, tmp_path, capsys):
    """A multi-label model's record: its tags at or above their thresholds, named after their last '---'."""
    from genreslice.scripts.commands.predict import LibraryTagger
    from genreslice.training.predict import SongPrediction

    song = music / TAGGED
    tagger = LibraryTagger("model", overwrite=True)  # its undo log: a new one in the current folder
    tagger.start([song, music / MIXED, music / "missing.mp3"], multilabel=True)
    tagger.on_song(SongPrediction(path=str(song), status="ok", vote="mean", tags=("genre---rock", "mood---calm")))
    tagger.on_song(SongPrediction(path=str(music / MIXED), status="ok", vote="mean", tags=()))
    tagger.on_song(SongPrediction(path=str(music / "missing.mp3"), status="failed", reason="gone", tags=()))
    tagger.close()
    err = capsys.readouterr().err
    assert tag_lines(err)[:2] == [f"{song}: genre 'Rock' -> 'rock', 'calm'",
                                  f"{music / MIXED}: skipped, no tag reached its threshold"]
    [log] = Path.cwd().iterdir()
    assert log.name.startswith("genreslice-tags-undo-") and log.suffix == ".jsonl"
    assert ("wrote 1, kept 0 (already had a genre), skipped 1 (no tag reached its threshold), failed 0; undo with: "
            f"genreslice predict --undo={log.name}.") in err
    assert read_genres(song).values == ("rock", "calm") and read_genres(music / MIXED).values == ()

    again = LibraryTagger("model", overwrite=True)  # changes nothing: its log is removed again
    again.start([song], multilabel=True)
    again.on_song(SongPrediction(path=str(song), status="ok", vote="mean", tags=("rock", "calm")))
    again.close()
    assert tag_lines(capsys.readouterr().err) == [
        f"{song}: unchanged, its genre is 'rock', 'calm' already",
        "wrote 0, kept 1 (already had a genre), skipped 0 (no tag reached its threshold), failed 0; no file "
        "changed, so no undo log."]
    assert list(Path.cwd().iterdir()) == [log]


def test_a_file_whose_tags_cannot_be_written_fails_the_run(toy_model, tmp_path, capsys):
    song = synth(tmp_path / "a jazz tone.au", 6.0, "sine", "345")
    before = song.read_bytes()
    assert main(["predict", str(toy_model / "model"), str(song), "--no-progress", "--write-tags", "--undo-log",
                 str(tmp_path / "undo.jsonl")]) == EXIT_SOME_FAILED
    err = capsys.readouterr().err
    assert tag_lines(err)[0] == f"{song}: failed, tags of this format cannot be written (not a format mutagen knows)"
    assert "wrote 0, kept 0 (already had a genre), skipped 0 (unsure), failed 1; no file changed" in err
    assert song.read_bytes() == before and sorted(path.name for path in tmp_path.iterdir()) == ["a jazz tone.au"]


def test_usage_errors_and_a_bad_undo_log(toy_model, music, tmp_path, capsys):
    model, log = str(toy_model / "model"), tmp_path / "undo.jsonl"
    for args, message in [
        (["--undo", str(log), model], "--undo LOG takes no MODEL_DIR or PATH"),
        (["--undo", str(log), "--overwrite"], "--undo LOG takes no --overwrite"),
        ([model], "the following arguments are required: PATH"),
        ([], "the following arguments are required: MODEL_DIR, PATH"),
        ([model, str(music), "--dry-run"], "--dry-run applies with --write-tags only"),
        ([model, str(music), "--write-tags", "--undo-log", str(tmp_path / "nowhere" / "log")],
         "its folder does not exist"),
    ]:
        with pytest.raises(SystemExit) as stopped:
            main(["predict", *args])
        assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert main(["predict", "--undo", str(log)]) == 1
    assert "cannot read the undo log" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    before = digest(music)
    assert main(["predict", model, str(music), "--write-tags", "--undo-log", str(notes)]) == 1
    assert "exists and is not a genreslice undo log" in capsys.readouterr().err
    assert notes.read_text() == "mine\n" and digest(music) == before
    text = make_parser()._subparsers._group_actions[0].choices["predict"].format_help()
    for option in ("--write-tags", "--dry-run", "--overwrite", "--undo-log FILE", "--undo LOG",
                   "genreslice predict --undo LOG", "genre---rock -> rock"):
        assert option in text

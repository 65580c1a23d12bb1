"""``--labels csv``: classes from a CSV of your own (``path,label``, optional ``artist`` and ``split``).

Real files in (a CSV-labelled dance-style corpus of SoX-synthesised WAVs, hostile rows), real data sets out.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from genreslice.errors import ParameterError
from genreslice.genre_getters import make_label_source
from genreslice.genre_getters.csv_labels import read_label_csv
from genreslice.metadata import MetadataError
from tests.helpers import genreslice, read_csv, synth

DANCES = ("salsa", "tango", "waltz")


@pytest.fixture(scope="module")
def dances(tmp_path_factory, sox_info) -> Path:
    """``music/`` with 6 songs per dance style (2 per artist) and ``labels.csv`` naming them, plus hostile rows."""
    root = tmp_path_factory.mktemp("dance styles")
    rows = ["Path,Label,Artist,Split,Tempo"]  # header case and an unused column
    for index, dance in enumerate(DANCES):
        for number in range(6):
            rel = f"{dance} set/song {number} $(x).wav"
            synth(root / "music" / rel, 3.0, "sine", f"{220 + 110 * index + 13 * number}", channels=1, rate=22050)
            split = "test" if number == 5 else ""  # one official test song per style
            rows.append(f'"{rel}",{dance},{dance} band {number // 2},{split},120')
    synth(root / "music" / "mixed.wav", 3.0, channels=1, rate=22050)
    synth(root / "music" / "unlisted.wav", 3.0, channels=1, rate=22050)
    rows += [
        "mixed.wav,tango; waltz,,,",           # several labels: skipped by a single-label build
        "../outside.wav,salsa,,,",             # escapes the audio folder
        "/etc/passwd,salsa,,,",                # absolute
        "ghost.wav,salsa,,,",                  # no such file: counted as metadata without audio
        "empty label.wav,,,,",                 # empty label
        "odd split.wav,salsa,,holdout,",       # unknown split
        "short row.wav",                       # fewer fields than the header
    ]
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_a_csv_labelled_corpus_builds_with_its_labels_as_classes(dances, tmp_path):
    out = tmp_path / "out"
    result = genreslice("build", str(dances / "music"), str(out), "--labels", "csv", "--metadata",
                        str(dances / "labels.csv"), "--split-ratios", "0.5,0.25,0.25", "--no-progress")
    assert result.returncode == 0, result.stderr
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["classes"] == list(DANCES)
    assert dataset["labels"]["source"] == "csv" and dataset["labels"]["metadata_rows_skipped"] == 5
    assert dataset["labels"]["ignored_columns"] == ["Tempo"]
    assert dataset["labels"]["metadata_without_audio"] == 1 and dataset["labels"]["audio_without_metadata"] == 1
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    for dance in DANCES:
        songs = [rows[f"{dance} set/song {number} $(x).wav"] for number in range(6)]
        assert all(song["genre"] == dance and song["status"] == "ok" for song in songs)
        assert songs[5]["split"] == "test"  # the official split is kept
        for first, second in zip(songs[0:6:2], songs[1:6:2]):  # an artist's two songs share a split
            assert first["artist"] == second["artist"] and first["split"] == second["split"]
    assert rows["mixed.wav"]["status"] == "skipped"
    assert rows["mixed.wav"]["reason"] == "several labels ('tango', 'waltz'): a single-label data set takes tracks with one"
    assert rows["unlisted.wav"]["status"] == "skipped" and "not listed in" in rows["unlisted.wav"]["reason"]
    report = result.stdout + result.stderr
    assert "malformed metadata rows (skipped): 5" in report
    for problem in ("path '../outside.wav' is empty or leads outside", "path '/etc/passwd' is empty or leads outside",
                    "empty label", "split 'holdout' is not one of train, validation, test",
                    "1 fields, fewer than the header's"):
        assert problem in report, problem


def test_several_rows_of_one_path_merge_their_labels_and_must_agree(tmp_path):
    metadata = tmp_path / "labels.csv"
    metadata.write_text("path,label,artist\n"
                        "a.wav,rock,x\na.wav,pop;rock,x\n"      # labels merged: rock, pop
                        "b.wav,jazz,x\nb.wav,jazz,y\n"          # another artist: the second row is refused
                        "c.wav,\"  hip \t  hop \",\n"           # spacing (tabs, newlines too) collapsed
                        "d.wav,a\x01b,\n", encoding="utf-8")     # a control character
    problems: list[str] = []
    tracks = read_label_csv(metadata, problems)
    assert tracks["a.wav"].labels == ("rock", "pop") and tracks["b.wav"].artist == "x"
    assert tracks["c.wav"].labels == ("hip hop",) and "d.wav" not in tracks
    assert problems == [f"{metadata}: line 5: path 'b.wav' is also at line 4 with another artist or split; row skipped",
                        f"{metadata}: line 7: a control character in its label or artist; "
                        "row skipped"]
    source = make_label_source("csv", audio_dir=tmp_path, metadata=metadata)
    assert source.taxonomy.genres == ("hip hop", "jazz")  # rock and pop only label a track with two
    assert source.label(tmp_path / "c.wav", "c.wav").genre == "hip hop"


@pytest.mark.parametrize("text, message", [
    ("", "empty file; expected a header row with the columns path and label"),
    ("file,genre\na.wav,rock\n", "line 1: the header lacks the column path and label; it has 'file', 'genre'"),
    ("path,artist\na.wav,x\n", "line 1: the header lacks the column label"),
])
def test_a_csv_it_cannot_use_stops_the_build_before_any_work(tmp_path, text, message):
    metadata = tmp_path / "labels.csv"
    metadata.write_text(text, encoding="utf-8")
    with pytest.raises(MetadataError, match=message):
        make_label_source("csv", audio_dir=tmp_path, metadata=metadata)


def test_an_unterminated_quote_swallows_the_rows_after_it_and_is_reported(tmp_path):
    metadata = tmp_path / "labels.csv"
    metadata.write_text('path,label\n"a.wav,rock\nb.wav,jazz\n', encoding="utf-8")
    problems: list[str] = []
    assert read_label_csv(metadata, problems) == {}
    assert problems == [f"{metadata}: lines 2-3: 1 fields, fewer than the header's; row skipped"]


def test_a_csv_that_is_not_utf8_and_a_missing_metadata_option_are_refused(tmp_path):
    metadata = tmp_path / "labels.csv"
    metadata.write_bytes("path,label\nkaffé.wav,rock\n".encode("latin-1"))
    with pytest.raises(MetadataError, match="line 2.*not UTF-8"):
        make_label_source("csv", audio_dir=tmp_path, metadata=metadata)
    with pytest.raises(ParameterError, match="--labels csv needs --metadata"):
        make_label_source("csv", audio_dir=tmp_path)
    result = genreslice("build", str(tmp_path), str(tmp_path / "out"), "--labels", "csv", "--dry-run")
    assert result.returncode != 0 and "--labels csv needs --metadata" in result.stderr

"""``--labels csv``: classes from a CSV of your own (``path,label``, optional ``artist`` and ``split``).

Real files in (a CSV-labelled dance-style corpus of SoX-synthesised WAVs, hostile rows), real data sets out.
"""
from __future__ import annotations

import csv
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
    assert rows["mixed.wav"]["reason"] == ("several labels ('tango', 'waltz'): a single-label data set takes tracks "
                                           "with one (--task multilabel uses them all)")
    assert rows["unlisted.wav"]["status"] == "skipped" and "not listed in" in rows["unlisted.wav"]["reason"]
    report = result.stdout + result.stderr
    assert "malformed metadata rows (skipped): 5" in report
    for problem in ("path '../outside.wav' is empty or leads outside", "path '/etc/passwd' is empty or leads outside",
                    "empty label", "split 'holdout' is not one of train, validation, test",
                    "1 fields, too few for the columns path, label, artist, split"):
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
    assert tracks["a.wav"].labels == ("rock", "pop") and not tracks["a.wav"].conflict
    assert tracks["c.wav"].labels == ("hip hop",) and "d.wav" not in tracks
    assert problems == [f"{metadata}: line 5: path 'b.wav' is also at line 4 with another artist or split; the "
                        "track is skipped; row skipped",
                        f"{metadata}: line 7: a control character in its label or artist; row skipped"]
    source = make_label_source("csv", metadata=metadata)
    assert source.taxonomy.genres == ("hip hop",)  # rock and pop label a track with two; b.wav's rows disagree
    assert source.label(tmp_path / "c.wav", "c.wav").genre == "hip hop"
    assert source.label(tmp_path / "b.wav", "b.wav").reason == (
        f"its rows at lines 4 and 5 of {metadata} give another artist or split")
    assert source.missing_audio(set()) == ["a.wav"]  # the build asked about b.wav and c.wav: found


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
    assert problems == [f"{metadata}: lines 2-3: a quoted field runs over these lines (an unterminated quote?); row "
                        "skipped, and the rows it swallowed"]
    metadata.write_text('path,label\n"a.wav,rock\n' + "b.wav,jazz\n" * 20_000, encoding="utf-8")  # > 128 KiB
    old = csv.field_size_limit(131072)  # the csv module's default (the fma source raises it for the process)
    try:
        with pytest.raises(MetadataError, match="from line 2: not readable as CSV: field larger than field limit"):
            read_label_csv(metadata, [])
    finally:
        csv.field_size_limit(old)


def test_paths_match_whatever_the_unicode_normal_form_and_odd_rows_are_reported(tmp_path):
    import unicodedata

    metadata = tmp_path / "labels.csv"
    metadata.write_text(f"path,label\n{unicodedata.normalize('NFC', 'Café.wav')},jazz\npath,label\n"
                        "sub\\y.wav,rock\n", encoding="utf-8")
    source = make_label_source("csv", metadata=metadata)
    assert source.label(tmp_path / "x", unicodedata.normalize("NFD", "Café.wav")).genre == "jazz"
    assert source.metadata_problems == (
        f"{metadata}: line 3: the header again (two CSV files joined?); row skipped",
        f"{metadata}: line 4: path 'sub\\\\y.wav' is empty or leads outside the audio folder; write paths with /; "
        "row skipped")
    metadata.write_text("path,label,Label\na.wav,x,y\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="line 1: the header names the column label twice"):
        make_label_source("csv", metadata=metadata)
    metadata.write_text("path,label\na.wav,x;y\nb.wav,\n", encoding="utf-8")
    with pytest.raises(MetadataError, match=r"no track has exactly one label, and a single-label data set needs "
                                            r"them \(--task multilabel takes tracks with several\): 1 tracks listed, 1 with several labels, 1 rows reported \(the "
                                            r"first: .*line 3: empty label"):
        make_label_source("csv", metadata=metadata)


def test_a_csv_that_is_not_utf8_and_a_missing_metadata_option_are_refused(tmp_path):
    metadata = tmp_path / "labels.csv"
    metadata.write_bytes("path,label\nkaffé.wav,rock\n".encode("latin-1"))
    with pytest.raises(MetadataError, match="line 2.*not UTF-8"):
        make_label_source("csv", audio_dir=tmp_path, metadata=metadata)
    with pytest.raises(ParameterError, match="--labels csv needs --metadata"):
        make_label_source("csv", audio_dir=tmp_path)
    result = genreslice("build", str(tmp_path), str(tmp_path / "out"), "--labels", "csv", "--dry-run")
    assert result.returncode != 0 and "--labels csv needs --metadata" in result.stderr


def test_a_multilabel_build_keeps_every_label_in_a_tags_column(dances, tmp_path):
    out = tmp_path / "out"
    result = genreslice("build", str(dances / "music"), str(out), "--labels", "csv", "--metadata",
                        str(dances / "labels.csv"), "--task", "multilabel", "--split-ratios", "0.5,0.25,0.25",
                        "--min-tracks-per-class", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert "19 tracks ok" in result.stdout and "3 tags." in result.stdout
    tracks = read_csv(out / "tracks.csv")
    assert list(tracks[0]) == ["track_id", "path", "artist", "genre", "tags", "split", "status", "reason",
                               "n_slices", "duration_s"]
    rows = {row["path"]: row for row in tracks}
    assert (rows["mixed.wav"]["tags"], rows["mixed.wav"]["genre"], rows["mixed.wav"]["status"]) == (
        "tango;waltz", "", "ok")
    assert rows["salsa set/song 0 $(x).wav"]["tags"] == "salsa"
    slices = read_csv(out / "slices.csv")
    assert list(slices[0]) == ["path", "track_id", "genre", "tags", "split", "index", "start_s"]
    assert {row["tags"] for row in slices if row["track_id"] == rows["mixed.wav"]["track_id"]} == {"tango;waltz"}
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["task"] == "multilabel" and dataset["classes"] == list(DANCES)
    assert dataset["labels"]["selection"]["min_tracks_per_class"] == 2
    # The counts are per tag and split: the mixed song counts for tango and for waltz, by hand from tracks.csv.
    for split in ("train", "validation", "test"):
        for dance in DANCES:
            assert dataset["counts"]["tracks"][split][dance] == sum(
                1 for row in tracks if row["status"] == "ok" and row["split"] == split
                and dance in row["tags"].split(";"))
    assert sum(dataset["totals"]["tracks_per_split"].values()) == 19
    # A single-label build of the same files has no tags column (its files are as they always were).
    single = genreslice("build", str(dances / "music"), str(tmp_path / "single"), "--labels", "csv", "--metadata",
                        str(dances / "labels.csv"), "--no-progress")
    assert single.returncode == 0, single.stderr
    assert "tags" not in read_csv(tmp_path / "single" / "tracks.csv")[0]
    assert "task" not in json.loads((tmp_path / "single" / "dataset.json").read_text())


def test_multilabel_needs_a_source_with_several_labels(tmp_path):
    result = genreslice("build", str(tmp_path), str(tmp_path / "out"), "--task", "multilabel", "--dry-run")
    assert result.returncode == 2
    assert "--task multilabel needs a source that gives a track several labels (--labels csv or jamendo); " \
           "--labels id3 gives one" in result.stderr

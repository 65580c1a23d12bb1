"""FMA label source on files in the exact layout of FMA's tracks.csv, including hostile rows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genre_getters.fma import FmaLabelSource
from metadata import MetadataError
from tests.fma_tracks import COLUMNS, write_tracks_csv
from tests.label_fixtures import write_fma_metadata


def label(source: FmaLabelSource, rel_path: str):
    return source.label(Path(rel_path), rel_path)


def test_generated_file_reads_like_the_real_one(tmp_path):
    """The fixture writer matches the documented reading: pd.read_csv(index_col=0, header=[0, 1])."""
    tracks = pd.read_csv(write_fma_metadata(tmp_path) / "tracks.csv", index_col=0, header=[0, 1])
    assert list(tracks.columns) == COLUMNS and len(COLUMNS) == 52
    assert tracks.loc[2, ("track", "genre_top")] == "Hip-Hop" and tracks.loc[10, ("set", "split")] == "validation"


@pytest.mark.parametrize("metadata", ["folder", "file"])
def test_labels_artist_and_official_split(tmp_path, metadata):
    folder = write_fma_metadata(tmp_path)
    source = FmaLabelSource(metadata=folder if metadata == "folder" else folder / "tracks.csv")
    result = label(source, "000/000002.mp3")
    assert (result.genre, result.artist, result.track_id, result.split) == ("Hip-Hop", "1", "2", "train")
    assert label(source, "000/000010.mp3").split == "validation"
    assert label(source, "000/000134.mp3").split == "test"
    assert label(source, "fma_full/000/000140.mp3").genre == "Folk"  # only the file name counts


def test_empty_genre_top_is_skipped_with_that_reason(tmp_path):
    result = label(FmaLabelSource(metadata=write_fma_metadata(tmp_path)), "000/000020.mp3")
    assert result.genre is None and "no genre_top" in result.reason and "several top-level genres" in result.reason
    assert result.split == "test" and not result.unlisted


def test_unlisted_audio_and_rows_without_audio(tmp_path):
    source = FmaLabelSource(metadata=write_fma_metadata(tmp_path))
    for rel_path in ("000/000004.mp3", "000/cover.mp3", "-rf.mp3"):
        result = label(source, rel_path)
        assert result.genre is None and result.unlisted, rel_path
    assert label(source, "000/000004.mp3").reason == "track 4 has no row in tracks.csv"
    assert source.missing_audio({"2", "3", "10"}) == ["5", "20", "134", "140"]  # numeric order


@pytest.mark.parametrize("subset, kept", [("small", {"2", "5", "10"}), ("medium", {"2", "3", "5", "10", "134"}),
                                          ("large", {"2", "3", "5", "10", "20", "134", "140"})])
def test_subsets_nest(tmp_path, subset, kept):
    source = FmaLabelSource(metadata=write_fma_metadata(tmp_path), subset=subset)
    assert set(source.missing_audio(set())) == kept
    if subset == "small":
        result = label(source, "000/000134.mp3")
        assert result.genre is None and result.reason == "track 134 is not in the 'small' subset"
        assert not result.unlisted


def test_hostile_rows_are_reported_and_skipped(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [
        {"track_id": 2, "genre_top": "Hip-Hop", "artist_id": 1},
        {"track_id": "abc", "genre_top": "Rock", "artist_id": 1},
        {"track_id": 2, "genre_top": "Rock", "artist_id": 1},
        {"track_id": 7, "genre_top": "Rock", "artist_id": 1, "subset": "tiny"},
        {"track_id": 8, "genre_top": "Punk", "artist_id": 1},
        {"track_id": 9, "genre_top": "Rock", "artist_id": 1, "split": "holdout"},
        {"track_id": 11, "genre_top": "Rock", "artist_id": "$(reboot)"},
        {"track_id": 12, "genre_top": "Rock", "title": "Quote \" and, comma\nand newline", "bio": ""},
    ])
    source = FmaLabelSource(metadata=path)
    problems = "\n".join(source.metadata_problems)
    assert len(source.metadata_problems) == 6, problems
    # A record's first line; lines count the header rows and the multi-line quoted bio of every record (2 lines).
    for text in ("line 6: track id 'abc' is not a number", "line 8: track 2 appears twice",
                 "line 10: track 7 has subset 'tiny'", "line 12: track 8 has genre_top 'Punk'",
                 "line 14: track 9 has split 'holdout'", "line 16: track 11 has artist id '$(reboot)'"):
        assert f"{path}: {text}" in problems
    assert label(source, "000/000002.mp3").genre == "Hip-Hop"
    assert label(source, "000/000012.mp3").genre == "Rock" and label(source, "000/000012.mp3").artist is None


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("\xff", "not FMA's tracks.csv layout"),
    ("track_id,genre\n2,Rock\n", "not FMA's tracks.csv layout"),
    (",track,track\n,title,genres\ntrack_id,,\n2,Food,[21]\n", r"header lacks column \('track', 'genre_top'\)"),
])
def test_unusable_file_is_a_clear_error_naming_it(tmp_path, content, message):
    path = tmp_path / "tracks.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(MetadataError, match=message) as error:
        FmaLabelSource(metadata=path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("fields", [40, 60])
def test_row_with_wrong_field_count_is_reported_with_its_line(tmp_path, fields):
    path = write_fma_metadata(tmp_path) / "tracks.csv"
    lines = len(path.read_text(encoding="utf-8").splitlines())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("999," + ",".join(["Rock"] * fields) + "\n")
    source = FmaLabelSource(metadata=path)
    assert source.metadata_problems == (f"{path}: line {lines + 1}: expected 53 fields, found {fields + 1}; "
                                        "row skipped",)
    assert label(source, "000/000999.mp3").unlisted and label(source, "000/000002.mp3").genre == "Hip-Hop"


def test_very_long_field_is_read(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [{"track_id": 2, "genre_top": "Rock", "bio": "x" * 300_000}])
    assert label(FmaLabelSource(metadata=path), "000002.mp3").genre == "Rock"


def test_missing_or_wrong_metadata_path(tmp_path):
    with pytest.raises(ValueError, match="needs --metadata"):
        FmaLabelSource()
    with pytest.raises(MetadataError, match="no tracks.csv there"):
        FmaLabelSource(metadata=tmp_path)
    with pytest.raises(ValueError, match="subset='tiny'"):
        FmaLabelSource(metadata=write_fma_metadata(tmp_path), subset="tiny")

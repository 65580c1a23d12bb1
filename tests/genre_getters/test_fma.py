"""FMA label source on files in the exact layout of FMA's tracks.csv, including hostile rows."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd
import pytest

from genreslice.genre_getters import fma
from genreslice.genre_getters.fma import FmaLabelSource
from genreslice.metadata import MetadataError
from tests.helpers import COLUMNS, write_fma_metadata, write_tracks_csv


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


def one_line_track(track_id: int, **fields) -> dict:
    """A track whose record is one line with no quote in it (no bio, one genre)."""
    return {"track_id": track_id, "genre_top": "Rock", "artist_id": 1, "bio": "", "genres_all": "[12]", **fields}


def test_file_with_a_byte_order_mark_is_read(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [one_line_track(2)])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    source = FmaLabelSource(metadata=path)
    assert source.metadata_problems == () and label(source, "000/000002.mp3").genre == "Rock"


def test_latin1_file_names_the_line_and_the_byte(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [one_line_track(2), one_line_track(3),
                                                      one_line_track(10, artist_name="Café Tacvba")])
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(MetadataError) as error:
        FmaLabelSource(metadata=path)
    assert str(error.value) == (f"{path}: line 6: byte 0xe9 is not UTF-8 (saved as Latin-1 or Windows-1252?); "
                                "metadata files must be UTF-8")


def break_title_quote(path: Path, track_id: int) -> None:
    """Open a quote at the start of a track's title (the last column) and never close it."""
    text = path.read_text(encoding="utf-8")
    assert f",Track {track_id}\n" in text
    path.write_text(text.replace(f",Track {track_id}\n", f',"Track {track_id}\n', 1), encoding="utf-8")


def test_unterminated_quote_to_the_end_of_the_file_reports_the_records_it_swallowed(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [one_line_track(i) for i in (2, 3, 5, 6, 7, 8, 9, 10, 11)])
    break_title_quote(path, 3)
    with pytest.raises(pd.errors.ParserError, match="EOF inside string"):  # pandas refuses the whole file
        pd.read_csv(path, index_col=0, header=[0, 1])
    source = FmaLabelSource(metadata=path)
    # The title is the last column: the record keeps its 53 fields, the rest of the file sitting in its title.
    assert source.metadata_problems == (
        f"{path}: line 5: the record runs to line 12, the end of the file (an unterminated quote?) and swallows 7 "
        "lines starting with a track id (5, 6, 7, 8, 9, ...); those tracks are not labelled; row skipped",)
    assert label(source, "000/000002.mp3").genre == "Rock"
    assert all(label(source, f"{i:06d}.mp3").unlisted for i in (3, 5, 11))


def test_unterminated_quote_closed_by_a_later_quote_reports_the_records_it_swallowed(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [
        one_line_track(2), one_line_track(3), one_line_track(5),
        one_line_track(10, genres_all="[12, 25]"),  # quoted: its opening quote closes the open one
        one_line_track(20), one_line_track(21),
    ])
    break_title_quote(path, 3)
    source = FmaLabelSource(metadata=path)
    assert len(source.metadata_problems) == 1, source.metadata_problems
    assert re.fullmatch(
        rf"{re.escape(str(path))}: line 5: expected 53 fields, found \d+: the record runs to line 7 \(an "
        r"unterminated quote\?\) and swallows 2 lines starting with a track id \(5, 10\); those tracks are not "
        r"labelled; row skipped", source.metadata_problems[0])
    assert [label(source, f"{i:06d}.mp3").genre for i in (2, 3, 5, 10, 20, 21)] == [
        "Rock", None, None, None, "Rock", "Rock"]


def test_bio_line_that_starts_with_a_number_is_not_taken_for_a_swallowed_record(tmp_path):
    path = write_tracks_csv(tmp_path / "tracks.csv", [
        one_line_track(2, bio="<p>Formed in Leeds.</p>\n2010, 2011, 2012: three albums, one tour.\n3, 4, go!"),
        one_line_track(3)])
    source = FmaLabelSource(metadata=path)
    assert source.metadata_problems == ()
    assert label(source, "000/000002.mp3").genre == label(source, "000/000003.mp3").genre == "Rock"


@pytest.fixture
def small_csv_field_limit(monkeypatch):
    """FMA's reader with a field limit of 1000 characters, so a csv.Error needs no gigabyte-sized file."""
    monkeypatch.setattr(fma, "_MAX_FIELD_CHARS", 1000)
    old = csv.field_size_limit(1000)
    yield
    csv.field_size_limit(old)


def test_csv_error_names_the_line(tmp_path, small_csv_field_limit):
    path = write_tracks_csv(tmp_path / "tracks.csv", [one_line_track(2), one_line_track(3, bio="x" * 2000)])
    with pytest.raises(MetadataError) as error:
        FmaLabelSource(metadata=path)
    assert str(error.value) == f"{path}: line 5: field larger than field limit (1000)"

"""The shipped tables and their loaders (metadata/)."""
from __future__ import annotations

import csv

import pytest

from genreslice.metadata import (MetadataError, fma_taxonomy, genre_key, load_fma_genres, load_genre_map, map_taxonomy,
                      read_genre_map)


def test_fma_hierarchy_has_163_genres_under_16_top_level_ones():
    genres = load_fma_genres()
    titles = {genre.genre_id: genre.title for genre in genres}
    assert len(genres) == 163 and sum(genre.parent == 0 for genre in genres) == 16
    taxonomy = fma_taxonomy()
    assert len(taxonomy.genres) == 16
    for genre in genres:  # every FMA title resolves to its own top-level genre
        assert taxonomy.resolve(genre.title) == titles[genre.top_level], genre.title


def test_every_shipped_name_resolves_to_a_top_level_genre():
    taxonomy = fma_taxonomy()
    for genre in load_genre_map().values():
        assert genre == "" or genre in taxonomy.genres
    assert taxonomy.resolve("Punk") == "Rock" and taxonomy.resolve("poprock") == "Rock"
    assert taxonomy.resolve("Old-Time / Historic") == taxonomy.top_level("old time historic") == "Old-Time / Historic"


@pytest.mark.parametrize("a, b", [("Hip-Hop", "hip hop"), ("Drum & Bass", "drumnbass"), ("Électronique", "electronique"),
                                  ("Soul-RnB", "soul rnb")])
def test_genre_key_ignores_case_spacing_punctuation_and_accents(a, b):
    assert genre_key(a) == genre_key(b)


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("rock,Rock\n", "line 1: header must be 'tag,genre'"),
    ("name,genre\nrock,Rock\n", "line 1: header must be 'tag,genre'"),
    ("tag,genre\nrock,Rock,extra\n", "line 2: expected 2 fields"),
    ("tag,genre\n,Rock\n", "line 2: empty tag"),
    ("tag,genre\nrock,Rock\n# comment\nRock,Pop\n", "line 4: tag 'Rock' appears twice"),
])
def test_bad_genre_maps_name_the_line(text, message):
    with pytest.raises(MetadataError, match=message):
        read_genre_map(text.splitlines(keepends=True), source="map.csv")


def test_user_genre_map_must_map_something(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("tag,genre\n60s,\n", encoding="utf-8")
    with pytest.raises(MetadataError, match="maps no tag to a genre"):
        load_genre_map(path)
    path.write_text("tag,genre\ngenre---rock,Guitar\ntechno,\n", encoding="utf-8")  # the tag prefix is dropped
    assert load_genre_map(path) == {"rock": "Guitar", "techno": ""}
    assert map_taxonomy(load_genre_map(path)).genres == ("Guitar",)


def test_user_genre_map_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("tag,genre\r\nrock,Guitar\r\n", encoding="utf-8-sig")  # as Excel saves "CSV UTF-8"
    assert load_genre_map(path) == {"rock": "Guitar"}


def test_latin1_genre_map_names_the_line_and_the_byte(tmp_path):
    path = tmp_path / "map.csv"
    path.write_text("# mes genres\ntag,genre\nrock,Rock\nchanson française,Pop\n", encoding="latin-1")
    with pytest.raises(MetadataError) as error:
        load_genre_map(path)
    assert str(error.value) == (f"{path}: line 4: byte 0xe7 is not UTF-8 (saved as Latin-1 or Windows-1252?); "
                                "metadata files must be UTF-8")


@pytest.fixture(params=[128 * 1024, 1 << 30], ids=["default-csv-limit", "raised-csv-limit"])
def csv_field_limit(request):
    """The process-wide csv field limit, as it is by default and after FMA's reader has raised it."""
    old = csv.field_size_limit(request.param)
    yield
    csv.field_size_limit(old)


def test_overlong_genre_map_line_is_an_error_naming_the_line(tmp_path, csv_field_limit):
    path = tmp_path / "map.csv"
    path.write_text(f"tag,genre\nrock,Rock\n{'x' * 200_000},Pop\n", encoding="utf-8")
    with pytest.raises(MetadataError) as error:
        load_genre_map(path)
    assert str(error.value) == (f"{path}: line 3: 200,005 characters long, over the 131,072 a genre map row may "
                                "hold; expected 'tag,genre'")


def test_csv_error_in_genre_map_names_the_line():
    with pytest.raises(MetadataError, match="^map.csv: line 3: new-line character seen in unquoted field"):
        read_genre_map(["tag,genre\n", "rock,Rock\n", "p\rop,Pop\n"], source="map.csv")

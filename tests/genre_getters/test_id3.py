from __future__ import annotations

from pathlib import Path

import pytest
from mutagen.flac import FLAC
from mutagen.id3 import ID3

from genreslice.genre_getters import LabelSource, make_label_source
from genreslice.genre_getters.id3 import Id3LabelSource, candidate_genres, choose_genre
from tests.helpers import append_id3v1, synth, tag_id3

SOURCE = Id3LabelSource()


def label(path: Path):
    return SOURCE.label(path, path.name)


@pytest.fixture(scope="module")
def plain_mp3(tmp_path_factory, sox_info):
    return synth(tmp_path_factory.mktemp("id3") / "plain.mp3", 1.0)


def copy_of(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def test_id3v2_genre_and_artist(tmp_path, plain_mp3):
    path = tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre="  Hip-Hop ", artist="MC  Test")
    result = label(path)
    assert (result.genre, result.artist, result.reason) == ("Hip-Hop", "MC Test", "")


@pytest.mark.parametrize("raw, expected", [("(17)", "Rock"), ("(8)", "Jazz"), ("32", "Classical"),
                                           ("(17)Rock", "Rock")])
def test_numeric_id3v2_genres_are_resolved(tmp_path, plain_mp3, raw, expected):
    path = tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre=raw, artist="X")
    assert label(path).genre == expected


def test_id3v1_only_file(tmp_path, plain_mp3):
    path = append_id3v1(copy_of(plain_mp3, tmp_path / "v1.mp3"), genre_byte=13, artist="Old Ripper")
    assert ID3(path).version[0] == 1  # mutagen found no ID3v2, only the v1 block
    result = label(path)
    assert (result.genre, result.artist) == ("Pop", "Old Ripper")


def test_several_genres_first_usable_wins(tmp_path, plain_mp3):
    path = tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre="Unknown\x00Electronic\x00Rock", artist="X")
    assert label(path).genre == "Electronic"


def test_missing_genre_is_skipped_with_reason(tmp_path, plain_mp3):
    path = tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), artist="Someone")
    result = label(path)
    assert result.genre is None and result.artist == "Someone" and result.reason == "no genre tag"


def test_untagged_file(tmp_path, plain_mp3):
    result = label(copy_of(plain_mp3, tmp_path / "untagged.mp3"))
    assert result.genre is None and result.artist is None and result.reason == "no genre tag"


@pytest.mark.parametrize("raw", ["(255)", "Unknown", "   ", "(300)"])
def test_unknown_genres_are_skipped_and_named(tmp_path, plain_mp3, raw):
    result = label(tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre=raw, artist="X"))
    assert result.genre is None and result.reason.startswith("unknown genre tag")


def test_vorbis_comments_in_flac(tmp_path, sox_info):
    path = synth(tmp_path / "a.flac", 1.0)
    flac = FLAC(path)
    flac["GENRE"] = "Folk"
    flac["ARTIST"] = "Fiddler"
    flac.save()
    result = label(path)
    assert (result.genre, result.artist) == ("Folk", "Fiddler")


@pytest.mark.parametrize("content", [b"", b"\x00" * 10, b"definitely not audio\n" * 50])
def test_unreadable_files_never_raise(tmp_path, content):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    result = label(path)
    assert result.genre is None and result.reason


TAXONOMY = SOURCE.taxonomy


@pytest.mark.parametrize("values, expected", [
    (["Punk"], "Rock"),                            # FMA hierarchy: sub-genre -> top-level
    (["  hip   HOP "], "Hip-Hop"),                 # case, spacing and dashes ignored
    (["Drum & Bass"], "Electronic"),
    (["Thrash Metal"], "Rock"),                    # genre_aliases.csv (ID3v1 names)
    (["R&B"], "Soul-RnB"),
    (["Pop/Funk"], "Soul-RnB"),                    # one ID3v1 name, not split
    (["Rock; Pop"], "Rock"),                       # split at ';', tie -> named first
    (["Pop | Jazz"], "Pop"),
    (["Pop/Rock"], "Rock"),                        # a name of its own (MTG-Jamendo poprock)
    (["Jazz", "Pop", "Synth Pop"], "Pop"),         # most named wins
    (["Bebop", "Free-Jazz", "Techno"], "Jazz"),
    (["Schlager"], None),
    (["Other", "Top 40"], None),                   # too vague to place
])
def test_choose_genre_maps_names_to_top_level_genres(values, expected):
    assert choose_genre(candidate_genres(values), TAXONOMY) == expected


def test_candidate_genres_drop_empty_and_numeric_values():
    assert candidate_genres(["", "  Drum   and Bass ", "<unknown>\x00n/a", "(255)"]) == ["Drum and Bass"]


def test_genre_outside_the_taxonomy_is_skipped_with_a_hint(tmp_path, plain_mp3):
    result = label(tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre="Schlager", artist="X"))
    assert result.genre is None and "'Schlager' is not in the genre taxonomy" in result.reason
    assert "--genre-map" in result.reason


def test_genre_map_adds_names_and_genres(tmp_path, plain_mp3):
    genre_map = tmp_path / "map.csv"
    genre_map.write_text("tag,genre\nSchlager,Schlager\nPunk,Punk\n", encoding="utf-8")
    source = Id3LabelSource(genre_map=genre_map)
    assert "Schlager" in source.taxonomy.genres and "Punk" in source.taxonomy.genres
    path = tag_id3(copy_of(plain_mp3, tmp_path / "a.mp3"), genre="schlager", artist="X")
    assert source.label(path, "a.mp3").genre == "Schlager"
    assert choose_genre(["Punk"], source.taxonomy) == "Punk"  # the user's map comes before FMA's hierarchy
    assert choose_genre(["Bebop"], source.taxonomy) == "Jazz"  # and the shipped tables still apply


def test_registry_and_protocol():
    source = make_label_source("id3")
    assert isinstance(source, LabelSource)
    assert source.settings() == {"source": "id3", "taxonomy": "fma", "genre_map": None}
    assert len(source.taxonomy.genres) == 16
    with pytest.raises(ValueError, match="id3"):
        make_label_source("nope")
    with pytest.raises(ValueError, match="does not use --metadata"):
        make_label_source("id3", metadata="somewhere")


def test_a_cut_off_tag_gets_a_reason_that_says_something(tmp_path):
    """mutagen reports an ID3 header whose tag runs past the end of the file with an empty message."""
    cut = tmp_path / "cut off.mp3"
    cut.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x10garbage")
    label = Id3LabelSource().label(cut, "cut off.mp3")
    assert label.failed and label.genre is None
    assert label.reason.startswith("not readable as audio with tags: ")
    detail = label.reason.removeprefix("not readable as audio with tags: ")
    assert detail == "the tag or the audio data is damaged or cut off (no details given)"


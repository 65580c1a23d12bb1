"""MTG-Jamendo label source: real rows as fixtures, hostile rows, the tag map and its tie rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from genreslice.genre_getters.jamendo import JamendoLabelSource, audio_key
from genreslice.metadata import MetadataError
from tests.helpers import JAMENDO_SPLIT

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS"


def write_tsv(path: Path, rows: list[str], *, header: str = HEADER, newline: str = "\r\n",
              encoding: str = "utf-8") -> Path:
    path.write_bytes((newline.join([header, *rows]) + newline).encode(encoding))
    return path


@pytest.fixture(scope="module")
def source():
    return JamendoLabelSource(metadata=JAMENDO_SPLIT)


@pytest.mark.parametrize("rel_path, genre, split", [
    ("41/241.mp3", "Rock", "train"),
    ("51/851.mp3", "Soul-RnB", "train"),         # disco, funk, rnb (Soul-RnB) beat pop
    ("91/1091.mp3", "Pop", "train"),             # electronic vs pop: a tie, Pop's rows come first in the map
    ("75/775.mp3", "Easy Listening", "validation"),  # easylistening + lounge beat electronic
    ("29/1729.mp3", "Rock", "validation"),       # poprock + rock beat pop
    ("14/214.mp3", "Rock", "test"),              # punkrock
    ("16/3516.mp3", "Electronic", "test"),
    ("16/3516.low.mp3", "Electronic", "test"),   # the data set's low-quality copy
])
def test_real_rows_label_and_official_split(source, rel_path, genre, split):
    label = source.label(Path(rel_path), rel_path)
    assert (label.genre, label.split, label.reason) == (genre, split, "")
    assert label.track_id.startswith("track_") and label.artist.startswith("artist_")


@pytest.mark.parametrize("rel_path, tags", [("11/121111.mp3", "atmospheric"), ("46/1180946.mp3", "progressive"),
                                            ("00/719800.mp3", "hard")])
def test_tags_that_name_no_genre_are_skipped_with_the_tags(source, rel_path, tags):
    label = source.label(Path(rel_path), rel_path)
    assert label.genre is None and label.reason == f"no genre tag maps to a genre (tags: {tags})"
    assert label.split is not None and not label.unlisted


def test_unlisted_file_and_missing_audio(source):
    label = source.label(Path("x/1.mp3"), "x/1.mp3")
    assert label.genre is None and label.unlisted and "not listed" in label.reason
    assert source.missing_audio({"track_0000241"}) == sorted(
        row.track_id for row in source._rows.values() if row.track_id != "track_0000241")
    assert len(source.missing_audio(set())) == 16


def test_rows_listed_in_two_split_files_are_reported_with_both_places(tmp_path):
    row = "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---rock"
    write_tsv(tmp_path / "autotagging_genre-train.tsv", [row])
    write_tsv(tmp_path / "autotagging_genre-validation.tsv", [])
    write_tsv(tmp_path / "autotagging_genre-test.tsv", ["track_0000002\tartist_000002\talbum_000001\t01/1.mp3\t1\t"
                                                        "genre---pop", row])
    source = JamendoLabelSource(metadata=tmp_path)
    test_tsv, train_tsv = tmp_path / "autotagging_genre-test.tsv", tmp_path / "autotagging_genre-train.tsv"
    assert source.metadata_problems == (
        f"{test_tsv}: line 2: PATH 01/1.mp3 is already listed at {train_tsv}: line 2; row skipped",
        f"{test_tsv}: line 3: TRACK_ID track_0000001 is already listed at {train_tsv}: line 2; row skipped",
    )
    assert source.label(Path("01/1.mp3"), "01/1.mp3").split == "train"


def test_line_numbers_count_only_newlines(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_\x85\u2028\x0c\t01/1.mp3\t1\tgenre---rock",
        "track_0000002\tartist_000001\talbum_000001\t../2.mp3\t1\tgenre---rock",
    ])
    source = JamendoLabelSource(metadata=tsv)
    assert source.metadata_problems == (f"{tsv}: line 3: PATH '../2.mp3' leaves the audio folder; it is never read; "
                                        "row skipped",)
    assert source.label(Path("01/1.mp3"), "01/1.mp3").genre == "Rock"


def test_single_tsv_gives_no_split_and_ignores_other_tag_kinds(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz\tmood/theme---happy",
        "track_0000002\tartist_000001\talbum_000001\t02/2.mp3\t200.0\tinstrument---piano",
    ], newline="\n")
    for metadata in (tsv, tmp_path):  # the file, or a folder holding it
        source = JamendoLabelSource(metadata=metadata)
        assert source.label(Path("01/1.mp3"), "01/1.mp3").genre == "Jazz"
        assert source.label(Path("01/1.mp3"), "01/1.mp3").split is None
        assert source.label(Path("02/2.mp3"), "02/2.mp3").reason == "no genre tag maps to a genre (tags: none)"


def test_hostile_rows_are_reported_and_skipped(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---rock",
        "track_0000002\tartist_000001\talbum_000001\t02/2.mp3",                        # too few fields
        "track_x\tartist_000001\talbum_000001\t03/3.mp3\t1\tgenre---rock",             # bad track id
        "track_0000004\t$(touch pwned)\talbum_000001\t04/4.mp3\t1\tgenre---rock",      # bad artist id
        "track_0000005\tartist_000001\talbum_000001\t../../etc/passwd\t1\tgenre---rock",  # escapes AUDIO_DIR
        "track_0000006\tartist_000001\talbum_000001\t/etc/passwd\t1\tgenre---rock",    # absolute
        "track_0000001\tartist_000002\talbum_000001\t07/7.mp3\t1\tgenre---pop",        # id twice
        "",
        "track_0000008\tartist_000003\talbum_000001\t08/8.mp3\t1\tgenre---pop\tgenre---",
    ])
    source = JamendoLabelSource(metadata=tsv)
    problems = "\n".join(source.metadata_problems)
    assert len(source.metadata_problems) == 6
    for line, text in ((3, "expected at least 6 tab-separated fields, found 4"), (4, "TRACK_ID 'track_x'"),
                       (5, "ARTIST_ID '$(touch pwned)'"), (6, "PATH '../../etc/passwd' leaves the audio folder"),
                       (7, "PATH '/etc/passwd' leaves the audio folder")):
        assert f"{tsv}: line {line}: {text}" in problems
    assert f"{tsv}: line 8: TRACK_ID track_0000001 is already listed at {tsv}: line 2; row skipped" in problems
    assert source.label(Path("01/1.mp3"), "01/1.mp3").genre == "Rock"
    assert source.label(Path("07/7.mp3"), "07/7.mp3").unlisted
    assert source.label(Path("08/8.mp3"), "08/8.mp3").genre == "Pop"


@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"TRACK_ID,ARTIST_ID,ALBUM_ID,PATH,DURATION,TAGS\r\n", "line 1: header must be"),
    (b"\xff\xfe\x00junk", "line 1: byte 0xff is not UTF-8"),
])
def test_unusable_file_is_a_clear_error_naming_it(tmp_path, content, message):
    tsv = tmp_path / "autotagging_genre.tsv"
    tsv.write_bytes(content)
    with pytest.raises(MetadataError, match=message) as error:
        JamendoLabelSource(metadata=tsv)
    assert str(tsv) in str(error.value)


def test_tsv_with_a_byte_order_mark_is_read(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz",
    ], encoding="utf-8-sig")
    source = JamendoLabelSource(metadata=tsv)
    assert source.metadata_problems == () and source.label(Path("01/1.mp3"), "01/1.mp3").genre == "Jazz"


def test_latin1_tsv_names_the_line_and_the_byte(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz",
        "track_0000002\tartist_000001\talbum_000001\t01/2.mp3\t200.0\tgenre---jazz",
        "track_0000003\tartist_000001\talbum_000001\t01/Café.mp3\t200.0\tgenre---jazz",
    ], encoding="latin-1")
    with pytest.raises(MetadataError) as error:
        JamendoLabelSource(metadata=tsv)
    assert str(error.value) == (f"{tsv}: line 4: byte 0xe9 is not UTF-8 (saved as Latin-1 or Windows-1252?); "
                                "metadata files must be UTF-8")


def test_missing_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="needs --metadata"):
        JamendoLabelSource()
    with pytest.raises(MetadataError, match="autotagging_genre-train.tsv"):
        JamendoLabelSource(metadata=tmp_path)


def test_user_genre_map_replaces_the_shipped_one(tmp_path):
    genre_map = tmp_path / "map.csv"
    genre_map.write_text("# my classes\ntag,genre\nrock,Guitar\npunkrock,Guitar\nelectronic,Synth\n"
                         "techno,Synth\n", encoding="utf-8")
    source = JamendoLabelSource(metadata=JAMENDO_SPLIT, genre_map=genre_map)
    assert source.taxonomy.genres == ("Guitar", "Synth")
    assert source.label(Path("14/214.mp3"), "14/214.mp3").genre == "Guitar"
    assert source.label(Path("16/3516.mp3"), "16/3516.mp3").genre == "Synth"
    assert source.label(Path("91/1091.mp3"), "91/1091.mp3").genre == "Synth"  # pop is not in this map
    assert source.label(Path("51/851.mp3"), "51/851.mp3").genre is None
    assert source.settings()["genre_map"] == str(genre_map)


@pytest.mark.parametrize("rel_path, key", [("41/241.mp3", "41/241.mp3"), ("41/241.low.mp3", "41/241.mp3"),
                                           ("../241.mp3", None), ("/241.mp3", None), ("a\\b.mp3", None),
                                           ("", None)])
def test_audio_key(rel_path, key):
    assert audio_key(rel_path) == key


@pytest.mark.parametrize("category, rel_path, tags, split", [
    ("mood/theme", "48/948.mp3", ("mood/theme---background",), "train"),
    ("mood/theme", "58/16658.mp3", ("mood/theme---epic", "mood/theme---inspiring", "mood/theme---powerful",
                                    "mood/theme---uplifting"), "validation"),
    ("instrument", "11/121111.mp3", ("instrument---saxophone",), "train"),
    ("top50", "46/946.mp3", ("genre---ambient", "genre---chillout", "genre---downtempo", "genre---easylistening",
                             "genre---electronic", "genre---lounge", "instrument---synthesizer"), "train"),
    ("genre", "51/851.mp3", ("genre---disco", "genre---funk", "genre---pop", "genre---rnb"), "train"),
])
def test_multilabel_categories_give_every_raw_tag_and_the_official_split(category, rel_path, tags, split):
    source = JamendoLabelSource(metadata=JAMENDO_SPLIT, category=category, multilabel=True)
    label = source.label(Path(rel_path), rel_path)
    assert (label.genre, label.tags, label.split, label.reason) == (None, tags, split, "")
    assert set(tags) <= set(source.taxonomy.genres) and source.multilabel
    assert source.settings()["category"] == category and source.settings()["taxonomy"] == "tags"


def test_single_label_categories_take_tracks_with_one_tag(tmp_path):
    source = JamendoLabelSource(metadata=JAMENDO_SPLIT, category="mood/theme")
    assert source.label(Path("30/9830.mp3"), "30/9830.mp3").genre == "mood/theme---heavy"
    several = source.label(Path("39/11839.mp3"), "39/11839.mp3")
    assert several.genre is None and several.tags == () and several.split == "test"
    assert several.reason == ("several tags (mood/theme---calm, mood/theme---melodic, mood/theme---relaxing, "
                              "mood/theme---soft): a single-label data set takes tracks with one (--task multilabel "
                              "uses them all)")
    # The classes are the tags of the tracks a single-label build can use.
    assert source.taxonomy.genres == ("mood/theme---background", "mood/theme---heavy", "mood/theme---meditative",
                                      "mood/theme---melodic")
    # Rows of other kinds in a file are ignored; a row without a tag of the category is skipped with the reason.
    tsv = write_tsv(tmp_path / "autotagging_instrument.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz\tinstrument---piano",
        "track_0000002\tartist_000001\talbum_000001\t02/2.mp3\t200.0\tgenre---rock\tinstrument---",
    ])
    source = JamendoLabelSource(metadata=tmp_path, category="instrument")
    assert source.files == [(tsv, None)]
    assert source.label(Path("01/1.mp3"), "01/1.mp3").genre == "instrument---piano"
    assert source.label(Path("02/2.mp3"), "02/2.mp3").reason == "no instrument tag"


def test_a_repeated_tag_counts_twice_in_the_genre_vote_and_once_as_a_raw_tag(tmp_path):
    write_tsv(tmp_path / "autotagging_genre.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz\tgenre---rock\tgenre---rock"])
    assert JamendoLabelSource(metadata=tmp_path).label(Path("01/1.mp3"), "01/1.mp3").genre == "Rock"  # as always
    tags = JamendoLabelSource(metadata=tmp_path, multilabel=True).label(Path("01/1.mp3"), "01/1.mp3").tags
    assert tags == ("genre---jazz", "genre---rock")


def test_category_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="--category 'mood' is unknown; choose one of genre, mood/theme"):
        JamendoLabelSource(metadata=JAMENDO_SPLIT, category="mood")
    with pytest.raises(ValueError, match="--genre-map applies to --labels jamendo --category genre without"):
        JamendoLabelSource(metadata=JAMENDO_SPLIT, category="genre", multilabel=True, genre_map=tmp_path / "x.csv")
    with pytest.raises(MetadataError, match="autotagging_moodtheme-train.tsv"):
        JamendoLabelSource(metadata=tmp_path, category="mood/theme")
    write_tsv(tmp_path / "autotagging_moodtheme.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tmood/theme---happy\tmood/theme---sad"])
    with pytest.raises(MetadataError, match="no track has a mood/theme tag alone.*--task multilabel uses them all"):
        JamendoLabelSource(metadata=tmp_path, category="mood/theme")
    assert JamendoLabelSource(metadata=tmp_path, category="mood/theme", multilabel=True).taxonomy.genres == (
        "mood/theme---happy", "mood/theme---sad")


def test_a_tag_holding_the_tag_separator_is_reported_and_left_out(tmp_path):
    tsv = write_tsv(tmp_path / "autotagging_moodtheme.tsv", [
        "track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tmood/theme---r;b\tmood/theme---calm"])
    source = JamendoLabelSource(metadata=tsv, category="mood/theme", multilabel=True)
    assert source.label(Path("01/1.mp3"), "01/1.mp3").tags == ("mood/theme---calm",)
    assert source.metadata_problems == (f"{tsv}: line 2: tag 'mood/theme---r;b' holds ';'; tag left out",)


def test_category_all_reads_every_kind_of_tag(tmp_path):
    rows = ["track_0000001\tartist_000001\talbum_000001\t01/1.mp3\t200.0\tgenre---jazz\tmood/theme---calm\t"
            "instrument---piano"]
    for split in ("train", "validation", "test"):
        write_tsv(tmp_path / f"autotagging-{split}.tsv", rows if split == "test" else [])
    source = JamendoLabelSource(metadata=tmp_path, category="all", multilabel=True)
    label = source.label(Path("01/1.mp3"), "01/1.mp3")
    assert label.tags == ("genre---jazz", "mood/theme---calm", "instrument---piano") and label.split == "test"
    assert [split for _, split in source.files] == ["train", "validation", "test"]

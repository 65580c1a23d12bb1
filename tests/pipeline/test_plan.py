"""Planning without audio: split precedence, artist-disjoint splits, genre selection and per-genre caps."""
from __future__ import annotations

import collections
import random
from pathlib import Path

import pytest

from genreslice.genre_getters import TrackLabel
from genreslice.metadata import Taxonomy, fma_taxonomy
from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.errors import ParameterError
from genreslice.pipeline.plan import TO_BUILD, GenreSelection, plan_build
from genreslice.pipeline.tracks import TrackRow


class TableSource:
    """A label source over a dict ``rel_path -> TrackLabel``, like the metadata sources."""

    name = "table"
    reads_audio = False
    metadata_problems = ()

    def __init__(self, labels: dict[str, TrackLabel]) -> None:
        self.labels = labels
        self.taxonomy = fma_taxonomy()

    def settings(self) -> dict:
        return {"source": self.name}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        return self.labels.get(rel_path, TrackLabel(None, None, reason="no row", unlisted=True))

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return sorted({label.track_id for label in self.labels.values()} - labelled_ids)


def files_for(paths) -> list[AudioFile]:
    return [AudioFile(path=Path("/music") / rel, rel_path=rel, size=1000, mtime_ns=1) for rel in paths]


def plan_of(labels: dict[str, TrackLabel], extra_files=(), **options):
    return plan_build(files_for([*labels, *extra_files]), TableSource(labels), **options)


def by_path(plan) -> dict[str, TrackRow]:
    return {row.path: row for row in plan.rows}


def test_official_split_wins_and_artists_are_never_divided():
    labels = {
        "a1.mp3": TrackLabel("Rock", "A", track_id="1", split="train"),
        "a2.mp3": TrackLabel("Rock", "A", track_id="2", split="train"),
        "a3.mp3": TrackLabel("Rock", "A", track_id="3", split="test"),       # conflicts: moved to train
        "a4.mp3": TrackLabel("Rock", "A", track_id="4"),                     # no split: joins its artist
        "b1.mp3": TrackLabel("Jazz", "B", track_id="5", split="test"),
        "c1.mp3": TrackLabel("Jazz", "C", track_id="6"),                     # no official split at all: hash
        "d1.mp3": TrackLabel("Pop", "D", track_id="7", split="validation"),
        "d2.mp3": TrackLabel("Pop", "D", track_id="8", split="test"),        # a tie: train, validation, test
    }
    plan = plan_of(labels, extra_files=["stray.mp3"])
    rows = by_path(plan)
    assert [rows[f"a{i}.mp3"].split for i in range(1, 5)] == ["train"] * 4
    assert rows["b1.mp3"].split == "test"
    assert rows["d1.mp3"].split == rows["d2.mp3"].split == "validation"
    assert plan.split_counts == {"official": 6, "artist": 1, "artist_hash": 1} and plan.moved == 2
    assert plan.unlisted == 1 and rows["stray.mp3"].status == "skipped"
    assert plan.missing_audio == []


def test_no_artist_in_two_splits_whatever_the_metadata_says():
    rng = random.Random(7)
    labels = {f"{n}.mp3": TrackLabel(rng.choice(["Rock", "Jazz", "Pop"]), f"artist {rng.randrange(40)}",
                                     track_id=str(n), split=rng.choice(["train", "validation", "test", None]))
              for n in range(600)}
    plan = plan_of(labels)
    splits = collections.defaultdict(set)
    for row in plan.rows:
        splits[row.artist].add(row.split)
    assert len(splits) == 40 and all(len(names) == 1 for names in splits.values())


def test_genre_selection_and_exclusion_by_top_level_name():
    labels = {f"{genre}{n}.mp3": TrackLabel(genre, f"{genre}{n}", track_id=f"{genre}{n}")
              for genre in ("Rock", "Jazz", "Hip-Hop") for n in range(3)}
    plan = plan_of(labels, selection=GenreSelection(genres=("rock", "HIP HOP")))
    kept = {row.genre for row in plan.rows if row.status == TO_BUILD}
    assert kept == {"Rock", "Hip-Hop"} and set(plan.audio) == {f"{g}{n}.mp3" for g in ("Rock", "Hip-Hop")
                                                                 for n in range(3)}
    plan = plan_of(labels, selection=GenreSelection(exclude_genres=("Jazz",)))
    assert {row.genre for row in plan.rows if row.status == TO_BUILD} == {"Rock", "Hip-Hop"}
    assert {row.reason for row in plan.rows if row.genre == "Jazz"} == \
        {"genre Jazz is excluded (--exclude-genres)"}


@pytest.mark.parametrize("name, hint", [("Schlager", ""), ("Punk", "(part of Rock; select Rock)")])
def test_unknown_genre_name_lists_the_valid_ones(name, hint):
    with pytest.raises(ParameterError) as error:
        plan_of({}, selection=GenreSelection(genres=(name,)))
    message = str(error.value)
    assert f"unknown genre {name!r}" in message and hint in message
    assert "valid genres: Blues, Classical, Country, Easy Listening, Electronic" in message


def test_every_unknown_name_is_listed_and_an_empty_selection_refused():
    with pytest.raises(ParameterError, match="unknown genre 'Metal' \\(part of Rock; select Rock\\), 'Foo'; valid"):
        plan_of({}, selection=GenreSelection(genres=("Rock", "Metal", "Foo")))
    with pytest.raises(ParameterError, match="leave no genre to build"):
        plan_of({}, selection=GenreSelection(genres=("Rock",), exclude_genres=("rock",)))


def test_cap_is_per_genre_and_split_by_tracks_and_stable():
    labels = {}
    for n in range(200):
        split = ("train", "validation", "test")[n % 3]
        labels[f"{n:03d}.mp3"] = TrackLabel(("Rock", "Jazz")[n % 2], f"artist {n}", track_id=str(n), split=split)
    plan = plan_of(labels, selection=GenreSelection(max_tracks_per_genre=10))
    kept = collections.Counter((row.split, row.genre) for row in plan.rows if row.status == TO_BUILD)
    assert kept == {(split, genre): 10 for split in ("train", "validation", "test") for genre in ("Rock", "Jazz")}
    capped = [row for row in plan.rows if row.status == "skipped"]
    assert len(capped) == 200 - 60 and all("over --max-tracks-per-genre 10" in row.reason for row in capped)
    chosen = {row.track_id for row in plan.rows if row.status == TO_BUILD}
    # The same choice in any file order, and adding tracks displaces only a few of the chosen ones.
    shuffled = dict(random.Random(3).sample(sorted(labels.items()), len(labels)))
    assert {row.track_id for row in plan_of(shuffled, selection=GenreSelection(max_tracks_per_genre=10)).rows
            if row.status == TO_BUILD} == chosen
    more = {**labels, **{f"x{n}.mp3": TrackLabel("Rock", f"new {n}", track_id=f"x{n}", split="train")
                         for n in range(10)}}
    grown = {row.track_id for row in plan_of(more, selection=GenreSelection(max_tracks_per_genre=10)).rows
             if row.status == TO_BUILD}
    assert len(chosen - grown) <= 10 and len(chosen & grown) >= 50


def test_cap_counts_tracks_not_slices_and_rejects_zero():
    with pytest.raises(ParameterError, match="max_tracks_per_genre=0"):
        GenreSelection(max_tracks_per_genre=0)


def test_failed_and_clashing_files_are_decided_in_the_plan():
    labels = {"a.mp3": TrackLabel("Rock", "A", track_id="7"), "b.mp3": TrackLabel("Rock", "B", track_id="7"),
              "c.mp3": TrackLabel("Rock", "C", track_id="../etc")}
    rows = by_path(plan_of(labels))
    assert rows["a.mp3"].status == TO_BUILD
    assert rows["b.mp3"].status == "failed" and rows["b.mp3"].reason == "track id 7 is also used by a.mp3"
    assert rows["c.mp3"].status == "failed" and "cannot name a file" in rows["c.mp3"].reason


def test_not_built_groups_reasons_of_one_kind():
    labels = {f"{n}.mp3": TrackLabel(None, None, reason=f"track {n} has no row in tracks.csv", track_id=str(n))
              for n in range(5)}
    labels["x.mp3"] = TrackLabel(None, None, reason="genre 'Schlager' is not in the genre taxonomy")
    groups = plan_of(labels).not_built()
    assert groups[0][:3] == ("skipped", "track N has no row in tracks.csv", 5)
    assert groups[1][:3] == ("skipped", "genre '…' is not in the genre taxonomy", 1)


GENRES4 = ("Rock", "Jazz", "Folk", "Classical")


def small_collection(artists_per_genre: int, tracks_per_artist: int = 2, prefix: str = "") -> dict[str, TrackLabel]:
    return {f"{prefix}{genre} artist {a}/{t}.mp3": TrackLabel(genre, f"{prefix}{genre} artist {a}",
                                                              track_id=f"{prefix}{genre}-{a}-{t}")
            for genre in GENRES4 for a in range(artists_per_genre) for t in range(tracks_per_artist)}


def classes_per_split(plan) -> dict[str, set[str]]:
    found = collections.defaultdict(set)
    for row in plan.rows:
        if row.status == TO_BUILD:
            found[row.split].add(row.genre)
    return found


@pytest.mark.parametrize("ratios", [(0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (0.34, 0.33, 0.33)])
def test_three_artists_per_class_put_every_class_in_every_split(ratios):
    plan = plan_of(small_collection(3), split_ratios=ratios)
    assert classes_per_split(plan) == {split: set(GENRES4) for split in ("train", "validation", "test")}
    assert plan.split_warnings() == [f"{genre} has only 2 tracks in the {split} split"
                                     for genre in sorted(GENRES4) for split in ("train", "validation", "test")
                                     if plan.balance()[genre][split] == 2]
    splits = collections.defaultdict(set)
    for row in plan.rows:
        splits[row.artist].add(row.split)
    assert all(len(names) == 1 for names in splits.values())  # still artist-disjoint


def test_the_pure_hash_would_have_left_classes_out():
    """The case the stratification is for: the artist hash alone leaves some class out of some split."""
    from genreslice.pipeline.splits import assign_split, split_key

    labels = small_collection(3)
    hashed = collections.defaultdict(set)
    for label in labels.values():
        hashed[assign_split(split_key(label.artist, label.track_id), (0.8, 0.1, 0.1))].add(label.genre)
    assert any(hashed[split] != set(GENRES4) for split in ("train", "validation", "test"))
    assert plan_of(labels, split_ratios=(0.8, 0.1, 0.1)).balanced > 0


def test_stratified_splits_are_deterministic_and_move_only_to_fill_gaps():
    many = small_collection(12)
    first, second = plan_of(many), plan_of(dict(reversed(list(many.items()))))
    assert {row.path: row.split for row in first.rows} == {row.path: row.split for row in second.rows}
    # Adding another collection's artists leaves the first collection's splits as they were.
    grown = plan_of({**many, **small_collection(3, prefix="new ")})
    assert {row.path: row.split for row in grown.rows if row.path in many} == \
        {row.path: row.split for row in first.rows}
    # A class the hash already spreads over every split keeps the hash's splits; the others move one artist a gap.
    from genreslice.pipeline.splits import DEFAULT_SPLIT_RATIOS, assign_split, split_key

    hashed = {row.path: assign_split(split_key(row.artist, row.track_id), DEFAULT_SPLIT_RATIOS) for row in first.rows}
    for genre in GENRES4:
        paths = [row.path for row in first.rows if row.genre == genre]
        gaps = 3 - len({hashed[path] for path in paths})
        changed_artists = {first_row.artist for first_row in first.rows
                           if first_row.path in paths and first_row.split != hashed[first_row.path]}
        assert len(changed_artists) == gaps


def test_a_class_with_fewer_than_three_artists_is_left_to_the_hash_and_warned_about():
    labels = {**small_collection(4), "solo/1.mp3": TrackLabel("Blues", "Solo", track_id="solo-1")}
    plan = plan_of(labels, split_ratios=(0.8, 0.1, 0.1))
    missing = [split for split in ("train", "validation", "test") if plan.balance()["Blues"][split] == 0]
    assert len(missing) == 2
    (present,) = set(("train", "validation", "test")) - set(missing)
    assert [line for line in plan.split_warnings() if line.startswith("Blues")] == \
        [f"Blues has only 1 track in the {present} split" if split == present else f"Blues has no tracks in the {split} split"
         for split in ("train", "validation", "test")]


def test_split_warnings_name_empty_and_thin_splits_and_ignore_splits_meant_to_be_empty():
    from genreslice.pipeline.splits import split_warnings

    table = {"Rock": {"train": 40, "validation": 0, "test": 3}, "Jazz": {"train": 40, "validation": 6, "test": 1}}
    assert split_warnings(table, (0.8, 0.2, 0.0)) == ["Rock has no tracks in the validation split"]
    assert split_warnings(table, (0.8, 0.1, 0.1)) == [
        "Jazz has only 1 track in the test split",
        "Rock has no tracks in the validation split",
        "Rock has only 3 tracks in the test split",
    ]


def test_a_move_never_empties_a_split_of_another_class():
    """An artist of several genres moves with all its tracks: it is not taken from a split where it holds the only
    tracks of one of its genres, and it counts for every genre it has tracks of."""
    from genreslice.pipeline.splits import split_key

    labels = {}
    for number in range(40):  # many artists of several genres, so that the hash leaves gaps to fill
        genres = ("Rock", "Jazz") if number % 3 == 0 else ("Folk",) if number % 3 == 1 else ("Jazz",)
        for index, genre in enumerate(genres):
            labels[f"{number}/{index}.mp3"] = TrackLabel(genre, f"player {number}", track_id=f"{number}-{index}")
    for ratios in ((0.6, 0.2, 0.2), (0.8, 0.1, 0.1), (0.5, 0.25, 0.25)):
        plan = plan_of(labels, split_ratios=ratios)
        assert classes_per_split(plan) == {split: {"Rock", "Jazz", "Folk"} for split in ("train", "validation", "test")}
        splits = collections.defaultdict(set)
        for row in plan.rows:
            splits[split_key(row.artist, row.track_id)].add(row.split)
        assert all(len(names) == 1 for names in splits.values())


class TagSource(TableSource):
    """A multi-label ``TableSource``: its classes are the tags of its labels."""

    multilabel = True

    def __init__(self, labels: dict[str, TrackLabel]) -> None:
        super().__init__(labels)
        self.taxonomy = Taxonomy.of_classes(tag for label in labels.values() for tag in label.tags)


def test_multilabel_rows_carry_their_tags_and_selection_removes_tags_not_tracks():
    labels = {f"{artist}{n}.mp3": TrackLabel(None, artist, track_id=f"{artist}{n}", tags=tags, split=split)
              for artist, split, tags in (("a", "train", ("piano", "happy")), ("b", "validation", ("piano",)),
                                          ("c", "test", ("drums", "sad")), ("d", "train", ("sad",)))
              for n in range(2)}
    plan = plan_build(files_for(labels), TagSource(labels))
    rows = by_path(plan)
    assert plan.multilabel and rows["a0.mp3"].tags == "piano;happy" and rows["a0.mp3"].genre == ""
    assert plan.balance() == {"drums": {"train": 0, "validation": 0, "test": 2},
                              "happy": {"train": 2, "validation": 0, "test": 0},
                              "piano": {"train": 2, "validation": 2, "test": 0},
                              "sad": {"train": 2, "validation": 0, "test": 2}}
    chosen = plan_build(files_for(labels), TagSource(labels),
                        selection=GenreSelection(genres=("piano", "sad"), exclude_genres=("sad",)))
    rows = by_path(chosen)
    assert [rows[f"{artist}0.mp3"].tags for artist in "abc"] == ["piano", "piano", ""]
    assert rows["c0.mp3"].status == rows["d0.mp3"].status == "skipped"
    assert rows["c0.mp3"].reason == "no tag selected (tags: drums, sad; --genres, --exclude-genres)"
    with pytest.raises(ParameterError, match="--max-tracks-per-genre applies to single-label builds"):
        plan_build(files_for(labels), TagSource(labels), selection=GenreSelection(max_tracks_per_genre=1))


def test_min_tracks_per_class_drops_rare_classes_with_a_report():
    labels = {f"{genre}{n}.mp3": TrackLabel(genre, f"{genre}{n}", track_id=f"{genre}{n}")
              for genre, count in (("Rock", 3), ("Jazz", 2), ("Pop", 1)) for n in range(count)}
    plan = plan_of(labels, selection=GenreSelection(min_tracks_per_class=2))
    assert plan.rare_classes == {"Pop": 1} and set(plan.balance()) == {"Jazz", "Rock"}
    assert by_path(plan)["Pop0.mp3"].reason == "class Pop has 1 tracks, fewer than --min-tracks-per-class 2"
    assert plan.summary()["classes_below_min_tracks"] == {"Pop": 1}
    assert plan.selection["min_tracks_per_class"] == 2
    assert "min_tracks_per_class" not in plan_of(labels).selection  # recorded only when asked for
    # Multi-label: the rare tag goes; a track whose every tag is rare is skipped, with the counts.
    tagged = {"x.mp3": TrackLabel(None, "a", track_id="x", tags=("piano", "harp")),
              "y.mp3": TrackLabel(None, "b", track_id="y", tags=("piano",)),
              "z.mp3": TrackLabel(None, "c", track_id="z", tags=("flute",))}
    plan = plan_build(files_for(tagged), TagSource(tagged), selection=GenreSelection(min_tracks_per_class=2))
    rows = by_path(plan)
    assert plan.rare_classes == {"flute": 1, "harp": 1}
    assert (rows["x.mp3"].tags, rows["x.mp3"].status) == ("piano", TO_BUILD)
    assert rows["z.mp3"].status == "skipped"
    assert rows["z.mp3"].reason == "every tag has fewer than --min-tracks-per-class 2 tracks (flute (1))"
    # A minimum no class reaches is refused, not a data set without classes.
    with pytest.raises(ParameterError, match="--min-tracks-per-class 4 leaves no class to build: the largest has 3 "
                                             r"tracks \(Rock\)"):
        plan_of(labels, selection=GenreSelection(min_tracks_per_class=4))


def copies_of(tmp_path, names: dict[str, bytes]) -> list[AudioFile]:
    """Real files with the given contents (copies are files of equal bytes)."""
    files = []
    for name, content in names.items():
        (tmp_path / name).write_bytes(content)
        files.append(AudioFile(path=tmp_path / name, rel_path=name, size=len(content), mtime_ns=1))
    return files


def test_copies_under_other_artists_are_split_together(tmp_path):
    # Ten artists with a song each; the song of artist 0 is also filed under artists 5 and 9 (one file, three
    # names), and two other files have the same size as it but other bytes.
    song = b"a recording" * 10
    names = {f"artist{n}.mp3": bytes([n]) * 110 for n in range(10)}
    names.update({"artist0.mp3": song, "artist5.mp3": song, "artist9.mp3": song})
    labels = {name: TrackLabel("Rock", name.removesuffix(".mp3"), track_id=f"id{n}")
              for n, name in enumerate(names)}
    plan = plan_build(copies_of(tmp_path, names), TableSource(labels), split_ratios=(0.4, 0.3, 0.3))
    rows = by_path(plan)
    assert [(group.paths, group.policy) for group in plan.duplicates] == [
        (("artist0.mp3", "artist5.mp3", "artist9.mp3"), "group")]
    assert len({rows[name].split for name in ("artist0.mp3", "artist5.mp3", "artist9.mp3")}) == 1
    assert plan.duplicate_counts() == {"policy": "auto", "largest_merged_unit_tracks": 3, "exact_groups": 1,
                                       "near_groups": 0, "tracks_fingerprinted": None, "files_in_groups": 3,
                                       "grouped": 1, "in_several_splits": 0, "copies_dropped": 0}
    # keep: reported only; the copies follow their own artists' splits (here not all one split).
    kept = plan_build(copies_of(tmp_path, names), TableSource(labels), split_ratios=(0.4, 0.3, 0.3),
                      duplicates="keep")
    assert kept.duplicates[0].policy == "keep"
    assert len({by_path(kept)[name].split for name in ("artist0.mp3", "artist5.mp3", "artist9.mp3")}) > 1
    assert kept.duplicate_counts()["in_several_splits"] == 1


def test_copies_in_different_official_splits_keep_the_later_split_by_default(tmp_path):
    song = b"the same song" * 9
    names = {"a.mp3": song, "b.mp3": song, "c.mp3": song, "d.mp3": b"another one" * 11}
    labels = {"a.mp3": TrackLabel("Rock", "A", track_id="1", split="train"),
              "b.mp3": TrackLabel("Rock", "B", track_id="2", split="test"),
              "c.mp3": TrackLabel("Rock", "C", track_id="3", split="validation"),
              "d.mp3": TrackLabel("Rock", "D", track_id="4", split="train")}
    plan = plan_build(copies_of(tmp_path, names), TableSource(labels))
    rows = by_path(plan)
    assert plan.duplicates[0].policy == "drop-extra" and plan.moved == 0
    assert rows["b.mp3"].status == TO_BUILD and rows["b.mp3"].split == "test"
    for name, split in (("a.mp3", "train"), ("c.mp3", "validation")):
        assert rows[name].split == split and rows[name].status == "skipped"
        assert rows[name].reason == "a copy of 'b.mp3' (the same file) in the test split (--duplicates drop-extra)"
    assert plan.duplicate_counts()["copies_dropped"] == 2
    # group moves official splits, and says so; keep leaves all three where they are.
    grouped = plan_build(copies_of(tmp_path, names), TableSource(labels), duplicates="group")
    assert {row.split for row in grouped.rows if row.path != "d.mp3"} == {"train"} and grouped.moved == 2
    kept = plan_build(copies_of(tmp_path, names), TableSource(labels), duplicates="keep")
    assert all(row.status == TO_BUILD for row in kept.rows) and kept.moved == 0


def test_auto_never_moves_an_official_split_through_a_copys_artist(tmp_path):
    # p1 (artist P, official test) is a copy of q1 (artist Q, no split of its own), whose artist's other track is
    # officially train: grouping would move P's test tracks into train. auto drops the extra copy instead.
    song = b"shared recording" * 7
    names = {"p1.mp3": song, "q1.mp3": song, "p2.mp3": b"p's other song" * 8, "q2.mp3": b"q's other song" * 8}
    labels = {"p1.mp3": TrackLabel("Rock", "P", track_id="1", split="test"),
              "p2.mp3": TrackLabel("Rock", "P", track_id="2", split="test"),
              "q1.mp3": TrackLabel("Rock", "Q", track_id="3"),
              "q2.mp3": TrackLabel("Rock", "Q", track_id="4", split="train")}
    plan = plan_build(copies_of(tmp_path, names), TableSource(labels))
    rows = by_path(plan)
    assert plan.duplicates[0].policy == "drop-extra" and plan.moved == 0
    assert [rows[name].split for name in ("p1.mp3", "p2.mp3", "q1.mp3", "q2.mp3")] == ["test", "test", "train", "train"]
    assert rows["q1.mp3"].status == "skipped" and rows["p1.mp3"].status == TO_BUILD


def test_classes_are_counted_after_the_extra_copies_are_dropped(tmp_path):
    song = b"one jazz song" * 8
    names = {"a.mp3": song, "b.mp3": song, "c.mp3": b"a rock song!" * 9, "d.mp3": b"another rock" * 9}
    labels = {"a.mp3": TrackLabel("Jazz", "A", track_id="1", split="train"),
              "b.mp3": TrackLabel("Jazz", "B", track_id="2", split="test"),
              "c.mp3": TrackLabel("Rock", "C", track_id="3", split="train"),
              "d.mp3": TrackLabel("Rock", "D", track_id="4", split="test")}
    plan = plan_build(copies_of(tmp_path, names), TableSource(labels),
                      selection=GenreSelection(min_tracks_per_class=2))
    assert plan.rare_classes == {"Jazz": 1} and set(plan.balance()) == {"Rock"}

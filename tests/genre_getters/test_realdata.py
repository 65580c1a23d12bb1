"""The label sources over the full real metadata files in ../shared/data (skipped when absent).

Figures checked by hand on the files: ``wc -l`` gives 32,573 / 11,044 / 11,480 lines for the split-0 train /
validation / test TSVs (one header line each, 55,094 tracks), and FMA's genres.csv has 163 rows, 16 with parent 0.
"""
from __future__ import annotations

import collections
import csv
import json
from pathlib import Path

import pytest

from genreslice.genre_getters.jamendo import JamendoLabelSource
from genreslice.metadata import fma_taxonomy, genre_key, load_fma_genres, load_genre_map
from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.plan import TO_BUILD, plan_build
from tests.helpers import SHARED_DATA

JAMENDO = SHARED_DATA / "mtg-jamendo"
SPLIT_0 = JAMENDO / "split-0"
FMA_GENRES = SHARED_DATA / "fma" / "genres.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not SPLIT_0.is_dir() or not FMA_GENRES.is_file(), reason="../shared/data is absent"),
]


@pytest.fixture(scope="module")
def source():
    return JamendoLabelSource(metadata=SPLIT_0)


@pytest.fixture(scope="module")
def raw_rows():
    """The TSV rows split by hand (no genreslice code): ``split -> [fields]``."""
    rows = {}
    for split in ("train", "validation", "test"):
        text = (SPLIT_0 / f"autotagging_genre-{split}.tsv").read_bytes().decode("utf-8")
        assert text.count("\r\n") == text.count("\n")  # CRLF throughout
        rows[split] = [line.split("\t") for line in text.split("\r\n")[1:] if line]
    return rows


def test_jamendo_rows_per_split(source, raw_rows):
    assert {split: len(rows) for split, rows in raw_rows.items()} == \
        {"train": 32572, "validation": 11043, "test": 11479}
    assert source.metadata_problems == ()
    assert len(source.missing_audio(set())) == 55094
    per_split = collections.Counter(row.split for row in source._rows.values())
    assert per_split == {"train": 32572, "validation": 11043, "test": 11479}


def test_every_real_tag_is_in_the_map_and_every_label_in_the_genre_set(source, raw_rows):
    tags = {field.removeprefix("genre---") for rows in raw_rows.values() for row in rows for field in row[5:]}
    assert len(tags) == 87 and {genre_key(tag) for tag in tags} <= set(load_genre_map())
    labels = [source.label(Path(row[3]), row[3]) for rows in raw_rows.values() for row in rows]
    genres = collections.Counter(label.genre for label in labels)
    assert set(genres) - {None} <= set(source.taxonomy.genres) <= set(fma_taxonomy().genres)
    # Skipped: exactly the tracks whose tags are all ones the map ignores (decades, "atmospheric", ...).
    ignored = {tag for tag, genre in load_genre_map().items() if not genre}
    by_hand = sum(1 for rows in raw_rows.values() for row in rows
                  if all(genre_key(field.removeprefix("genre---")) in ignored for field in row[5:]))
    assert genres[None] == by_hand == 61


def test_official_split_is_artist_disjoint_and_kept(source, raw_rows):
    files = [AudioFile(path=Path("/audio") / row[3], rel_path=row[3], size=1, mtime_ns=1)
             for rows in raw_rows.values() for row in rows]
    plan = plan_build(files, source)
    built = [row for row in plan.rows if row.status == TO_BUILD]
    assert len(built) == 55094 - 61 and plan.moved == 0
    assert plan.split_counts == {"official": 55094 - 61, "artist": 0, "artist_hash": 0}
    official = {row[3]: split for split, rows in raw_rows.items() for row in rows}
    assert all(row.split == official[row.path] for row in built)
    splits_by_artist = collections.defaultdict(set)
    for row in built:
        splits_by_artist[row.artist].add(row.split)
    assert all(len(splits) == 1 for splits in splits_by_artist.values())
    assert plan.missing_audio == [] and plan.unlisted == 0


def test_tag_map_merges_land_on_mapped_tags():
    """MTG-Jamendo's own tag merges (tag_map.json) point at tags our map places."""
    merges = json.loads((JAMENDO / "tag_map.json").read_text(encoding="utf-8"))["genre"]
    mapping = load_genre_map()
    assert all(genre_key(target) in mapping for target in merges.values())


def test_shipped_fma_genres_are_the_real_file():
    assert (Path(__file__).parents[2] / "metadata" / "fma_genres.csv").read_bytes() == FMA_GENRES.read_bytes()
    with open(FMA_GENRES, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 163 and sum(row["parent"] == "0" for row in rows) == 16
    assert len(load_fma_genres()) == 163


#: ``--category -> (file stem, rows per split by the data set's README, tags)``.
CATEGORY_FILES = {
    "mood/theme": ("autotagging_moodtheme", {"train": 9949, "validation": 3802, "test": 4231}, 56),
    "instrument": ("autotagging_instrument", {"train": 14395, "validation": 5466, "test": 5115}, 40),
    "top50": ("autotagging_top50tags", {"train": 32136, "validation": 10888, "test": 11356}, 50),
}


@pytest.mark.parametrize("category", list(CATEGORY_FILES))
def test_every_category_plans_every_row_with_its_tags_in_its_official_split(category):
    stem, rows_per_split, n_tags = CATEGORY_FILES[category]
    raw = {split: [line.split("\t") for line in (SPLIT_0 / f"{stem}-{split}.tsv").read_bytes().decode("utf-8")
                   .split("\r\n")[1:] if line] for split in rows_per_split}
    assert {split: len(rows) for split, rows in raw.items()} == rows_per_split
    source = JamendoLabelSource(metadata=SPLIT_0, category=category, multilabel=True)
    assert source.metadata_problems == () and len(source.taxonomy.genres) == n_tags
    files = [AudioFile(path=Path("/audio") / row[3], rel_path=row[3], size=1, mtime_ns=1)
             for rows in raw.values() for row in rows]
    plan = plan_build(files, source)
    # Every row is a track to build, with the tags of its row (by hand: the fields after DURATION) and its split.
    by_path = {row[3]: (split, ";".join(row[5:])) for split, rows in raw.items() for row in rows}
    assert len(plan.rows) == len(by_path) == sum(rows_per_split.values())
    assert all(row.status == TO_BUILD and (row.split, row.tags) == by_path[row.path] for row in plan.rows)
    assert plan.moved == 0 and plan.missing_audio == [] and plan.multilabel
    splits_by_artist = collections.defaultdict(set)
    for row in plan.rows:
        splits_by_artist[row.artist].add(row.split)
    assert all(len(splits) == 1 for splits in splits_by_artist.values())
    # Tag counts per split, counted by hand, are the plan's balance.
    by_hand = collections.Counter((tag, split) for split, rows in raw.items() for row in rows for tag in row[5:])
    assert {(tag, split): count for tag, counts in plan.balance().items() for split, count in counts.items()
            if count} == dict(by_hand)
    # Single-label: the tracks with one tag of the category, the others skipped with them in the reason.
    single = plan_build(files, JamendoLabelSource(metadata=SPLIT_0, category=category))
    built = sum(row.status == TO_BUILD for row in single.rows)
    assert built == sum(len(row) == 6 for rows in raw.values() for row in rows) > 0
    assert all("several tags" in row.reason for row in single.rows if row.status != TO_BUILD)

"""Labels, artist and official split of MTG-Jamendo tracks from its autotagging TSV files.

A TSV (``autotagging_genre.tsv``, or ``autotagging_genre-{train,validation,test}.tsv`` in a split folder such as
``splits/split-0/``) has the header ``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``, tab-separated, CRLF line
endings, and one extra column per tag (``genre---rock``): a row has six fields or more. ``PATH`` is relative to
the audio folder (``41/241.mp3``; the low-quality copy ``41/241.low.mp3`` matches it too).

The category (``--category``) chooses the files and the tags read: ``genre`` (``autotagging_genre``),
``mood/theme`` (``autotagging_moodtheme``), ``instrument`` (``autotagging_instrument``), ``top50``
(``autotagging_top50tags``: the 50 most frequent tags of every kind) and ``all`` (``autotagging``: every tag).
Tags of other kinds in a row are ignored.

Genre, single-label (the default): tags map to top-level genres through ``metadata/jamendo_genre_map.csv`` (or
``--genre-map FILE``). The label is the genre most of a track's mapped tags name; on a tie, the genre whose first
row comes earliest in the map. Every other category, and every category with ``multilabel=True``
(``--task multilabel``), takes the raw tags as the classes, named as the data set and its published baselines name
them (``mood/theme---happy``): a multi-label build labels a track with all of them, a single-label one takes the
tracks that have exactly one.

Files in a split folder give the official split; a single TSV gives none (the build draws one by artist).
"""
from __future__ import annotations

import collections
import os
import re
from pathlib import Path
from typing import NamedTuple

from genreslice.errors import ParameterError
from genreslice.genre_getters.base import TAG_SEPARATOR, TrackLabel, inside_audio_folder
from genreslice.metadata import MetadataError, Taxonomy, genre_key, load_genre_map, map_taxonomy, open_metadata

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
#: ``--category`` -> (stem of its TSV files, prefix of the tags it reads; empty: every tag).
CATEGORIES = {
    "genre": ("autotagging_genre", "genre---"),
    "mood/theme": ("autotagging_moodtheme", "mood/theme---"),
    "instrument": ("autotagging_instrument", "instrument---"),
    "top50": ("autotagging_top50tags", ""),
    "all": ("autotagging", ""),
}
GENRE_PREFIX = "genre---"
#: What separates a tag's kind from its name (``genre---rock``).
KIND_SEPARATOR = "---"
_TRACK_ID = re.compile(r"^track_[0-9]{1,12}$")
_ARTIST_ID = re.compile(r"^artist_[0-9]{1,12}$")


class _Row(NamedTuple):
    """One usable TSV row."""

    track_id: str
    artist_id: str
    path: str
    tags: tuple[str, ...]
    split: str | None
    line: int


def split_files(category: str = "genre") -> dict[str, str]:
    """``split -> file name`` of a category's files in a split folder."""
    stem = CATEGORIES[category][0]
    return {split: f"{stem}-{split}.tsv" for split in ("train", "validation", "test")}


def find_tsv_files(path: str | os.PathLike, category: str = "genre") -> list[tuple[Path, str | None]]:
    """``(file, official split or None)`` for a TSV file or a split folder (the files of ``category``)."""
    path = Path(path)
    if path.is_file():
        return [(path, None)]
    names, single = split_files(category), f"{CATEGORIES[category][0]}.tsv"
    if path.is_dir():
        if all((path / name).is_file() for name in names.values()):
            return [(path / name, split) for split, name in names.items()]
        if (path / single).is_file():
            return [(path / single, None)]
    raise MetadataError(
        f"MTG-Jamendo metadata {os.fspath(path)!r}: expected a {category} TSV file, or a split folder holding "
        f"{', '.join(names.values())} (or {single})"
    )


def audio_key(rel_path: str) -> str | None:
    """How a ``PATH`` value or an audio file's relative path is matched; None for a path outside the audio folder."""
    key = inside_audio_folder(rel_path)
    if key is None:
        return None
    return key[: -len(".low.mp3")] + ".mp3" if key.endswith(".low.mp3") else key


def read_tsv(path: Path, split: str | None, problems: list[str], prefix: str = GENRE_PREFIX) -> list[_Row]:
    """Rows of one MTG-Jamendo TSV with their tags that start with ``prefix`` (whole, as ``genre---rock``; an empty
    prefix keeps every tag of the form ``kind---name``); bad rows are described in ``problems`` and left out.

    Raises
    ------
    MetadataError
        The file cannot be read, is empty, or its header is not MTG-Jamendo's.
    """
    with open_metadata(path) as handle:
        # A line ends at "\r\n" (as in the real files), "\n" or "\r" only: str.splitlines would also split inside a
        # field at characters such as \x0c or \u2028, and the line numbers in messages would drift.
        lines = [line.rstrip("\r\n") for line in handle]
    if not any(line.strip() for line in lines):
        raise MetadataError(f"{path}: empty file; expected the header {' '.join(HEADER)} (tab-separated)")
    if tuple(lines[0].split("\t")) != HEADER:
        raise MetadataError(f"{path}: line 1: header must be {' '.join(HEADER)} (tab-separated), "
                            f"found {lines[0][:120]!r}")
    rows = []

    def report(number: int, message: str) -> None:
        problems.append(f"{path}: line {number}: {message}; row skipped")

    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(HEADER):
            report(number, f"expected at least {len(HEADER)} tab-separated fields, found {len(fields)}")
            continue
        track_id, artist_id, _, rel_path = (field.strip() for field in fields[:4])
        if not _TRACK_ID.match(track_id):
            report(number, f"TRACK_ID {track_id[:40]!r} is not like track_0000214")
        elif not _ARTIST_ID.match(artist_id):
            report(number, f"ARTIST_ID {artist_id[:40]!r} is not like artist_000005")
        elif audio_key(rel_path) is None:
            report(number, f"PATH {rel_path[:80]!r} leaves the audio folder; it is never read")
        else:
            tags = tuple(tag for tag in (field.strip() for field in fields[5:])
                         if tag.startswith(prefix) and KIND_SEPARATOR in tag and not tag.endswith(KIND_SEPARATOR))
            odd = [tag for tag in tags if TAG_SEPARATOR in tag]
            if odd:  # tracks.csv joins a track's tags with it
                problems.append(f"{path}: line {number}: tag {odd[0][:60]!r} holds {TAG_SEPARATOR!r}; tag left out")
                tags = tuple(tag for tag in tags if TAG_SEPARATOR not in tag)
            rows.append(_Row(track_id, artist_id, rel_path, tags, split, number))
    return rows


def choose_genre(tags: tuple[str, ...], mapping: dict[str, str], rank: dict[str, int]) -> str | None:
    """The genre most of ``tags`` map to; a tie goes to the genre ranked first (earliest in the map)."""
    genres = [mapping.get(genre_key(tag)) for tag in tags]
    counts = collections.Counter(genre for genre in genres if genre)
    if not counts:
        return None
    return max(counts, key=lambda genre: (counts[genre], -rank[genre]))


class JamendoLabelSource:
    """Labels, artists and official splits from MTG-Jamendo autotagging TSV files.

    Parameters
    ----------
    metadata : str or os.PathLike
        A TSV of the category, or a split folder (``splits/split-0/``) holding its three split files.
    genre_map : str or os.PathLike, optional
        A ``tag,genre`` CSV replacing ``metadata/jamendo_genre_map.csv`` (single-label genre only).
    category : str
        One of :data:`CATEGORIES`.
    multilabel : bool
        Label each track with all its tags of the category (``TrackLabel.tags``), the raw tags being the classes.

    Raises
    ------
    ParameterError
        No ``metadata``, an unknown category, or a genre map where raw tags are the classes.
    MetadataError
        The files cannot be read; or raw-tag classes and no track has a usable tag.
    """

    name = "jamendo"
    reads_audio = False

    def __init__(self, *, metadata: str | os.PathLike | None = None,
                 genre_map: str | os.PathLike | None = None, category: str = "genre",
                 multilabel: bool = False) -> None:
        if metadata is None:
            raise ParameterError("--labels jamendo needs --metadata pointing at an autotagging TSV or a split folder")
        if category not in CATEGORIES:
            raise ParameterError(f"--category {category!r} is unknown; choose one of {', '.join(CATEGORIES)}")
        self.category = category
        self.multilabel = bool(multilabel)
        #: Raw tags are the classes: every category but single-label genre, which maps tags to top-level genres.
        self.raw_tags = self.multilabel or category != "genre"
        if self.raw_tags and genre_map is not None:
            raise ParameterError("--genre-map applies to --labels jamendo --category genre without --task "
                                 f"multilabel; with --category {category}"
                                 f"{' and --task multilabel' if self.multilabel else ''} the raw tags are the classes")
        self.metadata = os.fspath(metadata)
        self.files = find_tsv_files(metadata, category)
        self.genre_map = None if genre_map is None else os.fspath(genre_map)
        prefix = CATEGORIES[category][1]
        problems: list[str] = []
        self._rows: dict[str, _Row] = {}
        seen_ids: dict[str, _Row] = {}
        first_file: dict[_Row, Path] = {}
        for path, split in self.files:
            for row in read_tsv(path, split, problems, prefix):
                if self.raw_tags:  # a tag repeated in a row is one class (the genre map's vote counts repeats)
                    row = row._replace(tags=tuple(dict.fromkeys(row.tags)))
                key = audio_key(row.path)
                first = seen_ids.get(row.track_id) or self._rows.get(key)
                if first is not None:
                    what = f"TRACK_ID {row.track_id}" if first.track_id == row.track_id else f"PATH {row.path}"
                    problems.append(f"{path}: line {row.line}: {what} is already listed at {first_file[first]}: "
                                    f"line {first.line}; row skipped")
                    continue
                seen_ids[row.track_id] = row
                first_file[row] = path
                self._rows[key] = row
        self.metadata_problems = tuple(problems)
        if self.raw_tags:
            usable = [row.tags for row in self._rows.values() if len(row.tags) == 1 or self.multilabel and row.tags]
            if not usable:
                raise MetadataError(
                    f"{self.metadata}: no track has a {self._kind} tag"
                    + ("" if self.multilabel else " alone, and a single-label data set needs tracks with one "
                       "(--task multilabel uses them all)")
                    + f": {len(self._rows)} rows read, {len(problems)} reported")
            self.mapping: dict[str, str] = {}
            self.taxonomy: Taxonomy = Taxonomy.of_classes(tag for tags in usable for tag in tags)
        else:
            self.mapping = load_genre_map(genre_map)
            self.taxonomy = map_taxonomy(self.mapping)
        self._rank = {}
        for genre in self.mapping.values():
            if genre:
                self._rank.setdefault(genre, len(self._rank))

    @property
    def _kind(self) -> str:
        """How messages name the tags read: ``mood/theme``, or ``usable`` for the categories of every kind."""
        return self.category if CATEGORIES[self.category][1] else "usable"

    def settings(self) -> dict:
        settings = {"source": self.name, "metadata": [os.fspath(path.absolute()) for path, _ in self.files],
                    "genre_map": self.genre_map}
        if self.category != "genre" or self.multilabel:  # a genre build's settings stay as they were
            settings.update(category=self.category, taxonomy="tags")
        return settings

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        key = audio_key(rel_path)
        row = self._rows.get(key) if key else None
        if row is None:
            return TrackLabel(genre=None, artist=None, reason=f"not listed in {self.metadata}", unlisted=True)
        known = {"artist": row.artist_id, "track_id": row.track_id, "split": row.split}
        if not self.raw_tags:
            tags = tuple(tag[len(GENRE_PREFIX):] for tag in row.tags)
            genre = choose_genre(tags, self.mapping, self._rank)
            if genre is None:
                shown = ", ".join(tags[:5]) or "none"
                return TrackLabel(genre=None, reason=f"no genre tag maps to a genre (tags: {shown})", **known)
            return TrackLabel(genre=genre, **known)
        if not row.tags:
            return TrackLabel(genre=None, reason=f"no {self._kind} tag", **known)
        if self.multilabel:
            return TrackLabel(genre=None, tags=row.tags, **known)
        if len(row.tags) > 1:
            shown = ", ".join(row.tags[:5]) + (", ..." if len(row.tags) > 5 else "")
            return TrackLabel(genre=None, reason=f"several tags ({shown}): a single-label data set takes tracks "
                                                 "with one (--task multilabel uses them all)", **known)
        return TrackLabel(genre=row.tags[0], **known)

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return sorted(row.track_id for row in self._rows.values() if row.track_id not in labelled_ids)

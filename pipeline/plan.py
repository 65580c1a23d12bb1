"""What a build will do, decided before any audio work: labels, genre selection, splits and class caps.

A plan is a pure function of the audio files, the label source and the settings: it is recomputed on every run
(a resumed build may change ``--genres``, ``--max-tracks-per-genre`` or the split ratios without redoing any
audio), and ``genreslice build --dry-run`` prints it without touching audio or the output folder.

Splits, in order of precedence:

1. the official split the metadata gives a track (FMA ``('set', 'split')``, MTG-Jamendo split files);
2. else the artist's: a track without an official split joins the split its artist's other tracks have;
3. else a SHA-256 hash of the artist (:mod:`genreslice.pipeline.splits`), stratified by class: where the hash
   leaves a class with 3 or more such artists out of a split (validation with no Folk), the artist of that class
   whose hash lies nearest that split moves there from a split holding two or more of them. Only such gaps move
   an artist, so adding tracks rarely moves another.

An artist never straddles two splits: if the metadata puts one artist's tracks in several splits, all of them
go to the split most of them are in (ties: train, then validation, then test), and the moves are counted.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import functools
import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from genreslice.genre_getters.base import LabelSource, TrackLabel
from genreslice.metadata import Taxonomy
from genreslice.pipeline import layout
from genreslice.pipeline.discovery import AudioFile
from genreslice.pipeline.duplicates import CopySet, DuplicateGroup, copy_sets, exact_copies
from genreslice.pipeline.errors import ParameterError, WorkerDiedError
from genreslice.pipeline.executors import TaskWindow
from genreslice.pipeline.splits import (
    DEFAULT_SPLIT_RATIOS,
    SPLITS,
    assign_split,
    split_distance,
    split_key,
    split_warnings,
)
from genreslice.pipeline.tracks import TAG_SEPARATOR, TrackRow

logger = logging.getLogger(__name__)

#: ``status`` of a planned row that still needs its audio work.
TO_BUILD = "to_build"


@dataclass(frozen=True)
class GenreSelection:
    """Which classes (genres, or a source's own classes) to keep and how many tracks of each.

    Attributes
    ----------
    genres : tuple of str
        Keep only these classes (empty: all).
    exclude_genres : tuple of str
        Drop these classes.
    max_tracks_per_genre : int or None
        Keep at most this many tracks of each class in each split, chosen by a hash of the track id (single-label
        builds only).
    min_tracks_per_class : int or None
        Drop the classes that fewer tracks than this would be built with (over all splits, after ``genres`` and
        ``exclude_genres``, before the cap): their tracks are skipped, or in a multi-label build lose that tag (and
        are skipped when no tag is left).
    """

    genres: tuple[str, ...] = ()
    exclude_genres: tuple[str, ...] = ()
    max_tracks_per_genre: int | None = None
    min_tracks_per_class: int | None = None

    def __post_init__(self) -> None:
        if self.max_tracks_per_genre is not None and self.max_tracks_per_genre < 1:
            raise ParameterError(f"max_tracks_per_genre={self.max_tracks_per_genre} must be at least 1")
        if self.min_tracks_per_class is not None and self.min_tracks_per_class < 1:
            raise ParameterError(f"min_tracks_per_class={self.min_tracks_per_class} must be at least 1")

    def resolve(self, taxonomy: Taxonomy) -> tuple[frozenset[str], frozenset[str]]:
        """Map the names onto top-level genres (case and spacing ignored).

        Raises
        ------
        ParameterError
            A name that is not a top-level genre; the message lists the valid ones.
        """
        def lookup(names: tuple[str, ...], option: str) -> frozenset[str]:
            found, unknown = set(), []
            for name in names:
                genre = taxonomy.top_level(name)
                alike = taxonomy.alike(name)
                if genre is None and len(alike) > 1:
                    raise ParameterError(f"{option}: {name!r} matches {', '.join(map(repr, alike))}, "
                                         "whose names differ only in case, spacing or punctuation; give one exactly "
                                         "as it is written")
                if genre is None:
                    parent = taxonomy.resolve(name)
                    unknown.append(f"{name!r}" + (f" (part of {parent}; select {parent})" if parent else ""))
                else:
                    found.add(genre)
            if unknown:
                raise ParameterError(f"{option}: unknown genre {', '.join(unknown)}; "
                                     f"valid genres: {', '.join(taxonomy.genres)}")
            return frozenset(found)

        keep = lookup(self.genres, "--genres")
        drop = lookup(self.exclude_genres, "--exclude-genres")
        if set(keep or taxonomy.genres) <= drop:
            raise ParameterError(f"--genres and --exclude-genres leave no genre to build (kept: "
                                 f"{', '.join(sorted(keep)) or 'all'}; excluded: {', '.join(sorted(drop))})")
        return keep, drop

    def to_dict(self) -> dict:
        chosen = {"genres": list(self.genres), "exclude_genres": list(self.exclude_genres),
                  "max_tracks_per_genre": self.max_tracks_per_genre}
        if self.min_tracks_per_class is not None:  # recorded when used: earlier data sets' records stay the same
            chosen["min_tracks_per_class"] = self.min_tracks_per_class
        return chosen


@dataclass
class BuildPlan:
    """Every discovered file with its label, split and fate.

    Attributes
    ----------
    rows : list of TrackRow
        One per file, in discovery order; ``status`` is ``TO_BUILD`` for the tracks that need audio work, else
        final (``failed``/``skipped``).
    audio : dict
        ``rel_path -> AudioFile`` for the rows to build.
    split_counts : dict
        Tracks with a genre by where their split came from: ``official``, ``artist`` (their artist's
        official split), ``artist_hash``.
    moved : int
        Tracks whose official split was overridden so that their artist sits in one split.
    balanced : int
        Tracks whose artist moved from its hash-drawn split so that every class reaches every split.
    unlisted : int
        Audio files with no row in the metadata.
    missing_audio : list of str
        Track ids the metadata lists that have no audio file.
    metadata_problems : tuple of str
        Metadata rows reported and skipped while loading.
    multilabel : bool
        The rows carry tags (several classes per track), not a genre.
    duplicates : list of DuplicateGroup
        Sets of copies among the tracks to build (byte-identical files; and, once the build knows their
        fingerprints, near copies), with what was done with each.
    fingerprinted : int or None
        Tracks whose fingerprints were compared to find near copies; None before any audio work (a dry run).
    replan : callable
        ``near -> BuildPlan``: this plan drawn again from the same labels, with the near copies found
        (:func:`~genreslice.pipeline.duplicates.near_copies`) grouped with the exact ones.
    rare_classes : dict
        ``class -> tracks`` of the classes ``--min-tracks-per-class`` dropped, sorted by name.
    """

    rows: list[TrackRow]
    audio: dict[str, AudioFile]
    split_counts: dict[str, int]
    moved: int
    unlisted: int
    missing_audio: list[str]
    metadata_problems: tuple[str, ...] = ()
    selection: dict = field(default_factory=dict)
    split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS
    balanced: int = 0
    multilabel: bool = False
    rare_classes: dict[str, int] = field(default_factory=dict)
    duplicates: list[DuplicateGroup] = field(default_factory=list)
    duplicate_policy: str = "auto"
    units: dict[str, str] = field(default_factory=dict)
    fingerprinted: int | None = None
    replan: Callable[[list], BuildPlan] | None = field(default=None, repr=False, compare=False)

    @property
    def merged_units(self) -> set[str]:
        """The split units that copies made of several split keys (artists)."""
        return {unit for key, unit in self.units.items() if key != unit}

    def split_warnings(self) -> list[str]:
        """Classes missing from a split, or with fewer than a handful of tracks there (see
        :func:`~genreslice.pipeline.splits.split_warnings`), over the tracks to build and built."""
        return split_warnings(self.balance(), self.split_ratios)

    def balance(self, statuses: tuple[str, ...] = (TO_BUILD, "ok", "too_short")) -> dict[str, dict[str, int]]:
        """``{class: {split: tracks}}`` over rows with these statuses, classes sorted (a multi-label track counts
        for each of its tags)."""
        table: dict[str, dict[str, int]] = {}
        for row in self.rows:
            if row.status in statuses:
                for name in row.classes:
                    table.setdefault(name, dict.fromkeys(SPLITS, 0))[row.split] += 1
        return dict(sorted(table.items()))

    def not_built(self) -> list[tuple[str, str, int, str, str]]:
        """``(status, reason pattern, count, first reason, its file)`` for failed and skipped rows, most frequent
        first (see :func:`reasons_counted`)."""
        return reasons_counted((row.status, row.reason, row.path) for row in self.rows
                               if row.status in ("failed", "skipped"))

    def summary(self) -> dict:
        """JSON-ready account of labels and splits, recorded in ``dataset.json``."""
        return {
            "selection": self.selection,
            "split_sources": self.split_counts,
            "official_splits_moved": self.moved,
            "moved_so_every_class_reaches_every_split": self.balanced,
            "audio_without_metadata": self.unlisted,
            "metadata_without_audio": len(self.missing_audio),
            "metadata_rows_skipped": len(self.metadata_problems),
            **({"classes_below_min_tracks": self.rare_classes} if "min_tracks_per_class" in self.selection else {}),
            "duplicates": self.duplicate_counts(),
        }

    def duplicate_counts(self) -> dict:
        """How many sets of copies, of how many files, and what became of them (``dataset.json``)."""
        by_path = {row.path: row for row in self.rows}
        spread = [group for group in self.duplicates
                  if len({by_path[path].split for path in group.paths if by_path[path].status == TO_BUILD}) > 1]
        units = collections.Counter(self.units.get(split_key(row.artist or None, row.track_id))
                                    for row in self.rows if row.status == TO_BUILD)
        merged = [count for unit, count in units.items() if unit in self.merged_units]
        return {
            "policy": self.duplicate_policy,
            "largest_merged_unit_tracks": max(merged, default=0),
            "exact_groups": sum(group.kind == "exact" for group in self.duplicates),
            "near_groups": sum(group.kind == "near" for group in self.duplicates),
            "tracks_fingerprinted": self.fingerprinted,
            "files_in_groups": sum(len(group.paths) for group in self.duplicates),
            "grouped": sum(group.policy == "group" for group in self.duplicates),
            "in_several_splits": len(spread),
            "copies_dropped": sum(1 for group in self.duplicates for path in group.paths
                                  if by_path[path].reason.startswith(DROPPED_COPY)),
        }


def reasons_counted(entries: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, int, str, str]]:
    """``(status, reason pattern, count, first reason, its file)`` of ``(status, reason, path)`` entries, reasons
    of one kind (:func:`reason_pattern`) counted together, most frequent first."""
    groups: dict[tuple[str, str], list] = {}
    for status, reason, path in entries:
        groups.setdefault((status, reason_pattern(reason)), [0, reason, path])[0] += 1
    return sorted(((status, pattern, count, reason, path)
                   for (status, pattern), (count, reason, path) in groups.items()),
                  key=lambda item: (-item[2], item[0], item[1]))


def reason_pattern(reason: str) -> str:
    """A reason with its particulars (quoted values, numbers) blanked, to count reasons of one kind together."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")


def plan_build(
    files: list[AudioFile],
    label_source: LabelSource,
    *,
    split_ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS,
    selection: GenreSelection | None = None,
    workers: int = 1,
    executor: cf.Executor | None = None,
    on_labelled: Callable[[int], None] | None = None,
    built_ids: Mapping[str, str] | None = None,
    duplicates: str = "auto",
    known_digests: Mapping[str, str] | None = None,
) -> BuildPlan:
    """Label every file and decide its split and whether it is built.

    Parameters
    ----------
    files : list of AudioFile
        Discovered audio files, in discovery order.
    label_source : LabelSource
        Where labels come from; sources that read audio files run on ``executor`` when ``workers > 1``.
    split_ratios : tuple of float
        Fractions for tracks whose split is drawn by artist hash.
    selection : GenreSelection, optional
        Genre filter and per-genre cap.
    workers, executor : int, concurrent.futures.Executor
        Where tag-reading sources run; without an executor, everything runs here.
    on_labelled : callable, optional
        Called with the number of files labelled since the last call.
    built_ids : Mapping of str to str, optional
        ``track_id -> rel_path`` of tracks already built in the output folder. When several files claim one
        track id, the one already built keeps it (while its file is there, usable or not), else a full-quality file
        beats a ``.low.`` copy, else the first in discovery order; the others fail with the reason.
    duplicates : str
        What to do with copies (see :mod:`genreslice.pipeline.duplicates`).
    known_digests : Mapping of str to str, optional
        ``rel_path -> SHA-256`` of files hashed before and unchanged since (the journal's), not read again.

    Raises
    ------
    ParameterError
        ``selection`` names a genre the source cannot produce, caps a multi-label build's classes, or asks for more
        tracks per class than any class has.
    """
    selection = selection or GenreSelection()
    multilabel = bool(getattr(label_source, "multilabel", False))
    if multilabel and selection.max_tracks_per_genre is not None:
        raise ParameterError("--max-tracks-per-genre applies to single-label builds: a multi-label track counts for "
                             "several classes; use --min-tracks-per-class, --genres or --exclude-genres to choose")
    keep, drop = selection.resolve(label_source.taxonomy)
    labels = list(_labels(files, label_source, workers=workers if label_source.reads_audio else 1, executor=executor,
                          on_labelled=on_labelled or (lambda count: None)))
    rows = _first_rows(labels, built_ids or {})
    exact = exact_copies({row.path: audio for row, (audio, _) in zip(rows, labels) if row.status == TO_BUILD},
                         known=known_digests)
    planner = _Planner(labels=labels, label_source=label_source, split_ratios=split_ratios, selection=selection,
                       keep=keep, drop=drop, multilabel=multilabel, built_ids=built_ids or {}, duplicates=duplicates,
                       exact=exact)
    return planner.plan([])


@dataclass(frozen=True)
class _Planner:
    """What a plan is drawn from once the files are labelled and their exact copies found; :meth:`plan` draws it
    (again, once near copies are known)."""

    labels: list[tuple[AudioFile, TrackLabel]]
    label_source: LabelSource
    split_ratios: tuple[float, float, float]
    selection: GenreSelection
    keep: frozenset[str]
    drop: frozenset[str]
    multilabel: bool
    built_ids: Mapping[str, str]
    duplicates: str
    exact: list[tuple[str, tuple[str, ...]]]

    def plan(self, near: list[tuple[tuple[str, ...], tuple[float, ...]]]) -> BuildPlan:
        """The plan, with the exact copies and the ``near`` ones (:func:`~genreslice.pipeline.duplicates.near_copies`)
        grouped."""
        return _plan_labels(self, near)


def _plan_labels(planner: _Planner, near: list[tuple[tuple[str, ...], tuple[float, ...]]]) -> BuildPlan:
    """The plan of :meth:`_Planner.plan`: labels and exact copies as the planner holds them, ``near`` copies added."""
    labels, label_source, selection = planner.labels, planner.label_source, planner.selection
    split_ratios, duplicates, multilabel = planner.split_ratios, planner.duplicates, planner.multilabel
    keep, drop = planner.keep, planner.drop
    rows = _first_rows(labels, planner.built_ids)
    labels_to_build = {row.path: label for row, (_, label) in zip(rows, labels) if row.status == TO_BUILD}
    units, groups = _split_units(rows, labels_to_build, copy_sets(planner.exact, near), duplicates)
    split_counts, moved, hashed = _assign_splits(rows, labels_to_build, split_ratios, units)
    _drop_extra_copies(rows, groups)  # first: the classes, the balancing and the caps count the copies kept
    _select_genres(rows, keep=keep, drop=drop)
    rare = {} if selection.min_tracks_per_class is None else _drop_rare_classes(rows, selection.min_tracks_per_class)
    if rare and not any(row.status == TO_BUILD for row in rows):
        raise ParameterError(f"--min-tracks-per-class {selection.min_tracks_per_class} leaves no class to build: "
                             f"the largest has {max(rare.values())} tracks ({max(rare, key=rare.get)}); give a "
                             "smaller number")
    balanced = _stratify(rows, hashed=hashed, ratios=split_ratios, units=units)  # over the selected classes only
    if selection.max_tracks_per_genre is not None:
        _cap_tracks(rows, selection.max_tracks_per_genre)
    return BuildPlan(
        rows=rows,
        audio={row.path: audio for row, (audio, _) in zip(rows, labels) if row.status == TO_BUILD},
        split_counts=split_counts,
        moved=moved,
        balanced=balanced,
        unlisted=sum(1 for audio, label in labels if label.unlisted and not audio.problem),
        missing_audio=label_source.missing_audio({label.track_id for _, label in labels if label.track_id}),
        metadata_problems=tuple(label_source.metadata_problems),
        selection=selection.to_dict(),
        split_ratios=split_ratios,
        multilabel=multilabel,
        rare_classes=rare,
        duplicates=groups,
        duplicate_policy=duplicates,
        units=units,
        replan=planner.plan,
    )


def _first_rows(labels: list[tuple[AudioFile, TrackLabel]], built_ids: Mapping[str, str]) -> list[TrackRow]:
    """A row per file with its track id and, before splits and genre selection, its fate: ``TO_BUILD`` for a
    file with a genre that can be built, else failed or skipped with the reason."""
    track_ids = [label.track_id or layout.track_id_for_path(audio.rel_path) for audio, label in labels]
    owners = _id_owners(labels, track_ids, built_ids)
    rows = []
    for (audio, label), track_id in zip(labels, track_ids):
        row = TrackRow(track_id=track_id, path=audio.rel_path, artist=label.artist or "", genre=label.genre or "",
                       tags=TAG_SEPARATOR.join(label.tags), status="skipped", reason=label.reason)
        if audio.problem:
            row.status, row.reason = "failed", audio.problem
        elif audio.size == 0:
            row.status, row.reason = "failed", "empty file (0 bytes)"
        elif label.failed:
            row.status = "failed"
        elif not layout.is_safe_track_id(track_id):
            row.status, row.reason = "failed", f"track id {track_id!r} cannot name a file"
        elif label.labelled and owners[track_id] != audio.rel_path:
            row.status, row.reason = "failed", f"track id {track_id} is also used by {owners[track_id]}"
        elif label.labelled:
            row.status, row.reason = TO_BUILD, ""
        rows.append(row)
    return rows


def _id_owners(labels: list[tuple[AudioFile, TrackLabel]], track_ids: list[str],
               built_ids: Mapping[str, str]) -> dict[str, str]:
    """``track_id -> rel_path`` of the file that gets each id claimed by a buildable file (see ``plan_build``).

    A built track keeps its id while its file is there, even when the file cannot be used on this run (a folder
    that cannot be entered): another file claiming the id would render into its slice folder.
    """
    present = {audio.rel_path for audio, _ in labels}
    claims: dict[str, list[tuple[bool, bool, int, str]]] = collections.defaultdict(list)
    for index, ((audio, label), track_id) in enumerate(zip(labels, track_ids)):
        if label.labelled and not audio.problem and audio.size:
            claims[track_id].append((built_ids.get(track_id) != audio.rel_path, ".low." in audio.rel_path.lower(),
                                     index, audio.rel_path))
    return {track_id: built_ids[track_id] if built_ids.get(track_id) in present else min(candidates)[3]
            for track_id, candidates in claims.items()}


def _split_units(rows: list[TrackRow], labels: dict[str, TrackLabel], copies: list[CopySet],
                 policy: str) -> tuple[dict[str, str], list[DuplicateGroup]]:
    """The split unit of each split key (``split_key -> unit``: the keys of copies grouped together become one
    unit, named by the smallest of them), and the groups of copies with the policy each gets (``auto``: ``group``,
    unless that would join units of different official splits)."""
    key_of = {row.path: split_key(row.artist or None, row.track_id) for row in rows if row.path in labels}
    parent: dict[str, str] = {}
    official: dict[str, set[str]] = collections.defaultdict(set)  # a unit's official splits, kept at its root
    for path, key in key_of.items():
        if labels[path].split in SPLITS:
            official[key].add(labels[path].split)

    def root(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    groups = []
    for found in copies:
        members = tuple(path for path in found.paths if path in labels)
        if len(members) < 2:
            continue
        roots = sorted({root(key_of[path]) for path in members})
        joined = set().union(*(official[key] for key in roots))
        chosen = policy if policy != "auto" else "drop-extra" if len(joined) > 1 else "group"
        groups.append(found.decided(chosen, members))
        if chosen == "group":
            for other in roots[1:]:
                parent[other] = roots[0]
            official[roots[0]] = joined
    return {key: root(key) for key in set(key_of.values())}, groups


def _unit(row: TrackRow, units: Mapping[str, str]) -> str:
    key = split_key(row.artist or None, row.track_id)
    return units.get(key, key)


def _assign_splits(rows: list[TrackRow], labels: dict[str, TrackLabel], ratios: tuple[float, float, float],
                   units: Mapping[str, str]) -> tuple[dict[str, int], int, set[str]]:
    """Give every row in ``labels`` (``rel_path -> label``) its split (see the module docstring); returns the counts,
    the moves and the split units whose split the hash drew. ``units`` merges the split keys of grouped copies."""
    groups: dict[str, list[TrackRow]] = collections.defaultdict(list)
    for row in rows:
        if row.path in labels:
            groups[_unit(row, units)].append(row)
    counts = dict.fromkeys(("official", "artist", "artist_hash"), 0)
    moved = 0
    hashed: set[str] = set()
    for key, members in groups.items():
        official = collections.Counter(labels[row.path].split for row in members if labels[row.path].split in SPLITS)
        if not official:
            split = assign_split(key, ratios)
            counts["artist_hash"] += len(members)
            hashed.add(key)
        else:
            split = max(official, key=lambda name: (official[name], -SPLITS.index(name)))
        for row in members:
            row.split = split
            given = labels[row.path].split
            if official and given in SPLITS:
                counts["official"] += 1
                moved += given != split
            elif official:
                counts["artist"] += 1
    if moved:
        logger.warning("%d tracks moved from their official split so that no artist is in two splits", moved)
    return counts, moved, hashed


#: A class needs this many artists before every split can hold one of them.
_STRATIFY_MIN_ARTISTS = 3


def _stratify(rows: list[TrackRow], *, hashed: set[str], ratios: tuple[float, float, float],
              units: Mapping[str, str]) -> int:
    """Fill the gaps the artist hash leaves: a split (with a share) that lacks a class of 3 or more artists gets the
    artist of that class whose hash lies nearest it; returns the tracks moved.

    An artist counts for every class it has tracks of. A donor comes from a split that keeps, for every class of
    the donor, another artist of it: a move never empties a split of a class.
    """
    artists: dict[str, list[TrackRow]] = collections.defaultdict(list)  # the tracks to build
    every_row: dict[str, list[TrackRow]] = collections.defaultdict(list)  # and the rest, which move with them
    for row in rows:
        if row.split:
            key = _unit(row, units)
            every_row[key].append(row)
            if row.status == TO_BUILD and row.classes:
                artists[key].append(row)
    classes = {key: {name for row in members for name in row.classes} for key, members in artists.items()}
    # Artists of each class in each split, kept up to date as artists move (a multi-label data set has many
    # classes, and counting anew for each would cost classes x artists).
    held = collections.Counter((artists[key][0].split, name) for key in artists for name in classes[key])
    moved = 0
    for genre in sorted({genre for genres in classes.values() for genre in genres}):
        keys = sorted(key for key, genres in classes.items() if genre in genres)
        if len(keys) < _STRATIFY_MIN_ARTISTS:
            continue
        for split in (name for name, ratio in zip(SPLITS, ratios) if ratio > 0):
            if held[(split, genre)]:
                continue
            donors = [key for key in keys if key in hashed
                      and all(held[(artists[key][0].split, name)] >= 2 for name in classes[key])]
            if not donors:
                continue
            chosen = min(donors, key=lambda key: (split_distance(key, split, ratios), key))
            for name in classes[chosen]:
                held[(artists[chosen][0].split, name)] -= 1
                held[(split, name)] += 1
            for row in every_row[chosen]:
                row.split = split
            moved += len(artists[chosen])
    if moved:
        logger.info("%d tracks moved to another split so that every class reaches every split", moved)
    return moved


#: The start of the reason of a copy ``--duplicates drop-extra`` leaves out.
DROPPED_COPY = "a copy of"


def _drop_extra_copies(rows: list[TrackRow], groups: list[DuplicateGroup]) -> None:
    """For each ``drop-extra`` group whose copies to build lie in several splits, skip those outside the last of
    them (test, then validation, then train), so that an official test split keeps its songs."""
    by_path = {row.path: row for row in rows}
    for group in groups:
        members = [by_path[path] for path in group.paths if by_path[path].status == TO_BUILD]
        splits = {row.split for row in members}
        if group.policy != "drop-extra" or len(splits) < 2:
            continue
        kept_split = max(splits, key=SPLITS.index)
        kept = [row for row in members if row.split == kept_split]
        for row in members:
            if row.split == kept_split:
                continue
            # Named: a kept file with the same bytes where there is one, else the first kept (the similarities of
            # the group's pairs are in duplicates.csv; this file and the one named may be linked through others).
            digest = group.digest_of(row.path)
            same = [other for other in kept if digest and group.digest_of(other.path) == digest]
            named = (same or kept)[0]
            alike = "the same file" if same else "the same recording, by its fingerprint"
            row.status, row.reason = "skipped", (f"{DROPPED_COPY} {named.path!r} ({alike}) in the {kept_split} "
                                                 "split (--duplicates drop-extra)")


def _select_genres(rows: list[TrackRow], *, keep: frozenset[str], drop: frozenset[str]) -> None:
    """Skip the rows to build whose genre is not in ``keep`` (when it names any) or is in ``drop``; a multi-label
    row loses the tags not kept, and is skipped when none is left."""
    for row in rows:
        if row.status != TO_BUILD:
            continue
        if row.tags:
            tags = row.classes
            chosen = [tag for tag in tags if (not keep or tag in keep) and tag not in drop]
            row.tags = TAG_SEPARATOR.join(chosen)
            if not chosen:
                shown = ", ".join(tags[:5]) + (", ..." if len(tags) > 5 else "")
                row.status, row.reason = "skipped", f"no tag selected (tags: {shown}; --genres, --exclude-genres)"
        elif keep and row.genre not in keep:
            row.status, row.reason = "skipped", f"genre {row.genre} is not selected (--genres)"
        elif row.genre in drop:
            row.status, row.reason = "skipped", f"genre {row.genre} is excluded (--exclude-genres)"


def _drop_rare_classes(rows: list[TrackRow], minimum: int) -> dict[str, int]:
    """Drop the classes fewer than ``minimum`` tracks to build have; returns ``class -> tracks`` of those dropped.

    A single-label track of such a class is skipped; a multi-label one loses the tag, and is skipped when it has
    none left (which changes no other class's count).
    """
    counts = collections.Counter(name for row in rows if row.status == TO_BUILD for name in row.classes)
    rare = {name: count for name, count in sorted(counts.items()) if count < minimum}
    if not rare:
        return rare
    for row in rows:
        if row.status != TO_BUILD or not set(row.classes) & rare.keys():
            continue
        if row.tags:
            tags = row.classes
            row.tags = TAG_SEPARATOR.join(tag for tag in tags if tag not in rare)
            if row.tags:
                continue
            shown = ", ".join(f"{tag} ({rare[tag]})" for tag in tags[:5])
            row.status, row.reason = "skipped", (f"every tag has fewer than --min-tracks-per-class {minimum} tracks "
                                                 f"({shown})")
        else:
            row.status, row.reason = "skipped", (f"class {row.genre} has {rare[row.genre]} tracks, fewer than "
                                                 f"--min-tracks-per-class {minimum}")
    logger.info("%d classes with fewer than %d tracks dropped (--min-tracks-per-class)", len(rare), minimum)
    return rare


def _cap_tracks(rows: list[TrackRow], cap: int) -> None:
    """Keep ``cap`` tracks per (split, genre): those whose id hashes lowest, so the choice is the same on every
    run and adding tracks displaces few of the chosen ones."""
    groups: dict[tuple[str, str], list[TrackRow]] = collections.defaultdict(list)
    for row in rows:
        if row.status == TO_BUILD:
            groups[(row.split, row.genre)].append(row)
    for (split, genre), members in groups.items():
        members.sort(key=lambda row: hashlib.sha256(row.track_id.encode("utf-8")).digest())
        for row in members[cap:]:
            row.status, row.reason = "skipped", f"over --max-tracks-per-genre {cap} ({genre}, {split})"


def _label_one(label_source: LabelSource, audio: AudioFile) -> TrackLabel:
    if audio.problem or audio.size == 0:
        return TrackLabel(genre=None, artist=None, reason=audio.problem or "empty file")
    return label_source.label(audio.path, audio.rel_path)


def _label_chunk(label_source: LabelSource, chunk: list[AudioFile]) -> list[TrackLabel]:
    return [_label_one(label_source, audio) for audio in chunk]


def _labels(
    files: list[AudioFile], label_source: LabelSource, *, workers: int, executor: cf.Executor | None,
    on_labelled: Callable[[int], None],
) -> Iterator[tuple[AudioFile, TrackLabel]]:
    """Labels in discovery order: read in chunks by the executor's workers when there are several, else here."""
    if workers == 1 or executor is None or len(files) < 2:
        for audio in files:
            yield audio, _label_one(label_source, audio)
            on_labelled(1)
        return
    chunksize = max(1, min(64, len(files) // (workers * 16)))
    chunks = collections.deque(files[start:start + chunksize] for start in range(0, len(files), chunksize))
    window: TaskWindow[list[AudioFile]] = TaskWindow(limit=workers * 2)
    unread: list[list[AudioFile]] = []  # a chunk whose labels were lost with its worker
    try:
        while True:
            window.fill(chunks, functools.partial(executor.submit, _label_chunk, label_source))
            if not window:
                break
            for chunk, future in window.finished():
                unread = [chunk]
                labels = future.result()
                unread = []
                yield from zip(chunk, labels)
                on_labelled(len(chunk))
    except (cf.BrokenExecutor, WorkerDiedError):
        # A worker died (the audio runner restarts a pool; Dask gave up on a chunk); tags are safe to read here.
        logger.warning("a worker process died while reading labels; reading the rest in this process")
        rest = [audio for chunk in (*unread, *window.items(), *chunks) for audio in chunk]
        for audio in rest:
            yield audio, _label_one(label_source, audio)
            on_labelled(1)

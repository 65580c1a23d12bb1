"""Taking stock of a built folder before a build: which recorded tracks stand, which must be rendered again,
which are gone, and the slice folders no track owns any more.

A build never drops much of what was built without being told: :meth:`Stock.check_drops` refuses a run that
would drop more than ``DROP_REFUSAL_SHARE`` of the built tracks (a mistyped or unmounted audio folder) unless
``prune_missing`` is given.
"""
from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from genreslice.pipeline import layout
from genreslice.pipeline.discovery import AudioFile, AudioScan
from genreslice.pipeline.errors import MissingAudioError
from genreslice.pipeline.journal import JournalRecord
from genreslice.pipeline.plan import BuildPlan
from genreslice.pipeline.tracks import TrackRow

logger = logging.getLogger(__name__)

#: A run that would drop more than this share of the built tracks from the data set needs ``prune_missing``.
DROP_REFUSAL_SHARE = 0.5
#: A track that failed for a passing reason (a timeout, a worker death) is tried again until it has failed this
#: many times on the same file; then only ``retry_failed`` tries it again.
MAX_FAILED_ATTEMPTS = 3


@dataclass
class Stock:
    """What the journal says about the tracks built before, checked against the files found now.

    Attributes
    ----------
    reusable : dict
        ``rel_path -> JournalRecord`` of outcomes that stand: the file is unchanged, an ``ok`` track's slices are all
        there at their recorded sizes, and a failure is not one to try again.
    unusable : dict
        ``rel_path -> JournalRecord`` for tracks whose file cannot be used now: in a folder that cannot be read,
        or there but not examinable (permissions, a link gone bad). Their rows fail for this run.
    unreachable : dict
        ``rel_path -> reason`` for those discovery did not list: in folders that could not be read, or gone from a
        folder that is empty now (an unmounted drive).
    held : list of JournalRecord
        Records of the built tracks among the unusable ones: their slices stay on disk for a later run.
    gone : list of JournalRecord
        Records of built tracks whose file is gone (and whose slices are still on disk).
    retried : dict
        ``rel_path -> attempts so far`` of earlier failures that are tried again.
    damaged : set of str
        Paths of built tracks whose slice files are missing or damaged.
    owners : dict
        ``track_id -> rel_path`` of the built tracks whose file is still there (usable or not): each keeps its
        track id, and so its slice folder, against any other file claiming the id.
    built : int
        Built tracks whose slices are on disk, the share of which ``check_drops`` compares against.
    """

    reusable: dict[str, JournalRecord] = field(default_factory=dict)
    unusable: dict[str, JournalRecord] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    held: list[JournalRecord] = field(default_factory=list)
    gone: list[JournalRecord] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)
    damaged: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)
    built: int = 0

    def check_drops(self, out: Path, audio_root: Path, *, prune_missing: bool) -> None:
        """Refuse a run that would drop most built tracks from the data set, unless the user confirmed it.

        Raises
        ------
        MissingAudioError
            More than :data:`DROP_REFUSAL_SHARE` of the built tracks are gone or cannot be used.
        """
        dropped = len(self.gone) + len(self.held)
        if prune_missing or not dropped or dropped <= DROP_REFUSAL_SHARE * self.built:
            return
        parts = []
        if self.gone:
            parts.append(f"{len(self.gone)} have no audio file in {os.fspath(audio_root)!r} any more (e.g. "
                         f"{self.gone[0].row.path!r})")
        if self.held:
            parts.append(f"{len(self.held)} have files that cannot be read now (e.g. {self.held[0].row.path!r})")
        raise MissingAudioError(
            f"{out} holds {self.built} built tracks, and {dropped} of them would be dropped: {'; '.join(parts)}. "
            "Is AUDIO_DIR the right folder, mounted and readable? Nothing was changed. To drop them anyway (the "
            "slices of files that are gone are deleted), run the same command with --prune-missing.")

    def unreachable_files(self, audio_root: Path) -> list[AudioFile]:
        """A failed stand-in file for each unreachable track, so it keeps a row with the reason."""
        return [AudioFile(path=audio_root / path, rel_path=path, size=self.unusable[path].size,
                          mtime_ns=self.unusable[path].mtime_ns, problem=reason)
                for path, reason in self.unreachable.items()]

    def describe_unusable(self, plan: BuildPlan) -> None:
        """Give the failed rows of unusable tracks what the journal knows: track id, artist, genre."""
        for row in plan.rows:
            if row.path in self.unusable:
                known = self.unusable[row.path].row
                row.track_id, row.artist, row.genre, row.tags = known.track_id, known.artist, known.genre, known.tags


def take_stock(records: dict[str, JournalRecord], *, scan: AudioScan, audio_root: Path, out: Path,
                retry_failed: bool) -> Stock:
    """Sort the journal's records by what this run must do with them (see :class:`Stock`)."""
    stock = Stock()
    current = {audio.rel_path: audio for audio in scan.files}
    # A track folder holds the slices of the last path that published it: an older record naming the same
    # track id (another file had the id meanwhile) describes slices that are gone.
    publisher = {record.row.track_id: path for path, record in records.items() if record.row.status == "ok"}
    for path, record in records.items():
        owns_folder = record.row.status == "ok" and publisher[record.row.track_id] == path
        on_disk = owns_folder and (out / layout.track_slice_dir(record.row.track_id)).is_dir()
        stock.built += on_disk
        audio = current.get(path)
        reason = None
        if audio is None:
            folder = scan.unreadable_folder_of(path)
            if folder is not None:
                reason = f"cannot read folder {folder}: {scan.unreadable[folder]}"
            elif on_disk and (folder := _emptied_folder(audio_root, path)) is not None:
                reason = f"folder {folder} is empty now (an unmounted drive?)"
            elif on_disk:
                stock.gone.append(record)
                continue
            else:
                continue
        if owns_folder:
            stock.owners[record.row.track_id] = path
        if reason is not None or audio.problem:
            stock.unusable[path] = record
            if reason is not None:
                stock.unreachable[path] = reason
            if on_disk:
                stock.held.append(record)
            continue
        if record.row.status not in ("ok", "failed", "too_short") \
                or (record.size, record.mtime_ns) != (audio.size, audio.mtime_ns):
            continue  # a changed file (or an old kind of record): its audio work is done again
        if record.row.status == "failed" and (
                retry_failed or (record.transient and record.attempts < MAX_FAILED_ATTEMPTS)):
            stock.retried[path] = record.attempts
        elif record.row.status == "ok" and not (owns_folder and slices_intact(out, record)):
            stock.damaged.add(path)
        else:
            stock.reusable[path] = record
    return stock


def _emptied_folder(audio_root: Path, rel_path: str) -> str | None:
    """The folder below ``audio_root`` holding nothing at all where the file ``rel_path`` was, if any.

    A file that is gone together with everything beside it, from a folder that is still there, is more likely on
    a drive no longer mounted there than deleted: its track is kept, as for a folder that cannot be read.
    """
    parent = PurePosixPath(rel_path).parent
    while parent.parts:
        folder = audio_root / parent
        if folder.is_dir():
            try:
                return None if any(os.scandir(folder)) else f"{parent}/"
            except OSError:
                return None
        parent = parent.parent
    return None


def slices_intact(out: Path, record: JournalRecord) -> bool:
    """Whether a built track's folder holds exactly its slices, each of the size recorded when it was written
    (journals of older versions record no sizes: then each must be non-empty). One ``stat`` per slice; a
    damaged file of unchanged size is found only by reading it (training reports it)."""
    track_id = record.row.track_id
    try:
        with os.scandir(out / layout.track_slice_dir(track_id)) as entries:
            sizes = {entry.name: entry.stat().st_size for entry in entries}
    except OSError:
        return False
    names = [layout.slice_name(track_id, index) for index in range(record.row.n_slices)]
    if len(sizes) != len(names):
        return False
    expected = record.slice_bytes or [None] * len(names)
    return all(sizes.get(name, 0) > 0 and size in (None, sizes[name]) for name, size in zip(names, expected))


def prune_orphans(out: Path, *, keep: list[TrackRow], gone: list[TrackRow], scratch: Path,
                   everything: bool) -> tuple[int, int]:
    """Remove the slice folders of tracks whose audio file is gone; with ``everything``, also every other folder
    that no row in ``keep`` owns. Returns how many folders of tracks that are gone were removed, and how many
    other folders no record owns were left in place.

    Folders nothing here knows about stay unless the user asked (``--prune-missing``): slices of a changed file
    that failed to render again, of tracks a damaged or lost journal no longer lists. Folders of built tracks that
    this run's selection leaves out (``--genres``, a cap) are kept: they are not in ``slices.csv``, and a later
    run that selects them again reuses them.
    """
    wanted = {layout.track_slice_dir(row.track_id) for row in keep if row.status == "ok"}
    doomed = {layout.track_slice_dir(row.track_id) for row in gone}
    slices_root = out / layout.SLICES_DIR
    removed = left = 0
    for shard in sorted(slices_root.iterdir()) if slices_root.is_dir() else []:
        for track_dir in sorted(shard.iterdir()) if shard.is_dir() else []:
            folder = f"{layout.SLICES_DIR}/{shard.name}/{track_dir.name}"
            if folder in wanted:
                continue
            if folder not in doomed and not everything:
                left += 1
                continue
            logger.info("removing %s: its track is no longer in the data set", track_dir)
            removed += folder in doomed
            # Out of the final layout in one rename, then deleted: a kill never leaves half a folder.
            trash = scratch / f"pruned-{shard.name}-{track_dir.name}"
            shutil.rmtree(trash, ignore_errors=True)
            os.replace(track_dir, trash)
            shutil.rmtree(trash, ignore_errors=True)
    return removed, left

"""``genreslice build``: a folder of audio files becomes a labelled data set of spectrogram slices."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
from dataclasses import replace

from genreslice.errors import ParameterError
from genreslice.genre_getters import LABEL_SOURCES, LabelSource, make_label_source
from genreslice.genre_getters.jamendo import CATEGORIES as JAMENDO_CATEGORIES
from genreslice.pipeline.build import BuildConfig, BuildSummary, build_dataset, plan_dataset, plural
from genreslice.pipeline.executors import dask_cluster
from genreslice.pipeline.layout import TRACKS_CSV
from genreslice.pipeline.plan import TO_BUILD, BuildPlan, GenreSelection
from genreslice.pipeline.progress import BuildProgress
from genreslice.pipeline.sox import find_sox
from genreslice.pipeline.mel import MelSettings
from genreslice.pipeline.spectrogram import FEATURES, RESAMPLE_QUALITIES, SOX_TIMEOUT_S, SpectrogramSpec
from genreslice.pipeline.stock import MAX_FAILED_ATTEMPTS
from genreslice.pipeline.splits import SPLITS
from genreslice.pipeline.tracks import TrackRow, read_tracks_csv
from genreslice.scripts.argtypes import (DATA_SET, check_folder_kinds, genre_names, number, positive_int,
                                         split_ratios, timeout_seconds, whole_number, worker_count)
from genreslice.scripts.commands import HelpFormatter, dataset_split_warnings, print_split_warnings

logger = logging.getLogger(__name__)

USAGE = "genreslice build AUDIO_DIR OUT_DIR"
#: Statuses of the files a build leaves out of its data set; ``-v`` logs each one.
NOT_BUILT = ("failed", "skipped", "too_short")


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``build`` and its options to the ``genreslice`` subcommands."""
    build = commands.add_parser(
        "build",
        help="turn a folder of audio files into a labelled data set of 128x128 spectrogram slices",
        description=(
            "Find every audio file under AUDIO_DIR (mp3, wav, flac, ogg, aiff, au; m4a, aac, opus, wma with FFmpeg; "
            "recursively), label it (tags, or FMA / MTG-Jamendo metadata, with one of 16 top-level genres; or your "
            "own classes from its folder's name or a CSV), assign a "
            "train/validation/test split (official when the metadata has one, else by artist, stratified by genre), "
            "render its spectrogram (SoX's, or a log-mel one with --features mel) and cut it into 128x128 grayscale "
            "PNG slices in OUT_DIR. Interrupted "
            "builds resume: run the same command again. Labels, genre selection and split ratios may change between "
            "runs; only tracks not built before are rendered. Per-file problems are recorded in OUT_DIR/tracks.csv "
            "and do not stop the build."
        ),
        formatter_class=HelpFormatter,
    )
    build.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder of audio files (searched recursively)")
    build.add_argument("out_dir", metavar="OUT_DIR",
                       help="output folder: new, empty, or an earlier build of the same settings to resume")
    labels = _add_label_options(build)
    _add_parallel_options(build)
    labels.add_argument("--split-ratios", type=split_ratios, default="0.8,0.1,0.1",
                        help="train,validation,test fractions for tracks without an official split; tracks are "
                             "split by artist, never by slice")
    _add_spectrogram_options(build)
    _add_rerun_options(build)
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=run)


def _add_label_options(build: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    labels = build.add_argument_group("labels and splits")
    labels.add_argument("--labels", choices=sorted(LABEL_SOURCES), default="id3",
                        help="where genre, artist and split come from: id3 = the tags inside each file; fma = FMA's "
                             "tracks.csv (official split); jamendo = MTG-Jamendo autotagging TSVs of --category "
                             "(official split from a split folder); folders = the name of the folder each file lies "
                             "in (GTZAN's "
                             "genres/jazz/jazz.00042.au is jazz; the classes are the folder names, artist from the "
                             "tags when present); csv = a CSV of your own with the columns path and label "
                             "(optional: artist, split) given as --metadata")
    labels.add_argument("--metadata", metavar="PATH",
                        help="fma: fma_metadata/ or its tracks.csv; jamendo: a TSV of the --category "
                             "(autotagging_genre.tsv) or a split folder (splits/split-0/) holding its "
                             "-train, -validation and -test files; csv: the CSV file (paths relative to AUDIO_DIR)")
    labels.add_argument("--category", choices=list(JAMENDO_CATEGORIES),
                        help="jamendo only: which tags label the tracks: genre (mapped to 16 top-level genres, "
                             "unless --task multilabel), mood/theme, instrument, top50 (the 50 most frequent tags of "
                             "every kind) or all; the raw tags (mood/theme---happy) are the classes of every category "
                             "but single-label genre; a single-label build takes the tracks with one such tag "
                             "(default: genre)")
    labels.add_argument("--task", choices=["single", "multilabel"], default="single",
                        help="single: one class per track (a track with several is skipped); multilabel: every "
                             "label of a track (--labels jamendo or csv), tracks.csv and slices.csv gain a tags "
                             "column and training scores tags by ROC-AUC")
    labels.add_argument("--subset", choices=["small", "medium", "large"],
                        help="fma only: keep this subset (subsets nest: medium includes small) (default: all tracks)")
    labels.add_argument("--genre-map", metavar="FILE",
                        help="CSV 'tag,genre': jamendo: replaces the shipped tag map; id3: names looked up before "
                             "the FMA hierarchy (may add genres)")
    labels.add_argument("--folder-depth", type=lambda text: whole_number(text, minimum=1, maximum=32), metavar="N",
                        help="folders only: the class is the name of the folder N levels below AUDIO_DIR (1 = the "
                             "folders right in it; files above that level are skipped) (default: 1)")
    labels.add_argument("--genres", "--classes", dest="genres", type=genre_names, default=(), metavar="A,B,...",
                        help="keep only these classes: top-level genres, or the source's own classes (folder names, "
                             "CSV labels, MTG-Jamendo tags); a multi-label track keeps its selected tags (default: "
                             "all)")
    labels.add_argument("--exclude-genres", "--exclude-classes", dest="exclude_genres", type=genre_names, default=(),
                        metavar="A,B,...", help="leave out these classes (genres, or the source's own)")
    labels.add_argument("--min-tracks-per-class", type=positive_int, metavar="N",
                        help="drop the classes that fewer than N tracks would be built with (all splits together, "
                             "after --genres and --exclude-genres); the build reports them (default: keep all)")
    labels.add_argument("--max-tracks-per-genre", type=positive_int, metavar="N",
                        help="keep at most N tracks of each class in each split, chosen by a stable hash of the "
                             "track id; single-label builds only (default: no cap)")
    labels.add_argument("--duplicates", choices=["auto", "group", "keep", "drop-extra"], default="auto",
                        help="copies of one recording: byte-identical files (found by SHA-256 among files of one "
                             "size, before any audio work) and near copies (re-encoded, resampled, louder, trimmed: "
                             "found by the fingerprints of the spectrograms built, after which the splits are drawn "
                             "again): group = one split unit with their artists, so no copy lands in another "
                             "split; keep = report them only; drop-extra = where copies fall in several splits, build "
                             "only those in the last (test, then validation), skip the others; auto = group, but "
                             "drop-extra where grouping would join tracks of different official splits (an official "
                             "split is never moved). Listed in OUT_DIR/duplicates.csv")
    labels.add_argument("--dry-run", action="store_true",
                        help="label and split without touching audio or OUT_DIR; print tracks per class and split "
                             "and what would be skipped")
    return labels


def _add_parallel_options(build: argparse.ArgumentParser) -> None:
    parallel = build.add_argument_group("parallelism")
    parallel.add_argument("--workers", type=worker_count, metavar="N",
                          help="worker processes on this machine, for the process pool or a local Dask cluster "
                               "(default: number of cores)")
    parallel.add_argument("--executor", choices=["pool", "dask"], default="pool",
                          help="where the per-track work runs: pool = a process pool on this machine; dask = a Dask "
                               "cluster: a new local one (one single-threaded worker process per --workers) or, "
                               "with --scheduler, a running one. Outputs are identical. Needs genreslice[dask]")
    parallel.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                          help="run on the Dask cluster of this scheduler (implies --executor dask); its workers "
                               "must see AUDIO_DIR and OUT_DIR at the same paths and run the same SoX; see the "
                               "README's 'Scale out'")


def _add_spectrogram_options(build: argparse.ArgumentParser) -> None:
    defaults = SpectrogramSpec()
    build.add_argument("--sample-rate", type=positive_int, default=defaults.sample_rate,
                       help="analysis rate in Hz every file is resampled to (fixes the frequency axis)")
    build.add_argument("--pixels-per-second", type=positive_int, default=defaults.pixels_per_second,
                       help="spectrogram columns per second; a slice covers 128 of them")
    build.add_argument("--resample-quality", choices=list(RESAMPLE_QUALITIES), default=defaults.resample_quality,
                       help="SoX rate-effect quality; see the README's performance section for the cost")
    build.add_argument("--timeout", type=timeout_seconds, default=SOX_TIMEOUT_S,
                       help="seconds SoX may spend on one file before it is recorded as failed")
    features = build.add_argument_group("representation")
    features.add_argument("--features", choices=list(FEATURES), default=defaults.features,
                          help="what the slices show: sox = SoX's linear-frequency spectrogram (one row per "
                               f"{defaults.sample_rate / 2 / defaults.slice_size:.0f} Hz at the default rate); mel = a "
                               "log-mel spectrogram (librosa's Slaney mel filterbank, 128 bands, 2048-point FFT, dB "
                               "against a fixed full-scale reference, so louder songs are brighter), which spends its "
                               "rows on the low and middle frequencies as hearing does. Both are 8-bit gray, louder "
                               "brighter, silence black, low frequencies at the bottom; a model is trained for one")
    features.add_argument("--mel-fmin", type=hertz, metavar="HZ",
                          help=f"--features mel: lowest frequency of the mel bands (default: {MelSettings().fmin:g})")
    features.add_argument("--mel-fmax", type=hertz, metavar="HZ",
                          help="--features mel: highest frequency of the mel bands, at most half of --sample-rate "
                               "(default: half of --sample-rate)")


def hertz(text: str) -> float:
    """``--mel-fmin``, ``--mel-fmax``: a frequency in Hz, 0 or more."""
    return number(text)


def spectrogram_spec(args: argparse.Namespace) -> SpectrogramSpec:
    """The spectrogram settings of the options.

    Raises
    ------
    ParameterError
        A mel option without ``--features mel``, or settings the spec refuses.
    """
    mel_options = {"fmin": args.mel_fmin, "fmax": args.mel_fmax}
    given = {name: value for name, value in mel_options.items() if value is not None}
    if given and args.features != "mel":
        raise ParameterError(f"{', '.join('--mel-' + name for name in given)} applies to --features mel only "
                             f"(this build uses --features {args.features})")
    return SpectrogramSpec(sample_rate=args.sample_rate, pixels_per_second=args.pixels_per_second,
                           resample_quality=args.resample_quality, features=args.features,
                           mel=MelSettings(**given))


def _add_rerun_options(build: argparse.ArgumentParser) -> None:
    safety = build.add_argument_group("re-runs")
    safety.add_argument("--prune-missing", action="store_true",
                        help="accept a run that drops most built tracks from the data set because their audio "
                             "files are gone (their slices are deleted) or cannot be read (their slices are kept), "
                             "and delete slice folders no track of the data set uses. Without it such a run is "
                             "refused and nothing is changed, so an empty, mistyped or unmounted AUDIO_DIR cannot "
                             "empty a data set. Fewer dropped tracks never need it")
    safety.add_argument("--retry-failed", action="store_true",
                        help="also try again the files SoX rejected on an earlier run (not audio, damaged) although "
                             "they have not changed, and those that failed " + str(MAX_FAILED_ATTEMPTS) + " times; "
                             "other failures (timeouts, unreadable files, worker deaths) are tried again by "
                             "every run until then")


def run(args: argparse.Namespace) -> int:
    """``genreslice build``: the settings from the options, then the build (or its dry run) and its report."""
    check_folder_kinds(USAGE, [(args.audio_dir, "folder of audio files"), (args.out_dir, DATA_SET)])
    spec = spectrogram_spec(args)
    if args.scheduler is not None and args.workers is not None:
        raise ParameterError("--workers applies to this machine only; with --scheduler the cluster's workers run "
                             "the build (start them with: dask worker SCHEDULER --nthreads 1 --nworkers N)")
    workers = args.workers or os.cpu_count() or 1
    config = BuildConfig(spec=spec, split_ratios=args.split_ratios, workers=workers, timeout_s=args.timeout,
                         duplicates=args.duplicates)
    selection = GenreSelection(genres=args.genres, exclude_genres=args.exclude_genres,
                               max_tracks_per_genre=args.max_tracks_per_genre,
                               min_tracks_per_class=args.min_tracks_per_class)
    source = make_label_source(args.labels, audio_dir=args.audio_dir, metadata=args.metadata, subset=args.subset,
                               genre_map=args.genre_map, folder_depth=args.folder_depth, category=args.category,
                               multilabel=args.task == "multilabel")
    where = {"executor": args.executor, "scheduler": args.scheduler, "progress": not args.no_progress}
    if args.dry_run:
        with _running(config, dry_run=True, **where) as (config, options, observer):
            plan = plan_dataset(args.audio_dir, source, config, selection=selection, observer=observer, **options)
        log_not_built(plan.rows, args.audio_dir)
        print_plan(plan, args.audio_dir, args.labels)
        return 0
    return build(args.audio_dir, args.out_dir, source, config, selection=selection, prune_missing=args.prune_missing,
                 retry_failed=args.retry_failed, **where)


def build(audio_dir: str | os.PathLike, out_dir: str | os.PathLike, source: LabelSource, config: BuildConfig, *,
          selection: GenreSelection | None = None, executor: str = "pool", scheduler: str | None = None,
          progress: bool = True, prune_missing: bool = False, retry_failed: bool = False) -> int:
    """Build (or resume) the data set in ``out_dir`` with progress bars, print its report; returns 0.

    ``executor`` is ``"pool"`` or ``"dask"``; a ``scheduler`` address runs the build on that Dask cluster.
    """
    with _running(config, executor=executor, scheduler=scheduler, progress=progress, dry_run=False) \
            as (config, options, observer):
        summary = build_dataset(audio_dir, out_dir, source, config, selection=selection, observer=observer,
                                prune_missing=prune_missing, retry_failed=retry_failed, **options)
    if logger.isEnabledFor(logging.INFO):
        log_not_built(read_tracks_csv(summary.out_dir / TRACKS_CSV), audio_dir)
    print_summary(summary)
    if summary.previous_classes is not None and summary.previous_classes != summary.classes:
        print(f"The genres changed: this folder held {', '.join(summary.previous_classes) or 'none'}; "
              f"now {', '.join(summary.classes) or 'none'}.")
    print_rare_classes(summary.plan)
    print_duplicates(summary.plan)
    print_metadata_report(summary.plan)
    return 0


@contextlib.contextmanager
def _running(config: BuildConfig, *, executor: str, scheduler: str | None, progress: bool, dry_run: bool):
    """Where the per-track work runs, and the progress bars, for the block: yields the config (its ``workers``
    set to the Dask cluster's threads on Dask), the executor options of the build functions and the observer."""
    with contextlib.ExitStack() as stack:
        options: dict = {}
        if executor == "dask" or scheduler is not None:
            cluster = stack.enter_context(dask_cluster(workers=None if scheduler else config.workers,
                                                       scheduler=scheduler))
            options["executor_factory"] = cluster.executor
            config = replace(config, workers=cluster.threads)
            kind = "a local Dask cluster" if cluster.local else "the Dask cluster"
            print(f"Running on {kind} at {cluster.address}: {cluster.threads} worker threads.", flush=True)
            if not dry_run:
                options["sox"] = find_sox()
                cluster.check_sox(options["sox"])
        observer = BuildProgress(enabled=progress)
        try:
            yield config, options, observer
        finally:
            observer.close()


def log_not_built(rows: list[TrackRow], audio_dir: str | os.PathLike) -> None:
    """One INFO line per file left out of the data set (failed, skipped, too short): its path and why. Shown with
    ``-v``; ``tracks.csv`` keeps them all the same."""
    for row in rows:
        if row.status in NOT_BUILT:
            logger.info("%s %s: %s", row.status.replace("_", " "), os.path.join(audio_dir, row.path),
                        row.reason or "no reason recorded")


def print_plan(plan: BuildPlan, audio_dir: str | os.PathLike, labels: str) -> None:
    """The dry run's report: tracks per genre and split, what is left out and why, metadata coverage."""
    balance = plan.balance()
    to_build = [row for row in plan.rows if row.status == TO_BUILD]
    print(f"Dry run of {audio_dir} with --labels {labels}: {len(plan.rows)} audio files, {len(to_build)} tracks "
          "would be built. Nothing was written.")
    if balance:
        what = "tag" if plan.multilabel else "genre"
        width = max(len(what), len("total"), *(len(genre) for genre in balance))
        header = f"{what:<{width}}" + "".join(f"{name:>12}" for name in (*SPLITS, "total"))
        print()
        print(header)
        print("-" * len(header))
        totals = dict.fromkeys(SPLITS, 0)
        for genre, counts in balance.items():
            print(f"{genre:<{width}}" + "".join(f"{counts[s]:>12}" for s in SPLITS) + f"{sum(counts.values()):>12}")
            for split in SPLITS:
                totals[split] += counts[split]
        print("-" * len(header))
        if plan.multilabel:  # a track counts once per tag above; here once
            totals = {split: sum(1 for row in to_build if row.split == split) for split in SPLITS}
            print(f"{'tracks':<{width}}" + "".join(f"{totals[s]:>12}" for s in SPLITS) + f"{sum(totals.values()):>12}")
            tagged = sum(len(row.classes) for row in to_build)
            print(f"\n{len(balance)} tags, {tagged / max(1, len(to_build)):.2f} per track on average.")
        else:
            print(f"{'total':<{width}}" + "".join(f"{totals[s]:>12}" for s in SPLITS)
                  + f"{sum(totals.values()):>12}")
    sources = plan.split_counts
    print()
    print(f"Splits of the {sum(sources.values())} labelled tracks (before --genres and caps): {sources['official']} "
          f"by the official split, {sources['artist']} by their artist's official split, {sources['artist_hash']} by "
          "artist hash; no artist is in two splits.")
    if plan.moved:
        print(f"  {plan.moved} tracks were moved from their official split to keep their artist in one split.")
    if plan.balanced:
        print(f"  {plural(plan.balanced, 'track')} moved to another split with their artist so that every genre "
              "reaches every split.")
    print_rare_classes(plan)
    print_duplicates(plan, dry_run=True)
    print_split_warnings(plan.split_warnings())
    not_built = plan.not_built()
    if not_built:
        print()
        print(f"Not built ({sum(count for _, _, count, _, _ in not_built)} files):")
        for status, pattern, count, reason, path in not_built[:15]:
            shown = f"{reason}   ({path})" if count == 1 else f"{pattern}   e.g. {path}"
            print(f"  {count:>8}  {status}: {shown}")
        if len(not_built) > 15:
            print(f"  ... and {len(not_built) - 15} other kinds of reason")
    print_metadata_report(plan)


def print_duplicates(plan: BuildPlan, *, dry_run: bool = False) -> None:
    """The groups of copies (identical files; near copies after a build), and what was done with them."""
    counts = plan.duplicate_counts()
    blind = " A dry run cannot see copies re-encoded or trimmed (that needs the audio decoded): the build finds them."
    groups = counts["exact_groups"] + counts["near_groups"]
    if not groups:
        if dry_run:
            print("  No two audio files are the same file (byte for byte)." + blind)
        elif counts["tracks_fingerprinted"]:
            print(f"  No copies of one recording among the {plural(counts['tracks_fingerprinted'], 'track')} compared.")
        return
    grouped = f"{counts['grouped']} kept in one split with their artists" if counts["grouped"] else ""
    spread = f"{counts['in_several_splits']} in several splits" if counts["in_several_splits"] else ""
    dropped = (f"{counts['copies_dropped']} {'copy' if counts['copies_dropped'] == 1 else 'copies'} left out "
               "(--duplicates drop-extra)") if counts["copies_dropped"] else ""
    details = "; ".join(part for part in (grouped, spread, dropped) if part)
    kinds = " and ".join(part for part in (
        f"{plural(counts['exact_groups'], 'group')} of identical files" if counts["exact_groups"] else "",
        f"{plural(counts['near_groups'], 'group')} of near copies (one recording re-encoded, trimmed or at another "
        "level)" if counts["near_groups"] else "") if part)
    print(f"  {kinds} ({counts['files_in_groups']} files)" + (f": {details}" if details else "")
          + ("" if dry_run else "; listed in duplicates.csv") + "." + (blind if dry_run else ""))
    to_build = sum(1 for row in plan.rows if row.status == TO_BUILD or row.status == "ok")
    largest = counts["largest_merged_unit_tracks"]
    if to_build and largest > 0.1 * to_build:
        print(f"  Warning: copies join artists into a unit of {largest} of the {to_build} tracks, which must stay in "
              "one split (a compilation filed under one artist?); see duplicates.csv, or build with --duplicates "
              "drop-extra")


def print_rare_classes(plan: BuildPlan) -> None:
    """The classes ``--min-tracks-per-class`` dropped, with their tracks."""
    if plan.rare_classes:
        minimum = plan.selection.get("min_tracks_per_class")
        shown = ", ".join(f"{name} ({count})" for name, count in list(plan.rare_classes.items())[:20])
        more = f", and {len(plan.rare_classes) - 20} more" if len(plan.rare_classes) > 20 else ""
        count = len(plan.rare_classes)
        print(f"  {count} {'class' if count == 1 else 'classes'} with fewer than {minimum} tracks dropped "
              f"(--min-tracks-per-class): {shown}{more}.")


def print_metadata_report(plan: BuildPlan) -> None:
    lines = []
    if plan.unlisted:
        lines.append(f"audio files with no row in the metadata (skipped): {plan.unlisted}")
    if plan.missing_audio:
        shown = ", ".join(plan.missing_audio[:5]) + (", ..." if len(plan.missing_audio) > 5 else "")
        lines.append(f"metadata rows with no audio file: {len(plan.missing_audio)} (track ids {shown})")
    if plan.metadata_problems:
        lines.append(f"malformed metadata rows (skipped): {len(plan.metadata_problems)}, e.g.")
        lines.extend(f"  {problem}" for problem in plan.metadata_problems[:5])
    if lines:
        print()
        print("Metadata:")
        for line in lines:
            print(f"  {line}")


def print_summary(summary: BuildSummary) -> None:
    counts = summary.status_counts
    print(
        f"Built {summary.out_dir}: {counts['ok']} tracks ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped, {counts['too_short']} too short; {summary.n_slices} slices, "
        f"{len(summary.classes)} {'tags' if summary.plan.multilabel else 'genres'}."
    )
    if summary.processed:
        again = [f"{count} {what}" for count, what in ((summary.retried, "failed before and tried again"),
                                                       (summary.repaired, "with missing or damaged slices, redone"))
                 if count]
        details = f" ({'; '.join(again)})" if again else ""
        print(
            f"This run: {plural(summary.processed, 'track')}{details}, "
            f"{summary.audio_seconds / 3600:.2f} h of audio in {summary.wall_seconds:.1f} s "
            f"({summary.audio_hours_per_wall_hour:.0f} audio hours per wall hour)."
        )
    else:
        print(f"No audio work was needed: every selected track was already built ({summary.wall_seconds:.1f} s).")
    if summary.removed:
        print(f"Removed {plural(summary.removed, 'track')} whose audio files are gone, with their slices.")
    if summary.unreachable:
        print(f"{plural(summary.unreachable, 'built track')} cannot be read now: failed for now, slices kept; fix "
              "the files or folders and run the same command again.")
    if summary.unreadable_folders:
        folder, reason = next(iter(summary.unreadable_folders.items()))
        print(f"{plural(len(summary.unreadable_folders), 'folder')} could not be read (e.g. {folder!r}: {reason}); "
              "files there that were never built are not in this data set.")
    if summary.not_retried:
        print(f"{plural(summary.not_retried, 'failed track')} not tried again (SoX rejected it, or it failed "
              f"{MAX_FAILED_ATTEMPTS} times on the same file); --retry-failed tries again.")
    if summary.unowned:
        print(f"{plural(summary.unowned, 'slice folder')} that no track of this data set uses kept (slices of files "
              "that changed and could not be rendered again, or of tracks the journal does not list); "
              "--prune-missing removes them.")
    if summary.resplit:
        print(f"{plural(summary.resplit, 'built track')} changed split since the last build (other split ratios, "
              "labels or genres): train a new model on this data set rather than resuming one trained before.")
    print_split_warnings(dataset_split_warnings(summary.out_dir))
    if counts["failed"] or counts["skipped"] or counts["too_short"]:
        print(f"Reasons per file: {summary.out_dir / 'tracks.csv'} (columns status, reason).")

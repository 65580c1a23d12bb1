"""``genreslice predict``: the genre of audio files and folders, by voting over their slices."""
from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from genreslice.pipeline.discovery import AUDIO_EXTENSIONS
from genreslice.pipeline.spectrogram import SOX_TIMEOUT_S
from genreslice.scripts.argtypes import positive_int, timeout_seconds, worker_count
from genreslice.scripts.commands import VOTE_HELP, HelpFormatter
from genreslice.errors import GenresliceError, ParameterError
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_SOME_FAILED, EXIT_USAGE
from genreslice.training.progress import PredictProgress
from genreslice.training.tensorflow_runtime import load_tensorflow
from genreslice.training.settings import INFERENCE_BATCH_SIZE
from genreslice.training.voting import VOTES

if TYPE_CHECKING:
    from genreslice.training.predict import SongPrediction

USAGE = "usage: genreslice predict [OPTIONS] MODEL_DIR PATH [PATH ...]"
UNDO_USAGE = "usage: genreslice predict --undo LOG"
#: The file that makes a folder a model folder (``genreslice.training.model_dir.MODEL_JSON``, which imports Keras).
_MODEL_JSON = "model.json"
TOP_DEFAULT = 3


class NotAModelFolderError(GenresliceError):
    """MODEL_DIR is not a folder made by ``genreslice train``."""


def fraction(text: str) -> float:
    """``--min-share``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not from 0 to 1")
    return value


class _PredictParser(argparse.ArgumentParser):
    """``predict``'s parser: MODEL_DIR and PATH are required, but not on a command line with ``--undo``, which
    takes neither; :func:`run` then refuses any that are given."""

    def parse_known_args(self, args=None, namespace=None):
        words = list(args) if args is not None else []
        options = words[: words.index("--")] if "--" in words else words  # after "--", words are paths
        if not any(word == "--undo" or word.startswith("--undo=") for word in options):
            return super().parse_known_args(args, namespace)
        positionals = {action.dest: action for action in self._actions if action.dest in ("model_dir", "paths")}
        kept = {dest: (action.nargs, action.required) for dest, action in positionals.items()}
        positionals["model_dir"].nargs, positionals["paths"].nargs = "?", "*"
        for action in positionals.values():
            action.required = False
        try:
            return super().parse_known_args(args, namespace)
        finally:
            for dest, (nargs, required) in kept.items():
                positionals[dest].nargs, positionals[dest].required = nargs, required


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``predict`` and its options to the ``genreslice`` subcommands."""
    predict = commands.add_parser(
        "predict",
        help="the genre of audio files and folders, by voting over their slices",
        description=(
            "Classify audio files with the model in MODEL_DIR. Each file is rendered and cut into slices in memory "
            "with the spectrogram settings of the model's data set (from MODEL_DIR/model.json: SoX's spectrogram, "
            "or the log-mel one of a data set built with --features mel); no files are written. Folders are "
            "searched recursively for audio files ("
            + ", ".join(sorted(ext.lstrip(".") for ext in AUDIO_EXTENSIONS)) + "); a file given twice is "
            "classified once. "
            "For each file: the predicted genre, the share of its slices that voted for it, the votes and mean "
            "probability of every genre, and the number of slices. A clip shorter than one slice is repeated to "
            "fill one slice and classified, and its record says so. A file that cannot be read or holds no audio "
            "is reported with the reason and the others go on."
        ),
        usage=f"{USAGE.removeprefix('usage: ')}\n       {UNDO_USAGE.removeprefix('usage: ')}",
        epilog=(f"Exit status: 0 when every file was classified, {EXIT_SOME_FAILED} when some could not be (0 with "
                f"--allow-failures) or, with --write-tags, when the tags of some could not be written, and with "
                f"--undo when some file could not be put back (changed since, or unreadable); {EXIT_FATAL} when "
                f"nothing could be done (no model, no SoX, no undo log), {EXIT_USAGE} for bad options or MODEL_DIR "
                "and PATH given the wrong way round."),
        formatter_class=HelpFormatter,
    )
    # Required, so that options may stand between them as ever (argparse fills optional positionals from the first
    # word alone); a command line with --undo is parsed with both optional (see _PredictParser).
    predict.__class__ = _PredictParser
    predict.add_argument("model_dir", metavar="MODEL_DIR",
                         help="a model folder made by 'genreslice train' (not with --undo)")
    predict.add_argument("paths", metavar="PATH", nargs="+",
                         help="audio files and folders (searched recursively); at least one (not with --undo)")
    predict.add_argument("--vote", choices=list(VOTES), default="majority", help=VOTE_HELP)
    predict.add_argument("--format", choices=["table", "json", "csv"], default="table",
                         help="table = aligned columns with the top genres (see --top); json = one JSON object per "
                              "file and line; csv = a header, then one row per file with votes_GENRE and "
                              "probability_GENRE columns for every genre")
    predict.add_argument("--top", type=positive_int, default=TOP_DEFAULT, metavar="N",
                         help="genres in the table's top column, ranked by --vote: by share of the slices' votes "
                              "(majority; ties by mean probability) or by mean probability (mean), each with that "
                              "score; at most the model's number of genres. json and csv always carry every genre. "
                              "A multi-label model: the N most probable tags with their mean probabilities, in "
                              "every format (its tags column holds the tags at or above their thresholds)")
    predict.add_argument("--min-share", type=fraction, default=0.0, metavar="S",
                         help="answer 'unsure' for a file whose best genre scores below S (0 to 1): its share of "
                              "the slices under --vote majority, its mean probability under --vote mean. The scores "
                              "are still shown; json and csv add min_share, unsure and best_guess (the genre it "
                              "would have been) and leave genre empty; 0 turns this off. It flags songs between the "
                              "model's genres, not sounds outside them, which a classifier scores as surely as music")
    predict.add_argument("-o", "--output", metavar="FILE",
                         help="write the results to FILE instead of standard output, replacing it once the run "
                              "ends (an interrupted run leaves FILE as it was); '-' is standard output")
    predict.add_argument("--allow-failures", action="store_true",
                         help=f"exit 0 even when some files could not be classified (they are still reported); "
                              f"without it such a run exits {EXIT_SOME_FAILED}, which stops a '&&' chain")
    predict.add_argument("--workers", type=worker_count, default=os.cpu_count() or 1,
                         help="SoX processes decoding files at once (default: number of cores)")
    predict.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, metavar="N",
                         help="most slices per model call; the slices of several songs share a call")
    predict.add_argument("--timeout", type=timeout_seconds, default=SOX_TIMEOUT_S,
                         help="seconds SoX may spend on one file before it is reported as failed")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    tags = predict.add_argument_group("writing the predicted genre into the files' own tags")
    tags.add_argument("--write-tags", action="store_true",
                      help="as each file is classified, write its genre into its tags: ID3 TCON in MP3, WAV and "
                           "AIFF (the file's ID3 version kept), the Vorbis comment GENRE in FLAC, Ogg and Opus, "
                           "\u00a9gen in M4A, WM/Genre in WMA. A multi-label model writes its tags at or above "
                           "their thresholds as several values. A label is written as its name after the last "
                           "'---' (genre---rock -> rock). A file that already has a genre is kept (see "
                           "--overwrite); an unsure song (see --min-share) and a file not classified are skipped. "
                           "Each file is replaced in one step by a tagged copy made in its folder: the audio and "
                           "the other tags stay as they were, and a failure or a killed run leaves the file as it "
                           "was. What is done to each file goes to standard error; the old values go to an undo "
                           "log first (see --undo-log and --undo)")
    tags.add_argument("--dry-run", action="store_true",
                      help="with --write-tags: say what each file's genre would become, and change nothing (no "
                           "file written, no undo log)")
    tags.add_argument("--overwrite", action="store_true",
                      help="with --write-tags: replace the genre a file already has (without it such a file is "
                           "kept as it is)")
    tags.add_argument("--undo-log", metavar="FILE",
                      help="with --write-tags: the undo log, one JSON line per changed file with its old and new "
                           "values, each written before its file is replaced; a new file, or the log of an earlier "
                           "run, which this run adds to (--undo then undoes both, newest first); any other existing "
                           "file is refused. Default: genreslice-tags-undo-YYYYMMDD-HHMMSS.jsonl in the current "
                           "folder, removed again if no file changed")
    tags.add_argument("--undo", metavar="LOG",
                      help="put back the genres the undo log LOG recorded, newest change first, and do nothing "
                           "else (give no MODEL_DIR or PATH). A file whose genre was changed since is left alone "
                           "and reported; one already as it was stays as it is, so running it twice is safe; a "
                           "damaged line of the log is reported and skipped. A file that had no genre before the "
                           "write has its genre field removed")
    predict.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice predict``: :func:`predict` with the options, or :func:`undo_tags` with ``--undo``."""
    tag_options = [option for option, given in (("--write-tags", args.write_tags), ("--dry-run", args.dry_run),
                                                ("--overwrite", args.overwrite),
                                                ("--undo-log", args.undo_log is not None)) if given]
    if args.undo is not None:
        extra = (["MODEL_DIR or PATH"] if args.model_dir is not None or args.paths else []) + tag_options
        if extra:
            raise ParameterError(f"--undo LOG takes no {', '.join(extra)}: it only puts back what the log "
                                 f"recorded. {UNDO_USAGE}")
        return undo_tags(args.undo)
    if args.model_dir is None or not args.paths:
        missing = "MODEL_DIR, PATH" if args.model_dir is None else "PATH"
        raise ParameterError(f"the following arguments are required: {missing}. {USAGE}")
    if tag_options and not args.write_tags:
        raise ParameterError(f"{tag_options[0]} applies with --write-tags only")
    return predict(args.model_dir, args.paths, vote=args.vote, output_format=args.format, workers=args.workers,
                   batch_size=args.batch_size, timeout_s=args.timeout, progress=not args.no_progress,
                   verbose=args.verbose, top=args.top, min_share=args.min_share, output=args.output,
                   allow_failures=args.allow_failures, write_tags=args.write_tags, dry_run=args.dry_run,
                   overwrite=args.overwrite, undo_log=args.undo_log)


def check_model_dir(model_dir: str | os.PathLike, paths: Iterable[str | os.PathLike] = (), *,
                    usage: str = USAGE) -> None:
    """Refuse a MODEL_DIR without ``model.json`` before TensorFlow takes seconds to load; ``usage`` is the
    command's usage line, which the message ends with.

    Raises
    ------
    ParameterError
        MODEL_DIR is not a model folder but one of ``paths`` is: the arguments were given the wrong way round.
    NotAModelFolderError
        MODEL_DIR is not a model folder.
    """
    if (Path(model_dir) / _MODEL_JSON).is_file():
        return
    shown = os.fspath(model_dir)
    if Path(model_dir).is_dir():
        problem = f"MODEL_DIR {shown!r} is not a model folder (no {_MODEL_JSON})"
    elif os.path.lexists(model_dir):
        problem = f"MODEL_DIR {shown!r} is a file, not a model folder (no {_MODEL_JSON})"
    else:
        problem = f"MODEL_DIR {shown!r} does not exist"
    models = [os.fspath(path) for path in paths if (Path(path) / _MODEL_JSON).is_file()]
    if models:
        raise ParameterError(f"{problem}, but PATH {models[0]!r} is: the arguments look swapped; MODEL_DIR comes "
                             f"first. {usage}")
    raise NotAModelFolderError(f"{problem}; give the folder 'genreslice train' made. {usage}")


@contextlib.contextmanager
def _output_stream(output: str | os.PathLike | None):
    """Standard output (None or '-'), or a temporary file that replaces ``output`` when the block ends well."""
    if output is None or os.fspath(output) == "-":
        yield None
        return
    from genreslice.pipeline.layout import replacing

    with replacing(output) as tmp, open(tmp, "w", encoding="utf-8", errors="backslashreplace",
                                        newline="") as stream:
        yield stream


def predict(model_dir: str | os.PathLike, paths: Iterable[str | os.PathLike], *, vote: str = "majority",
            output_format: str = "table", workers: int = 1, batch_size: int = INFERENCE_BATCH_SIZE,
            timeout_s: float = SOX_TIMEOUT_S, progress: bool = True, verbose: bool = False,
            on_song: Callable[[SongPrediction], object] | None = None, top: int = TOP_DEFAULT,
            min_share: float = 0.0, output: str | os.PathLike | None = None, allow_failures: bool = False,
            write_tags: bool = False, dry_run: bool = False, overwrite: bool = False,
            undo_log: str | os.PathLike | None = None) -> int:
    """Stream one line per file to standard output (or to ``output``), a summary to standard error.

    ``on_song`` is called with each :class:`~genreslice.training.predict.SongPrediction` after its line is
    written. ``top`` genres are shown in the table, ranked by ``vote``; a file whose best genre scores below
    ``min_share`` is ``unsure``. ``output`` (a file; None or ``'-'`` for standard output) is replaced only when
    the run ends. ``write_tags``: each file's genre is written into its tags as its record arrives (see
    :class:`LibraryTagger`; ``dry_run``, ``overwrite`` and ``undo_log`` as there). Returns 0 when every file was
    classified, :data:`EXIT_SOME_FAILED` when some could not be (0 if ``allow_failures``) or when the tags of
    some could not be written.
    """
    if top < 1:
        raise ParameterError(f"top={top} must be at least 1")
    if not write_tags and (dry_run or overwrite or undo_log is not None):
        raise ParameterError("dry_run, overwrite and undo_log apply with write_tags=True (--write-tags) only")
    if output is not None and os.fspath(output) != "-":
        if Path(output).is_dir():
            raise ParameterError(f"--output {os.fspath(output)!r} is a folder; give a file name")
        if not Path(output).absolute().parent.is_dir():
            raise ParameterError(f"--output {os.fspath(output)!r}: its folder does not exist")
    paths = list(paths)
    check_model_dir(model_dir, paths)
    # Before TensorFlow takes seconds to load: a log that cannot be written stops the run here.
    tagger = (LibraryTagger(model_dir, dry_run=dry_run, overwrite=overwrite, undo_log=undo_log)
              if write_tags else None)
    try:
        status = _predict_files(model_dir, paths, vote=vote, output_format=output_format, workers=workers,
                                batch_size=batch_size, timeout_s=timeout_s, progress=progress, verbose=verbose,
                                on_song=on_song, top=top, min_share=min_share, output=output,
                                allow_failures=allow_failures, tagger=tagger)
    finally:
        if tagger is not None:
            tagger.close()
    return EXIT_SOME_FAILED if tagger is not None and tagger.counts["failed"] else status


def _predict_files(model_dir: str | os.PathLike, paths: list, *, vote: str, output_format: str, workers: int,
                   batch_size: int, timeout_s: float, progress: bool, verbose: bool,
                   on_song: Callable[[SongPrediction], object] | None, top: int, min_share: float,
                   output: str | os.PathLike | None, allow_failures: bool, tagger: LibraryTagger | None) -> int:
    """:func:`predict` of checked arguments."""
    load_tensorflow(quiet=not verbose)
    from genreslice.training.predict import Classifier

    started = time.monotonic()
    classifier = Classifier(model_dir, batch_size=batch_size, timeout_s=timeout_s)
    loaded = time.monotonic()
    for note in classifier.notes:
        print(f"genreslice predict: note: {note}", file=sys.stderr)
    header, line_of = prediction_lines(output_format, classifier.classes, vote=vote, top=top,
                                       min_share=min_share, multilabel=classifier.multilabel)
    observer = PredictProgress(enabled=progress)
    if tagger is not None:
        tagger.start(paths, observer=observer, multilabel=classifier.multilabel)
    counts = collections.Counter()
    with _output_stream(output) as stream:
        try:
            if header is not None:
                _write(header, stream, None)
            for song in classifier.iter_classify(paths, vote=vote, workers=workers, min_share=min_share,
                                                 observer=observer):
                counts[song.status] += 1
                counts["unsure"] += song.unsure
                _write(line_of(song), stream, observer)
                if tagger is not None:
                    tagger.on_song(song)
                if on_song is not None:
                    on_song(song)
        finally:
            observer.close()
    seconds = time.monotonic() - loaded
    classified, total = counts["ok"], counts["ok"] + counts["failed"] + counts["too_short"]
    failed = total - classified
    rate = f"; {classified / seconds:.1f} songs/s" if classified and seconds > 0 else ""
    unsure = (f"; {counts['unsure']} unsure (best genre below --min-share {min_share:g})"
              if counts["unsure"] else "")
    written = f"; results in {os.fspath(output)}" if output is not None and os.fspath(output) != "-" else ""
    print(f"genreslice predict: classified {classified} of {total} files in {seconds:.1f} s after loading the "
          f"model ({loaded - started:.1f} s){rate}{unsure}"
          + (f"; {failed} could not be classified (reasons in the output)" if failed else "") + f"{written}.",
          file=sys.stderr)
    return EXIT_SOME_FAILED if failed and not allow_failures else 0


class LibraryTagger:
    """``--write-tags``: writes each classified file's genre into its own tags as its record arrives, so that a
    run stopped midway has tagged the files it reported.

    A file that already has a genre is kept unless ``overwrite``; an unsure song and a file that was not
    classified are skipped; a multi-label model's tags (those at or above their thresholds) are written as
    several values. Each file is rewritten as :func:`~genreslice.pipeline.library_tags.write_genres` writes (a
    tagged copy replaces it in one step), its old values recorded first in the undo log. What happens to each
    file is reported on standard error, then a summary; with ``dry_run`` nothing is written and no log is made.

    Parameters
    ----------
    model_dir : str or os.PathLike
        Recorded in the undo log.
    dry_run : bool
        Report what would change; write nothing.
    overwrite : bool
        Replace a genre a file already has.
    undo_log : str or os.PathLike, optional
        See :class:`~genreslice.pipeline.library_tags.UndoLog`; default: a new log in the current folder.

    Raises
    ------
    UndoLogError
        The undo log cannot be created or is not one.
    """

    def __init__(self, model_dir: str | os.PathLike, *, dry_run: bool = False, overwrite: bool = False,
                 undo_log: str | os.PathLike | None = None) -> None:
        from genreslice.pipeline.library_tags import UndoLog

        self.dry_run = dry_run
        self.overwrite = overwrite
        self.log = None if dry_run else UndoLog(undo_log, model_dir=model_dir)
        self.counts: collections.Counter[str] = collections.Counter()
        self.multilabel = False
        self._inputs: collections.deque = collections.deque()
        self._observer: PredictProgress | None = None
        self._started = False

    def start(self, paths: Iterable[str | os.PathLike], *, observer: PredictProgress | None = None,
              multilabel: bool = False) -> None:
        """Find the files as the classifier will (their records carry names for display only, which may not
        open them), and where to print around the progress bar."""
        from genreslice.training.predict import collect_audio

        self._inputs = collections.deque(collect_audio(paths))
        self._observer = observer
        self.multilabel = multilabel

    def _say(self, text: str) -> None:
        line = f"genreslice predict: tags: {text}"
        bar = getattr(self._observer, "bar", None)
        if bar is not None:
            bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def _real_path(self, song: SongPrediction) -> Path | None:
        """The file of ``song``: records come one per collected input, in order, each named by its ``shown``."""
        for position, item in enumerate(self._inputs):
            if item.shown == song.path:
                for _ in range(position + 1):
                    self._inputs.popleft()
                return item.path
        return None

    def on_song(self, song: SongPrediction) -> None:
        """Tag (or report what would be done to) the file of one record."""
        from genreslice.pipeline.library_tags import (
            TagWriteError,
            has_genre,
            read_genres,
            show_values,
            tag_values,
            write_genres,
            write_problem,
        )

        self._started = True
        path = self._real_path(song)
        if not song.ok:
            self.counts["not classified"] += 1
            return
        shown = song.path.replace("\r", "\\r").replace("\n", "\\n")
        if song.tags is not None:
            values = tag_values(song.tags)
            if not values:
                self.counts["no tags"] += 1
                self._say(f"{shown}: skipped, no tag reached its threshold")
                return
        elif song.unsure or song.genre is None:
            self.counts["unsure"] += 1
            self._say(f"{shown}: skipped, unsure (best guess {song.best_guess} {song.score:.2f} below --min-share "
                      f"{song.min_share:g})")
            return
        else:
            values = tag_values([song.genre])
        if path is None:
            self.counts["failed"] += 1
            self._say(f"{shown}: failed, cannot tell which file this record is (the folder changed during the run)")
            return
        try:
            current = read_genres(path).values
            if current == tuple(values):
                self.counts["kept"] += 1
                self._say(f"{shown}: unchanged, its genre is {show_values(current)} already")
                return
            if has_genre(current) and not self.overwrite:
                self.counts["kept"] += 1
                self._say(f"{shown}: kept, already has genre {show_values(current)} (--overwrite to replace)")
                return
            if self.dry_run:
                problem = write_problem(path)
                if problem:
                    raise TagWriteError(path, problem)
                self.counts["written"] += 1
                self._say(f"{shown}: genre {show_values(current)} -> {show_values(values)}")
                return
            change = write_genres(path, values, expect=current, before_replace=self.log.record)
        except TagWriteError as err:
            self.counts["failed"] += 1
            self._say(f"{shown}: failed, {err.reason}")
            return
        self.counts["written"] += 1
        self._say(f"{shown}: genre {show_values(change.old)} -> {show_values(change.new)}")

    def close(self) -> None:
        """Close the undo log (removing one this run made and left empty) and print the summary."""
        kept_log = self.log.close(remove_if_empty=True) if self.log is not None else False
        if not self._started:
            return
        counts = self.counts
        skipped = (f"{counts['no tags']} (no tag reached its threshold)" if self.multilabel
                   else f"{counts['unsure']} (unsure)")
        if self.dry_run:
            print(f"genreslice predict: tags (dry run, nothing written): would write {counts['written']}, keep "
                  f"{counts['kept']} (already had a genre), skip {skipped}, fail {counts['failed']}.",
                  file=sys.stderr)
            return
        if kept_log and self.log.records:
            after = f"; undo with: genreslice predict --undo={shlex.quote(os.fspath(self.log.path))}"
        elif kept_log:
            after = f"; no file changed, nothing added to the undo log {os.fspath(self.log.path)}"
        else:
            after = "; no file changed, so no undo log"
        print(f"genreslice predict: tags: wrote {counts['written']}, kept {counts['kept']} (already had a genre), "
              f"skipped {skipped}, failed {counts['failed']}{after}.", file=sys.stderr)


def undo_tags(log: str | os.PathLike) -> int:
    """``genreslice predict --undo LOG``: put back the genre values an undo log recorded.

    One line per file on standard output (restored, already as it was, left alone because it was changed since,
    failed), damaged log lines and a summary on standard error. Returns 0 when every file holds its old values
    again, :data:`EXIT_SOME_FAILED` when some file was left alone or could not be restored.

    Raises
    ------
    UndoLogError
        The log cannot be read or is not a genreslice undo log.
    """
    from genreslice.pipeline.library_tags import read_undo_log, show_values, shown_path, undo_changes

    records, problems = read_undo_log(log)
    for problem in problems:
        print(f"genreslice predict: undo: {problem}", file=sys.stderr)
    counts: collections.Counter[str] = collections.Counter()
    for result in undo_changes(records):
        counts[result.outcome] += 1
        shown = shown_path(result.path)
        if result.outcome == "restored":
            line = f"{shown}: restored, genre {show_values(result.before)} -> {show_values(result.after)}"
        elif result.outcome == "already":
            line = f"{shown}: already as it was, genre {show_values(result.before)}"
        elif result.outcome == "changed":
            line = (f"{shown}: left alone, its genre was changed since: it is {show_values(result.before)}, the "
                    f"tag write made it {result.detail}")
        else:
            line = f"{shown}: failed, {result.detail}"
        print(line, flush=True)
    total = sum(counts.values())
    damaged = f"; {len(problems)} damaged line{'s' * (len(problems) != 1)} of the log skipped" if problems else ""
    print(f"genreslice predict: undo: {total} file{'s' * (total != 1)} in {os.fspath(log)}: restored "
          f"{counts['restored']}, already as they were {counts['already']}, left alone (changed since) "
          f"{counts['changed']}, failed {counts['failed']}{damaged}.", file=sys.stderr)
    return EXIT_SOME_FAILED if counts["changed"] or counts["failed"] else 0


def tag_lines(output_format: str, classes: tuple[str, ...], *, top: int = TOP_DEFAULT):
    """:func:`prediction_lines` of a multi-label model: the tags above their thresholds and the ``top`` most
    probable tags with their mean probabilities, in every format (json: ``top`` as ``[tag, probability]`` pairs;
    csv: ``top`` as ``tag:probability`` joined by ``;``, then a probability column per tag)."""
    import json

    from genreslice.pipeline.layout import csv_line

    shown = min(top, len(classes))
    if output_format == "json":
        return None, lambda song: json.dumps({**song.to_dict(), "top": [[name, score] for name, score
                                                                       in (song.top(shown) if song.ok else [])]},
                                             ensure_ascii=False)
    if output_format == "csv":
        fixed = ["path", "status", "reason", "tags", "top", "n_slices", "duration_s"]

        def csv_row(song) -> str:
            ranked = ";".join(f"{name}:{score:.4f}" for name, score in song.top(shown)) if song.ok else ""
            return csv_line([song.path, song.status, song.reason, ";".join(song.tags or ()), ranked, song.n_slices,
                             "" if song.duration_s is None else song.duration_s,
                             *(song.mean_probability.get(name, "") for name in classes)])

        return csv_line([*fixed, *(f"probability_{name}" for name in classes)]), csv_row
    tag_width = max(len("tags"), len("too short"), 24)
    name_width = max(len(name) for name in classes)
    top_width = shown * (name_width + 7)

    def table_row(song) -> str:
        path = song.path.replace("\r", "\\r").replace("\n", "\\n")
        reason = song.reason.replace("\r", "\\r").replace("\n", "\\n")
        if not song.ok:
            status = "too short" if song.status == "too_short" else song.status
            return f"{status:<{tag_width}}  {'-':>6}  {'-':<{top_width}}  {path}: {reason}"
        tags = ", ".join(song.tags) or "(none)"
        ranked = "  ".join(f"{name} {score:.2f}" for name, score in song.top(shown))
        line = f"{tags:<{tag_width}}  {song.n_slices:>6}  {ranked:<{top_width}}  {path}"
        return f"{line}  ({reason})" if reason else line

    header = f"{'tags':<{tag_width}}  {'slices':>6}  {f'top {shown} by mean probability':<{top_width}}  file"
    return header, table_row


def _write(line: str, stream, observer: PredictProgress | None) -> None:
    """One line to ``stream``, or to standard output around the progress bar when ``stream`` is None."""
    if stream is not None:
        stream.write(line + "\n")
    elif observer is not None:
        observer.write(line)
    else:
        print(line, flush=True)


def prediction_lines(output_format: str, classes: tuple[str, ...], *, vote: str = "majority",
                     top: int = TOP_DEFAULT, min_share: float = 0.0, multilabel: bool = False):
    """A header (or None) and a function from one SongPrediction to its output line."""
    import json

    from genreslice.pipeline.layout import csv_line

    if multilabel:
        return tag_lines(output_format, classes, top=top)
    if output_format == "json":
        return None, lambda song: json.dumps(song.to_dict(), ensure_ascii=False)
    if output_format == "csv":
        fixed = ["path", "status", "reason", "genre", "vote", "vote_share", "n_slices", "duration_s",
                 *(["min_share", "unsure", "best_guess"] if min_share > 0 else [])]
        columns = [*fixed, *(f"votes_{name}" for name in classes), *(f"probability_{name}" for name in classes)]

        def csv_row(song) -> str:
            fields = song.to_dict()
            return csv_line([*("" if fields[key] is None else fields[key] for key in fixed),
                             *(song.votes.get(name, "") for name in classes),
                             *(song.mean_probability.get(name, "") for name in classes)])

        return csv_line(columns), csv_row
    genre_width = max(len("genre"), len("too short"), *(len(name) for name in classes))
    shown = min(top, max(TOP_DEFAULT, len(classes)))  # the column is as wide as ever by default
    top_width = shown * (genre_width + 7)

    def table_row(song) -> str:
        path = song.path.replace("\r", "\\r").replace("\n", "\\n")  # one line per file, whatever its name
        reason = song.reason.replace("\r", "\\r").replace("\n", "\\n")
        if not song.ok:
            status = "too short" if song.status == "too_short" else song.status
            return f"{status:<{genre_width}}  {'-':>5}  {'-':>6}  {'-':<{top_width}}  {path}: {reason}"
        ranked = "  ".join(f"{name} {score:.2f}" for name, score in song.top(shown))
        genre = "unsure" if song.unsure else song.genre
        line = f"{genre:<{genre_width}}  {song.vote_share:>5.2f}  {song.n_slices:>6}  {ranked:<{top_width}}  {path}"
        return f"{line}  ({reason})" if reason else line

    ranking = "vote share" if vote == "majority" else "mean probability"
    header = (f"{'genre':<{genre_width}}  {'share':>5}  {'slices':>6}  {f'top {min(shown, len(classes))} by {ranking}':<{top_width}}"
              "  file")
    return header, table_row

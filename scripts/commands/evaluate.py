"""``genreslice evaluate``: slice and song accuracy of a trained model on a split of a built data set."""
from __future__ import annotations

import argparse
import os

from genreslice.pipeline.splits import SPLITS
from genreslice.scripts.argtypes import DATA_SET, MODEL_FOLDER, check_folder_kinds, positive_int, worker_count
from genreslice.scripts.commands import VOTE_HELP, HelpFormatter
from genreslice.training.progress import EvaluateProgress
from genreslice.training.tensorflow_runtime import load_tensorflow
from genreslice.training.settings import INFERENCE_BATCH_SIZE, default_loader_workers
from genreslice.training.voting import VOTES

USAGE = "genreslice evaluate DATASET_DIR MODEL_DIR"


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its options to the ``genreslice`` subcommands."""
    evaluate = commands.add_parser(
        "evaluate",
        help="slice and song accuracy of a trained model on a split of a built data set",
        description=(
            "Classify every slice of one split of DATASET_DIR with the model in MODEL_DIR and decide each song's "
            "genre by voting over its slices. Reports slice accuracy, song accuracy under both votes (majority "
            "and mean probability) and per-genre precision, recall, F1 and support at song level, and writes "
            "MODEL_DIR/eval/SPLIT/: metrics.json, confusion.csv and confusion.png (song-level confusion matrix) "
            "and songs.csv (each song's verdicts). The data set must have the model's genres and spectrogram "
            "settings; evaluate on the data set the model was trained on, whose test split it has never seen."
        ),
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("dataset_dir", metavar="DATASET_DIR", help="a data set made by 'genreslice build'")
    evaluate.add_argument("model_dir", metavar="MODEL_DIR", help="a model folder made by 'genreslice train'")
    evaluate.add_argument("--split", choices=list(SPLITS), default="test", help="which split to classify")
    evaluate.add_argument("--vote", choices=list(VOTES), default="majority",
                          help="the vote behind the per-genre scores and the confusion matrix (both song "
                               "accuracies are always reported): " + VOTE_HELP)
    evaluate.add_argument("--batch-size", type=positive_int, default=INFERENCE_BATCH_SIZE, metavar="N",
                          help="slices per model call")
    evaluate.add_argument("--loader-workers", type=worker_count, default=default_loader_workers(), metavar="N",
                          help="threads that read and decode slices ahead of the model")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """``genreslice evaluate``: :func:`evaluate` with the options."""
    return evaluate(args.dataset_dir, args.model_dir, split=args.split, vote=args.vote, batch_size=args.batch_size,
                    loader_workers=args.loader_workers, progress=not args.no_progress, verbose=args.verbose)


def evaluate(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike, *, split: str = "test",
             vote: str = "majority", batch_size: int = INFERENCE_BATCH_SIZE, loader_workers: int | None = None,
             progress: bool = True, verbose: bool = False) -> int:
    """Score the model on one split, print a summary, name the files written; returns 0.

    ``loader_workers`` None: the default number of loader threads.
    """
    check_folders(dataset_dir, model_dir)
    load_tensorflow(quiet=not verbose)
    from genreslice.training.evaluate import evaluate_model

    observer = EvaluateProgress(enabled=progress)
    try:
        result = evaluate_model(dataset_dir, model_dir, split=split, vote=vote, batch_size=batch_size,
                                loader_workers=loader_workers, observer=observer)
    finally:
        observer.close()
    if result.metrics.get("task") == "multilabel":
        print_tag_evaluation(result.metrics, dataset_dir, model_dir)
        files = "metrics.json, tags.tsv, summary.tsv, songs.csv"
    else:
        print_evaluation(result.metrics, dataset_dir, model_dir)
        files = "metrics.json, confusion.csv, confusion.png, songs.csv"
    for note in result.notes:
        print(f"Note: {note}.")
    print(f"Wrote {result.out_dir}: {files}")
    return 0


def print_tag_evaluation(metrics: dict, dataset_dir: str | os.PathLike, model_dir: str | os.PathLike,
                         shown: int = 10) -> None:
    """Macro and micro scores of a multi-label model, then its best and worst tags by ROC-AUC."""
    songs = metrics["songs"]
    print(f"Evaluated {model_dir} on the {metrics['split']} split of {dataset_dir}: "
          f"{metrics['n_slices']} slices of {metrics['n_songs']} songs, {len(metrics['classes'])} tags "
          f"({metrics['seconds']:.1f} s).")

    def cell(value) -> str:
        return f"{value:>9.4f}" if value is not None else f"{'-':>9}"

    print(f"  {'songs (mean of slice probabilities)':<38}{'ROC-AUC':>9}{'PR-AUC':>9}{'precision':>10}{'recall':>9}"
          f"{'F-score':>9}")
    for average in ("macro", "micro"):
        print(f"  {average:<38}" + "".join(cell(songs[f"{key}_{average}"]) for key in ("roc_auc", "pr_auc"))
              + f" {cell(songs[f'precision_{average}'])}" + "".join(cell(songs[f"{key}_{average}"])
                                                                     for key in ("recall", "f_score")))
    slices = metrics["slices"]
    print(f"  {'slices, macro':<38}{cell(slices['roc_auc_macro'])}{cell(slices['pr_auc_macro'])}")
    print(f"  (precision, recall and F-score at the tag thresholds: {metrics['thresholds']})")
    ranked = sorted(((scores["roc_auc"], name, scores) for name, scores in metrics["per_tag"].items()
                     if scores["roc_auc"] is not None), reverse=True)
    if len(ranked) > 1:
        width = max(len("tag"), *(len(name) for _, name, _ in ranked))
        print()
        heading = "Per tag, at song level" + (f" (the {shown // 2} best and worst by ROC-AUC; every tag in "
                                               "tags.tsv)" if len(ranked) > shown else "")
        print(f"{heading}:")
        print(f"  {'tag':<{width}}  {'ROC-AUC':>9}{'PR-AUC':>9}{'F-score':>9}{'support':>9}")
        chosen = ranked if len(ranked) <= shown else ranked[:shown // 2] + ranked[-(shown // 2):]
        for position, (_, name, scores) in enumerate(chosen):
            if len(ranked) > shown and position == shown // 2:
                print(f"  {'...':<{width}}")
            print(f"  {name:<{width}}  {cell(scores['roc_auc'])}{cell(scores['pr_auc'])}{cell(scores['f_score'])}"
                  f"{scores['support']:>9}")


def check_folders(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike) -> None:
    """Refuse a missing folder, or a model folder given as the data set (or the other way round), at once: before
    TensorFlow loads, with the likely mistake named."""
    for path, kind in ((dataset_dir, DATA_SET), (model_dir, MODEL_FOLDER)):
        if not os.path.isdir(path):
            raise NotADirectoryError(f"{kind} {os.fspath(path)!r} does not exist or is not a folder")
    check_folder_kinds(USAGE, [(dataset_dir, DATA_SET), (model_dir, MODEL_FOLDER)])


def print_evaluation(metrics: dict, dataset_dir: str | os.PathLike, model_dir: str | os.PathLike) -> None:
    """Accuracies, then a per-genre table of precision, recall, F1 and support."""
    n_songs = metrics["n_songs"]
    print(f"Evaluated {model_dir} on the {metrics['split']} split of {dataset_dir}: "
          f"{metrics['n_slices']} slices of {n_songs} songs ({metrics['seconds']:.1f} s).")
    rows = [("slice accuracy", metrics["slice_accuracy"], ""),
            ("song accuracy, majority vote", metrics["song_accuracy_majority"],
             f"{round(metrics['song_accuracy_majority'] * n_songs)} of {n_songs} songs"),
            ("song accuracy, mean probability", metrics["song_accuracy_mean"],
             f"{round(metrics['song_accuracy_mean'] * n_songs)} of {n_songs} songs")]
    for label, value, extra in rows:
        print(f"  {label:<33}{value:.4f}  {extra}".rstrip())
    per_genre = metrics["per_genre"]
    width = max(len("macro average"), *(len(name) for name in per_genre))
    print()
    print(f"Per genre, at song level ({metrics['vote']} vote):")
    print(f"  {'genre':<{width}}  precision     recall         f1    support")
    for name, scores in per_genre.items():
        print(f"  {name:<{width}}  {scores['precision']:>9.4f}  {scores['recall']:>9.4f}  {scores['f1']:>9.4f}  "
              f"{scores['support']:>9}")
    print(f"  {'macro F1':<{width}}  {'':>9}  {'':>9}  {metrics['macro_f1']:>9.4f}")

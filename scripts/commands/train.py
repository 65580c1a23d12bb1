"""``genreslice train``: a CNN trained on a built data set, reading slices from disk batch by batch."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from genreslice.pipeline.layout import DATASET_JSON
from genreslice.errors import ParameterError
from genreslice.scripts.argtypes import (
    DATA_SET,
    MODEL_FOLDER,
    check_folder_kinds,
    device_count,
    non_negative_int,
    number,
    optional_fraction,
    optional_loss,
    positive_float,
    positive_int,
    worker_count,
)
from genreslice.scripts.commands import HelpFormatter, dataset_split_warnings, print_split_warnings
from genreslice.training.progress import TrainProgress
from genreslice.training.tensorflow_runtime import load_tensorflow
from genreslice.training.errors import DatasetError
from genreslice.training.models import PRESETS
from genreslice.training.settings import (
    AUGMENTATIONS,
    CLASS_WEIGHTS,
    DEFAULT_MODEL,
    KEEP_RULES,
    LR_SCHEDULES,
    MONITORS,
    NEW_RUN_CHOICES,
    TrainConfig,
    augment_names,
    default_loader_workers,
)

USAGE = "genreslice train DATASET_DIR MODEL_DIR"


def register_subcommand(commands: argparse._SubParsersAction) -> None:
    """Add ``train`` and its options to the ``genreslice`` subcommands."""
    defaults = TrainConfig()
    train = commands.add_parser(
        "train",
        help="train a CNN on a built data set, reading slices from disk batch by batch",
        description=(
            "Train a genre classifier on the train split of DATASET_DIR (the OUT_DIR of 'genreslice build'), "
            "validating on its validation split after every epoch. Slices are read from disk one batch at a "
            "time, so data sets larger than memory train in bounded memory. Training stops when validation "
            "accuracy and loss reach the targets, or when the --monitor metric has not improved for --patience "
            "epochs, and keeps the weights of the best epoch by that metric (or of the last, with --keep last); "
            "its last lines say which epoch's weights were kept and why. Every epoch is checkpointed in MODEL_DIR: "
            "if a run is interrupted, run the same command again to continue from the last completed epoch. MODEL_DIR "
            "receives model.keras, model.json (classes, spectrogram settings, metrics), history.csv, curves.png "
            "and TensorBoard logs in logs/."
        ),
        formatter_class=HelpFormatter,
    )
    train.add_argument("dataset_dir", metavar="DATASET_DIR", help="a data set made by 'genreslice build'")
    train.add_argument("model_dir", metavar="MODEL_DIR",
                       help="output folder: new, empty, or an interrupted run of the same settings to continue")
    train.add_argument("--model", choices=sorted(PRESETS), default=defaults.model,
                       help=f"network (default: {DEFAULT_MODEL} for a new run, the best on 'make bench-models'; a "
                            "continued run keeps the one it recorded): " + "; ".join(f"{name} = {preset.description}"
                                                    for name, preset in sorted(PRESETS.items())))
    train.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                       help="most epochs in all; a continued run counts the epochs done before, and a run that "
                            "stopped at this limit continues when given a higher one")
    train.add_argument("--batch-size", type=positive_int, metavar="N",
                       help="slices per batch (default: the model's own, in brackets after each --model above)")
    train.add_argument("--learning-rate", type=positive_float, metavar="RATE",
                       help="optimizer learning rate; with --lr-schedule, the rate it starts from (default: the "
                            "model's own, in brackets after each --model above)")
    train.add_argument("--seed", type=non_negative_int, default=defaults.seed,
                       help="seeds weight initialisation, dropout, the per-epoch shuffle of the samples, and "
                            "--augment")
    _add_model_options(train, defaults)
    _add_stopping_options(train, defaults)
    _add_resource_options(train, defaults)
    train.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch remains)")
    train.set_defaults(handler=run)


def augment_list(text: str) -> tuple[str, ...]:
    """``--augment``: a comma-separated list of augmentations, or ``none``."""
    try:
        return augment_names(text)
    except ParameterError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def non_negative_float(text: str) -> float:
    return number(text)


def _add_model_options(train: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    options = train.add_argument_group(
        "training options", "A run continued with other values of these is refused: train into a new folder.")
    options.add_argument("--l2", type=non_negative_float, default=defaults.l2, metavar="FACTOR",
                         help="L2 weight regularisation: adds FACTOR x the sum of the squared kernel weights of every "
                              "convolution, dense and recurrent layer to the loss (typical: 1e-4 to 1e-2); 0 = none")
    options.add_argument("--lr-schedule", choices=list(LR_SCHEDULES), default=defaults.lr_schedule,
                         help="how the learning rate changes: constant; plateau = halved when the --monitor metric "
                              "has not improved for 2 epochs (not below 1e-6); cosine = a half cosine from "
                              "--learning-rate down to 0 at the last batch of --epochs. history.csv's learning_rate "
                              "column holds the rate at each epoch's end (for cosine, the rate reached at its last "
                              "batch)")
    options.add_argument("--width", type=positive_float, default=defaults.width, metavar="FACTOR",
                         help="multiplies the filters of every convolution and the units of every recurrent layer "
                              "(rounded, at least 1): 0.5 = half as many; a filter sweep is a loop of runs into "
                              "separate folders")
    options.add_argument("--augment", type=augment_list, default=defaults.augment, metavar="LIST",
                         help="augment the training slices on the fly (never the validation slices; the files stay "
                              "as they are), a comma-separated list: offset = crop at a random column offset from "
                              "the slice and its neighbour in the track; gain = a random brightness (gain) of up to "
                              "+-16 gray levels, silence stays black; specaugment = zero 2 random bands of rows "
                              "and 2 of columns, each up to 1/8 of the slice. Seeded by --seed and the epoch. "
                              f"'none' (the default) for none. Choices: {', '.join(AUGMENTATIONS)}")


def _add_stopping_options(train: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    stopping = train.add_argument_group("stopping")
    stopping.add_argument("--target-accuracy", type=optional_fraction, default=defaults.target_accuracy,
                          metavar="FRACTION",
                          help="stop once validation accuracy reaches this (with --target-loss); 'off' disables "
                               "the target rule (single-label data sets; multi-label training has none)")
    stopping.add_argument("--target-loss", type=optional_loss, default=defaults.target_loss, metavar="LOSS",
                          help="...and validation loss is at most this; 'off' checks accuracy only")
    stopping.add_argument("--patience", type=non_negative_int, default=defaults.patience, metavar="EPOCHS",
                          help="stop when the --monitor metric has not improved for this many epochs; 0 disables")
    stopping.add_argument("--monitor", choices=list(MONITORS), default=None,
                          help="what makes an epoch the best, and what --patience watches: the lowest val_loss, "
                               "or the highest val_accuracy (an equal accuracy with a lower val_loss counts as "
                               "better). val_accuracy keeps a run whose loss rises while its accuracy still climbs "
                               "(an overconfident network); on a small validation set its steps stop runs early. "
                               "val_roc_auc (multi-label data sets): the highest macro ROC-AUC over the validation "
                               f"slices (default: {NEW_RUN_CHOICES['monitor']}, or val_roc_auc on a multi-label data "
                               "set; a continued run keeps its own)")
    stopping.add_argument("--keep", choices=list(KEEP_RULES), default=None,
                          help="whose weights model.keras holds at the end: the best epoch by --monitor, or the "
                               f"last epoch trained (default: {NEW_RUN_CHOICES['keep']}; a continued run keeps "
                               "its own)")


def _add_resource_options(train: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    train.add_argument("--class-weights", choices=list(CLASS_WEIGHTS), default=defaults.class_weights,
                       help="balanced = weigh each genre's slices inversely to its share of the training split, so "
                            "rare genres count as much as common ones; none = every slice weighs the same "
                            "(multi-label training always does, and has no target rule)")
    train.add_argument("--loader-workers", type=worker_count, default=default_loader_workers(), metavar="N",
                       help="threads that read and decode slice batches ahead of the model")
    train.add_argument("--devices", type=device_count, default=None, metavar="all|N",
                       help="train on all GPUs (all) or the first N, one model replica each "
                            "(tf.distribute.MirroredStrategy); --batch-size is per device, so a step takes N times "
                            "as many slices. Without a GPU: the CPU. (default: all)")


def run(args: argparse.Namespace) -> int:
    """``genreslice train``: the training settings from the options, then :func:`train`."""
    config = TrainConfig(model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                         learning_rate=args.learning_rate, seed=args.seed, target_accuracy=args.target_accuracy,
                         target_loss=args.target_loss, patience=args.patience, monitor=args.monitor,
                         keep=args.keep, class_weights=args.class_weights, loader_workers=args.loader_workers,
                         devices=args.devices, l2=args.l2, lr_schedule=args.lr_schedule, width=args.width,
                         augment=args.augment)
    return train(args.dataset_dir, args.model_dir, config, progress=not args.no_progress, verbose=args.verbose)


def train(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike, config: TrainConfig, *,
          progress: bool = True, verbose: bool = False) -> int:
    """Train (or continue training) the model in ``model_dir`` with a progress bar, print its report; returns 0.

    ``verbose`` shows TensorFlow's native start-up lines.
    """
    _check_folders(dataset_dir, model_dir)  # before TensorFlow's seconds of start-up
    print_split_warnings(dataset_split_warnings(dataset_dir))
    devices = load_tensorflow(quiet=not verbose)
    from genreslice.training.train import train_model

    print(f"TensorFlow sees {devices}.", flush=True)
    observer = TrainProgress(bars=progress)
    try:
        result = train_model(dataset_dir, model_dir, config, observer=observer)
    finally:
        observer.close()
    if result.status == "already_finished":
        print(f"{result.model_dir} is already trained ({result.epochs_run} epochs; {result.stop_message}). "
              "Nothing to do; train into a new folder to start again.")
    else:
        print(f"Trained {result.model_dir}: {result.epochs_run} epochs ({result.epochs_this_call} in this run); "
              f"{result.stop_message}.")
    metrics = result.metrics
    if metrics and "val_roc_auc" in metrics:
        print(f"Epoch {result.kept_epoch}: validation ROC-AUC (slices, macro) {metrics['val_roc_auc']:.4f}, loss "
              f"{metrics.get('val_loss', float('nan')):.4f} (training ROC-AUC {metrics.get('roc_auc', float('nan')):.4f})"
              f". Tag thresholds tuned on the validation songs are in {result.model_dir / 'model.json'}.")
    elif metrics:
        print(f"Epoch {result.kept_epoch}: validation accuracy {metrics.get('val_accuracy', float('nan')):.4f}, "
              f"loss {metrics.get('val_loss', float('nan')):.4f} (training accuracy "
              f"{metrics.get('accuracy', float('nan')):.4f}).")
    print(f"Curves: {result.model_dir / 'curves.png'}; per epoch: {result.model_dir / 'history.csv'}; "
          f"TensorBoard: tensorboard --logdir {result.model_dir / 'logs'}")
    # Last, where a user looks: which weights the model holds, and why.
    print(f"{result.kept_message[:1].upper()}{result.kept_message[1:]}, in {result.model_dir / 'model.keras'}.")
    if result.kept_hint:
        print(f"Note: {result.kept_hint}.")
    return 0


def _check_folders(dataset_dir: str | os.PathLike, model_dir: str | os.PathLike) -> None:
    """Refuse folder arguments that cannot be right, naming the likely mistake, without TensorFlow.

    Raises
    ------
    ParameterError
        A model folder given as the data set, a data set as the model folder, or the two swapped (a usage error).
    DatasetError
        ``dataset_dir`` is not a folder or holds no ``dataset.json`` (as :func:`load_dataset_info` says).
    """
    check_folder_kinds(USAGE, [(dataset_dir, DATA_SET), (model_dir, MODEL_FOLDER)])
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such data set folder")
    if not (root / DATASET_JSON).is_file():
        raise DatasetError(f"{root}: no {DATASET_JSON}; is this the output folder of 'genreslice build'?")

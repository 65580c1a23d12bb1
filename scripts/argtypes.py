"""Argument value types of the ``genreslice`` commands: each turns one option's text into a checked value or raises
:class:`argparse.ArgumentTypeError` with a message that names the bad value. Also the check, before any heavy
import, that each folder argument is not a folder of another kind (a model folder given as a data set)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from genreslice.errors import ParameterError
from genreslice.pipeline.layout import DATASET_JSON
from genreslice.pipeline.splits import parse_split_ratios

#: The kinds of folder :func:`folder_kind` tells apart.
DATA_SET = "data set"
MODEL_FOLDER = "model folder"
#: ``genreslice.training.model_dir.MODEL_JSON``, named here because that module imports Keras.
MODEL_JSON = "model.json"

MAX_WORKERS = 1024
MAX_TIMEOUT_S = 7 * 24 * 3600


def positive_int(text: str, *, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{value} must be at most {maximum}")
    return value


def worker_count(text: str) -> int:
    return positive_int(text, maximum=MAX_WORKERS)


def device_count(text: str) -> int | None:
    """``all`` (None: every device) or a positive whole number."""
    return None if text.strip().lower() == "all" else positive_int(text, maximum=MAX_WORKERS)


def timeout_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"{text} must be more than 0 and at most {MAX_TIMEOUT_S} seconds")
    return value


def split_ratios(text: str) -> tuple[float, float, float]:
    try:
        return parse_split_ratios(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def genre_names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no genre; give a comma-separated list, e.g. Rock,Jazz")
    return names


def whole_number(text: str, *, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} must be {minimum} or more")
    if maximum is not None and value > maximum:
        raise argparse.ArgumentTypeError(f"{value} must be {maximum} or less")
    return value


def number(text: str, *, minimum: float = 0.0, maximum: float = float("inf"), above_minimum: bool = False,
           may_be_off: bool = False) -> float | None:
    """A float within bounds; with ``may_be_off``, 'off' or 'none' give None."""
    if may_be_off and text.lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number{' or ' + repr('off') if may_be_off else ''}") \
            from None
    if above_minimum and not value > minimum:
        raise argparse.ArgumentTypeError(f"{text} must be more than {minimum:g}")
    if not minimum <= value <= maximum:
        bounds = f"between {minimum:g} and {maximum:g}" if maximum != float("inf") else f"{minimum:g} or more"
        raise argparse.ArgumentTypeError(f"{text} must be {bounds}")
    return value


def optional_fraction(text: str) -> float | None:
    return number(text, maximum=1.0, may_be_off=True)


def optional_loss(text: str) -> float | None:
    return number(text, may_be_off=True)


def non_negative_int(text: str) -> int:
    return whole_number(text, minimum=0)


def positive_float(text: str) -> float:
    return number(text, above_minimum=True)


def folder_kind(path: str | os.PathLike) -> str | None:
    """:data:`DATA_SET` for a folder made by ``genreslice build`` (it holds ``dataset.json``), :data:`MODEL_FOLDER`
    for one made by ``genreslice train`` (``model.json``), None for any other path, and for a folder that cannot be
    looked into (the command itself then says why it cannot read it)."""
    path = Path(path)
    for name, kind in ((DATASET_JSON, DATA_SET), (MODEL_JSON, MODEL_FOLDER)):
        try:
            if (path / name).is_file():
                return kind
        except OSError:  # a folder without search permission: not ours to judge
            return None
    return None


def check_folder_kinds(usage: str, folders: list[tuple[str | os.PathLike, str]]) -> None:
    """Refuse folder arguments that are a data set or model folder where another kind of folder belongs.

    Parameters
    ----------
    usage : str
        The command line the message shows, e.g. ``"genreslice evaluate DATASET_DIR MODEL_DIR"``.
    folders : list of tuple
        ``(path, expected kind)`` per folder argument, in order; a kind in words, e.g. :data:`DATA_SET` or
        ``"folder of audio files"``.

    Raises
    ------
    ParameterError
        Naming the likely mistake: two folders given in the wrong order, or one folder of the wrong kind.
    """
    wrong = [(path, kind, expected) for path, expected in folders
             if (kind := folder_kind(path)) is not None and kind != expected]
    if len(folders) == len(wrong) == 2 and wrong[0][1] == wrong[1][2] and wrong[1][1] == wrong[0][2]:
        (first, first_kind, _), (second, second_kind, _) = wrong
        raise ParameterError(f"the folders are in the wrong order: {os.fspath(first)} is a {first_kind} and "
                             f"{os.fspath(second)} is a {second_kind}; usage: {usage}")
    if wrong:
        path, kind, expected = wrong[0]
        raise ParameterError(f"{os.fspath(path)} is a {kind}, not a {expected}; usage: {usage}")

"""The ``genreslice`` commands, one module each: ``register_subcommand(commands)`` adds its parser, ``run(args)``
runs it and prints its report. Also what their parsers share."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from genreslice.pipeline.layout import DATASET_JSON
from genreslice.pipeline.splits import SPLITS, split_warnings


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something and the help text does not already name one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default == () or "(default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


VOTE_HELP = ("majority = each slice votes for its most probable genre, the most votes win (a tie goes to the higher "
             "mean probability, then to the alphabetically first genre); mean = the highest probability averaged "
             "over the slices")


def print_split_warnings(warnings: list[str]) -> None:
    """Classes missing from a split, or with fewer than a handful of tracks there: scores on them mean little."""
    if not warnings:
        return
    print("Warning: genres with no or few tracks in a split (their validation and test scores mean little; more "
          "artists of the genre, or other --split-ratios, help):")
    for line in warnings[:12]:
        print(f"  {line}")
    if len(warnings) > 12:
        print(f"  ... and {len(warnings) - 12} more")


def dataset_split_warnings(dataset_dir: str | os.PathLike) -> list[str]:
    """Classes missing from a split of the data set, or thin there (see :func:`split_warnings`); none when
    ``dataset.json`` lacks the counts (training then reports what is wrong with it)."""
    try:
        record = json.loads((Path(dataset_dir) / DATASET_JSON).read_text(encoding="utf-8"))
        table = {genre: {split: int(record["counts"]["tracks"][split].get(genre, 0)) for split in SPLITS}
                 for genre in record["classes"]}
        ratios = tuple(float(record["splits"]["ratios"][split]) for split in SPLITS)
    except (OSError, UnicodeDecodeError, ValueError, OverflowError, KeyError, TypeError, AttributeError):
        return []
    return split_warnings(table, ratios)

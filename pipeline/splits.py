"""Train/validation/test assignment by artist with a stable hash, so no artist straddles two splits."""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from genreslice.genre_getters.base import SPLITS, normalize_text
from genreslice.pipeline.errors import ParameterError

__all__ = ["DEFAULT_SPLIT_RATIOS", "FEW_TRACKS", "SPLITS", "assign_split", "parse_split_ratios", "split_distance",
           "split_key", "split_position", "split_warnings"]
DEFAULT_SPLIT_RATIOS = (0.8, 0.1, 0.1)


def parse_split_ratios(text: str) -> tuple[float, float, float]:
    """Parse ``"80,10,10"`` or ``"0.8,0.1,0.1"`` into three fractions that sum to 1."""
    parts = [part.strip() for part in text.split(",")]
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise ParameterError(f"split ratios {text!r} must be three numbers, e.g. 0.8,0.1,0.1") from None
    if len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values) or not 0 < sum(values) < math.inf:
        raise ParameterError(
            f"split ratios {text!r} must be three non-negative numbers (train,validation,test) with a positive sum"
        )
    total = sum(values)
    return tuple(round(v / total, 6) for v in values)  # type: ignore[return-value]


def split_key(artist: str | None, track_id: str) -> str:
    """The unit that is never divided: the artist (case and spacing ignored), else the track itself."""
    if artist and normalize_text(artist):
        return "artist:" + normalize_text(artist).casefold()
    return "track:" + track_id


def split_position(key: str) -> float:
    """Where a split key falls in ``[0, 1)``, by SHA-256: the same on every machine, run and Python version."""
    digest = hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_distance(key: str, split: str, ratios: tuple[float, float, float]) -> float:
    """How far ``key``'s position lies outside ``split``'s share of ``[0, 1)`` (0 inside it)."""
    start = sum(ratios[:SPLITS.index(split)])
    end = start + ratios[SPLITS.index(split)]
    position = split_position(key)
    return max(0.0, start - position, position - end)


def assign_split(key: str, ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS) -> str:
    """Map a split key to a split with SHA-256: the same on every machine, run and Python version."""
    position = split_position(key)
    cumulative = 0.0
    for name, ratio in zip(SPLITS, ratios):
        cumulative += ratio
        if position < cumulative:
            return name
    return next(name for name, ratio in zip(reversed(SPLITS), reversed(ratios)) if ratio > 0)


#: A class with fewer tracks than this in a split gets a warning: its scores there mean little.
FEW_TRACKS = 5


def split_warnings(table: Mapping[str, Mapping[str, int]], ratios: tuple[float, float, float]) -> list[str]:
    """What a user should know about a data set's classes per split before training on it.

    Parameters
    ----------
    table : mapping
        ``{class: {split: tracks}}``.
    ratios : tuple of float
        The split ratios; a split with ratio 0 is meant to be empty.

    Returns
    -------
    list of str
        One line per class and split that has no tracks (the model is never validated or tested on that class
        there) or fewer than :data:`FEW_TRACKS`, in class order.
    """
    warnings = []
    for name in sorted(table):
        counts = table[name]
        for split, ratio in zip(SPLITS, ratios):
            count = counts.get(split, 0)
            if ratio > 0 and count == 0:
                warnings.append(f"{name} has no tracks in the {split} split")
            elif ratio > 0 and count < FEW_TRACKS:
                warnings.append(f"{name} has only {count} track{'s' if count > 1 else ''} in the {split} split")
    return warnings


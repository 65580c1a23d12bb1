"""Train/validation/test assignment by artist with a stable hash, so no artist straddles two splits."""
from __future__ import annotations

import hashlib
import math

from genreslice.genre_getters.base import SPLITS, normalize_text
from genreslice.pipeline.errors import ParameterError

__all__ = ["DEFAULT_SPLIT_RATIOS", "SPLITS", "assign_split", "parse_split_ratios", "split_key"]
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


def assign_split(key: str, ratios: tuple[float, float, float] = DEFAULT_SPLIT_RATIOS) -> str:
    """Map a split key to a split with SHA-256: the same on every machine, run and Python version."""
    digest = hashlib.sha256(key.encode("utf-8", errors="surrogateescape")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    for name, ratio in zip(SPLITS, ratios):
        cumulative += ratio
        if position < cumulative:
            return name
    return next(name for name, ratio in zip(reversed(SPLITS), reversed(ratios)) if ratio > 0)

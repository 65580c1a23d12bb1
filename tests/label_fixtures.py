"""Label sources built on small metadata fixtures, for tests that run over every registered source."""
from __future__ import annotations

from pathlib import Path

from genreslice.genre_getters import LabelSource, make_label_source
from tests.fma_tracks import write_tracks_csv

FIXTURES = Path(__file__).parent / "fixtures"
JAMENDO_SPLIT = FIXTURES / "jamendo" / "split-0"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: A few FMA tracks: (track_id, genre_top, artist_id, split, subset).
FMA_TRACKS = [
    (2, "Hip-Hop", 1, "training", "small"),
    (3, "Hip-Hop", 1, "training", "medium"),
    (5, "Hip-Hop", 1, "training", "small"),
    (10, "Pop", 6, "validation", "small"),
    (20, "", 4, "test", "large"),
    (134, "Rock", 52, "test", "medium"),
    (140, "Folk", 54, "training", "large"),
]


def write_fma_metadata(folder: Path, tracks=FMA_TRACKS) -> Path:
    """``folder/fma_metadata/tracks.csv`` holding ``tracks``; returns the ``fma_metadata`` folder."""
    rows = [{"track_id": track_id, "genre_top": genre, "artist_id": artist, "split": split, "subset": subset}
            for track_id, genre, artist, split, subset in tracks]
    return write_tracks_csv(folder / "fma_metadata" / "tracks.csv", rows).parent


def fixture_source(name: str, folder: Path) -> LabelSource:
    """The source registered as ``name``, reading fixture metadata (written under ``folder`` when needed)."""
    if name == "fma":
        return make_label_source("fma", metadata=write_fma_metadata(folder))
    if name == "jamendo":
        return make_label_source("jamendo", metadata=JAMENDO_SPLIT)
    return make_label_source(name)

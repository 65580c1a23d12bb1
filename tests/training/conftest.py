"""Shared fixtures for training tests: small synthetic data sets in the build's layout."""
from __future__ import annotations

import pytest

from benchmarks.synthetic_slices import write_synthetic_dataset


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory):
    """4 genres x 6 tracks x 8 slices; 3/1/2 tracks per genre in train/validation/test (96/32/64 slices)."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("data") / "dataset", tracks_per_genre=6, slices_per_track=8, split_tracks=(3, 1, 2),
        seed=1, noise=20.0,
    )

"""Fixtures shared by the command-line tests."""
from __future__ import annotations

import pytest

from tests.helpers import GENRES, genreslice, tagged_mp3


@pytest.fixture(scope="module")
def library(tmp_path_factory, sox_info):
    root = tmp_path_factory.mktemp("library")
    for index in range(12):
        tagged_mp3(root / f"{GENRES[index % 3]}/track {index:02d}.mp3", 12.0, GENRES[index % 3],
                   f"Artist {index % 5}", "sine", f"{300 + 100 * index}")
    return root


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory):
    """An uninterrupted build of ``library``: what every interrupted-then-resumed build must equal."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert genreslice("build", str(library), str(out), "--workers", "1").returncode == 0
    return out

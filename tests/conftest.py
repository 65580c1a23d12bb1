from __future__ import annotations

import shutil

import pytest

from pipeline.sox import find_sox


@pytest.fixture(scope="session")
def sox_info():
    """The checked SoX; the whole suite needs SoX with MP3 support (``make test`` installs it)."""
    if shutil.which("sox") is None:
        pytest.fail("SoX is not installed: run `make test`, which installs sox and libsox-fmt-mp3")
    return find_sox()

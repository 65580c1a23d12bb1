"""Fixtures shared by the pipeline tests."""
from __future__ import annotations

import pytest

from tests.helpers import make_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sox_info):
    """Eight tagged tracks of three genres by five artists, plus one untagged and one too short (a folder per
    test module)."""
    return make_corpus(tmp_path_factory.mktemp("corpus"))

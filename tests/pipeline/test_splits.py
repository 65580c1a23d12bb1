from __future__ import annotations

import collections

import pytest

from genreslice.pipeline.errors import ParameterError
from genreslice.pipeline.splits import assign_split, parse_split_ratios, split_key


@pytest.mark.parametrize("text, expected", [("0.8,0.1,0.1", (0.8, 0.1, 0.1)), ("80, 10, 10", (0.8, 0.1, 0.1)),
                                            ("1,0,1", (0.5, 0.0, 0.5))])
def test_parse_split_ratios(text, expected):
    assert parse_split_ratios(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["0.8,0.2", "a,b,c", "-1,1,1", "0,0,0", "nan,1,1", "inf,1,1", "1e308,1e308,0"])
def test_bad_split_ratios_name_the_value(text):
    with pytest.raises(ParameterError, match="split ratios"):
        parse_split_ratios(text)


def test_artist_decides_split_ignoring_case_and_spacing():
    assert split_key("The  Band", "t1") == split_key("the band", "t2")
    assert split_key(None, "t1") != split_key(None, "t2")
    assert split_key("  ", "t1") == "track:t1"


def test_proportions_and_stability():
    ratios = (0.8, 0.1, 0.1)
    counts = collections.Counter(assign_split(f"artist:{i}", ratios) for i in range(20_000))
    assert abs(counts["train"] / 20_000 - 0.8) < 0.015
    assert abs(counts["validation"] / 20_000 - 0.1) < 0.01
    # Fixed by SHA-256, not Python's salted hash(): these values hold in every process and on every machine.
    assert [assign_split(f"artist:{i}", ratios) for i in range(12)] == [
        "train", "train", "train", "train", "train", "train", "validation", "validation", "train", "train", "train",
        "test"]


def test_zero_ratio_split_is_never_assigned():
    assert {assign_split(f"artist:{i}", (0.5, 0.0, 0.5)) for i in range(2000)} == {"train", "test"}

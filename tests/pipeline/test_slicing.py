from __future__ import annotations

import numpy as np
import pytest

from genreslice.pipeline.slicing import slice_spectrogram


def test_whole_slices_nyquist_row_dropped_in_time_order():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, size=(129, 3 * 128 + 70), dtype=np.uint8)
    slices = slice_spectrogram(gray, 128)
    assert slices.shape == (3, 128, 128)
    for index in range(3):
        assert np.array_equal(slices[index], gray[1:, index * 128:(index + 1) * 128])


def test_shorter_than_one_slice_gives_none():
    assert slice_spectrogram(np.zeros((129, 127), dtype=np.uint8), 128).shape == (0, 128, 128)


def test_wrong_height_is_refused():
    with pytest.raises(ValueError, match="129 rows"):
        slice_spectrogram(np.zeros((128, 500), dtype=np.uint8), 128)

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.slicing import slice_spectrogram, write_slice_png


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


def test_png_round_trip_is_exact_grayscale(tmp_path):
    pixels = np.random.default_rng(2).integers(0, 256, size=(128, 128), dtype=np.uint8)
    write_slice_png(pixels, tmp_path / "a.png")
    write_slice_png(pixels, tmp_path / "b.png")
    with Image.open(tmp_path / "a.png") as image:
        assert image.mode == "L" and image.size == (128, 128)
        assert np.array_equal(np.asarray(image), pixels)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()

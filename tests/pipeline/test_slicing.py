from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipeline.slicing import decode_gray_png, encode_gray_png, slice_spectrogram, write_slice_png


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


def pillow_png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def test_decode_reads_our_slices_exactly():
    rng = np.random.default_rng(4)
    for pixels in (rng.integers(0, 256, (128, 128), dtype=np.uint8), np.zeros((128, 128), np.uint8),
                   np.full((3, 5), 255, np.uint8)):
        assert np.array_equal(decode_gray_png(encode_gray_png(pixels)), pixels)


def test_decode_reads_any_png_pillow_reads():
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    smooth = np.add.outer(np.arange(128), np.arange(128)).astype(np.uint8)
    # Pillow's own encoder picks Up/Average/Paeth filters for smooth images: the general path.
    for pixels in (gray, smooth):
        assert np.array_equal(decode_gray_png(pillow_png(Image.fromarray(pixels))), pixels)
    rgb = Image.fromarray(np.stack([smooth] * 3, axis=-1))
    assert np.array_equal(decode_gray_png(pillow_png(rgb)), smooth)
    palette = Image.fromarray(smooth).convert("P")
    assert np.array_equal(decode_gray_png(pillow_png(palette)), np.asarray(palette.convert("L")))


def test_decode_refuses_what_is_not_an_image():
    for data in (b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, bytes(range(256)) * 4,
                 encode_gray_png(np.zeros((128, 128), np.uint8))[:60]):
        with pytest.raises(ValueError, match="not a readable image"):
            decode_gray_png(data)

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from genreslice.pipeline.png import decode_gray_png, encode_gray_png, to_model_input, write_slice_png


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


def test_decode_handles_rows_with_mixed_none_and_sub_filters():
    import struct
    import zlib

    from genreslice.pipeline.png import _png_chunk

    pixels = np.random.default_rng(6).integers(0, 256, (6, 9), dtype=np.uint8)
    raw = bytearray()
    for number, row in enumerate(pixels):
        if number % 2:
            raw += bytes([1]) + bytes(np.diff(row, prepend=0).astype(np.uint8))  # Sub
        else:
            raw += bytes([0]) + row.tobytes()  # None
    data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 6, 8, 0, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(bytes(raw))) + _png_chunk(b"IEND", b""))
    assert np.array_equal(decode_gray_png(data), pixels)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), pixels)


def test_our_slices_take_the_fast_path_even_with_several_idat_chunks():
    import struct
    import zlib

    from genreslice.pipeline.png import _decode_sub_filtered_gray_png, _png_chunk

    pixels = np.random.default_rng(7).integers(0, 256, (128, 128), dtype=np.uint8)
    data = encode_gray_png(pixels)
    assert np.array_equal(_decode_sub_filtered_gray_png(data), pixels)  # not via Pillow
    rows = np.concatenate([np.zeros((128, 1), np.uint8), pixels], axis=1).tobytes()
    stream = zlib.compress(rows)
    split = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 128, 128, 8, 0, 0, 0, 0))
             + _png_chunk(b"IDAT", stream[:100]) + _png_chunk(b"IDAT", stream[100:]) + _png_chunk(b"IEND", b""))
    assert np.array_equal(_decode_sub_filtered_gray_png(split), pixels)
    assert np.array_equal(decode_gray_png(split), pixels)


def test_model_input_is_gray_level_over_255_in_float32():
    gray = np.array([[0, 1, 128, 254, 255]], dtype=np.uint8)
    values = to_model_input(gray)
    assert values.dtype == np.float32 and values.shape == gray.shape
    assert values[0, 0] == 0.0 and values[0, -1] == 1.0
    assert np.array_equal(values, gray.astype(np.float32) / np.float32(255))
    batch = gray.astype(np.float32)
    assert to_model_input(batch, out=batch) is batch and np.array_equal(batch, values)

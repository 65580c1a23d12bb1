"""Cutting a spectrogram into square slices and writing them as grayscale PNGs."""
from __future__ import annotations

import os
import struct
import zlib

import numpy as np

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_FILTER_SUB = 1


def slice_spectrogram(gray: np.ndarray, slice_size: int) -> np.ndarray:
    """Cut a spectrogram into whole square slices.

    Parameters
    ----------
    gray : np.ndarray
        ``uint8`` spectrogram of shape ``(slice_size + 1, n_columns)``, row 0 = Nyquist.
    slice_size : int
        Slice width and height.

    Returns
    -------
    np.ndarray
        Shape ``(n_columns // slice_size, slice_size, slice_size)``; the Nyquist row is dropped, so row 0 of
        each slice is the highest remaining frequency. A trailing partial slice is dropped.
    """
    if gray.ndim != 2 or gray.shape[0] != slice_size + 1:
        raise ValueError(f"spectrogram of shape {gray.shape} does not have {slice_size + 1} rows")
    n_slices = gray.shape[1] // slice_size
    body = gray[1:, : n_slices * slice_size]
    return np.ascontiguousarray(body.reshape(slice_size, n_slices, slice_size).transpose(1, 0, 2))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_gray_png(pixels: np.ndarray) -> bytes:
    """Encode a 2-D ``uint8`` array as an 8-bit grayscale PNG.

    Every row uses PNG's Sub filter (difference to the left neighbour) and the data is deflated with
    Huffman coding only. Measured on music spectrogram slices (``python -m scripts.bench_build``) this is
    about 4x faster than Pillow's encoder at compress_level=1 for files about 5% larger; any PNG reader
    decodes it to exactly the same pixels. The bytes are deterministic for the same pixels and zlib.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 2:
        raise ValueError(f"pixels of shape {pixels.shape} are not a 2-D image")
    height, width = pixels.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = _FILTER_SUB
    rows[:, 1] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=rows[:, 2:])  # wraps modulo 256, as PNG specifies
    deflate = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_HUFFMAN_ONLY)
    data = deflate.compress(rows.tobytes()) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data) + _png_chunk(b"IEND", b"")


def write_slice_png(pixels: np.ndarray, path: str | os.PathLike) -> None:
    """Write one slice as an 8-bit grayscale PNG."""
    with open(path, "wb") as handle:
        handle.write(encode_gray_png(pixels))

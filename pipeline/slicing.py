"""Cutting a spectrogram into square slices and writing them as grayscale PNGs."""
from __future__ import annotations

import os

import numpy as np
from PIL import Image

#: zlib level for slice PNGs. Measured with ``python -m scripts.bench_build``: level 1 writes about twice as
#: fast as the default 6 for files a few percent larger; both decode to the same pixels.
PNG_COMPRESS_LEVEL = 1


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


def write_slice_png(pixels: np.ndarray, path: str | os.PathLike) -> None:
    """Write one slice as an 8-bit grayscale PNG (deterministic bytes for the same pixels)."""
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path, format="PNG", compress_level=PNG_COMPRESS_LEVEL)

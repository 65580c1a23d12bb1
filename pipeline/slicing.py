"""Cutting a spectrogram into square slices (written as PNGs by :mod:`genreslice.pipeline.png`)."""
from __future__ import annotations

import numpy as np

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

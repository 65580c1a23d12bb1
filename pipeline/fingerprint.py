"""A track's content fingerprint, from its spectrogram: the same recording re-encoded, resampled, louder or
quieter, in mono or stereo, or with a second or two trimmed off its start, gives nearly the same fingerprint.

The fingerprint is computed from a track's first slices (the pixels its PNGs hold), so it is the same whether the
worker computes it while rendering or a later run reads it back from the slices of an older build.

How (after Haitsma and Kalker's robust audio hashing, on the spectrogram genreslice already has):

1. the gray levels (decibels) of the rows are averaged into 17 bands, spaced by frequency from 250 Hz to 5 kHz:
   the range every MP3 keeps and every sample rate above 10 kHz holds;
2. each band is smoothed along time by a Gaussian of 0.12 s and sampled every 0.08 s (a window with no zeros in
   its spectrum, so no tempo's beat is averaged away);
3. bit ``b`` of frame ``t`` says whether the level difference of bands ``b`` and ``b + 1`` grew from frame ``t - 1``
   (the rhythm of the spectrum's changes), and bit ``16 + b`` whether that difference is above its median over the
   track (the spectrum's shape: keys and instruments): a gain adds the same decibels to every band and cancels out;
   a codec's small errors flip few bits.

A frame is one 32-bit word; a fingerprint keeps the first :data:`MAX_FRAMES` (32 s). Two fingerprints are compared
at every offset up to :data:`MAX_OFFSET_S` either way, and their similarity is ``1 - 2 * bit error rate`` at the
best one: 1 for the same audio, about 0 for unrelated audio (half the bits differ). Copies measured: 0.71 or more;
distinct songs of one genre, tempo and instruments: 0.56 or less (``make bench-duplicates``). A track shorter than
:data:`MIN_OVERLAP_S` plus a slice or two (about 10 s at the default settings) is not compared.

A ``profile`` travels with the bits, each band's mean level (less the mean of all bands, so gain cancels) and its
spread over the louder frames: close for copies, it picks the few candidates whose bits are compared, so finding the
copies among ``n`` tracks compares the bits of about ``10 n`` pairs, not ``n`` squared.
"""
from __future__ import annotations

import base64
import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Bumped when the bits or the profile change: fingerprints of another version are computed anew.
FINGERPRINT_VERSION = 1
#: Bands the levels are averaged into (fewer when the slices have too few rows between 250 Hz and 5 kHz).
BANDS = 17
#: Frames kept: 400 frames of 0.08 s, the first 32 s of a track.
MAX_FRAMES = 400
#: The largest shift of one copy's start against another's that comparisons look for, in seconds.
MAX_OFFSET_S = 2.5
#: Overlap two fingerprints need at an offset to be compared there, in seconds.
MIN_OVERLAP_S = 8.0
#: Fingerprints at least this similar are copies of one recording.
NEAR_COPY_SIMILARITY = 0.63
#: Below this share of frames that change at all, a fingerprint says too little to compare (a steady tone,
#: silence): its bits would match any other such track's.
MIN_ACTIVE_SHARE = 0.25

_BOTTOM_HZ, _TOP_HZ = 250.0, 5000.0
_FRAME_S = 0.08
_SMOOTH_S = 0.12
#: A change below this (in gray levels, about 0.35 dB) is a frame that does not change.
_ACTIVE_LEVEL = 1.0
_POPCOUNT = np.array([bin(value).count("1") for value in range(1 << 16)], dtype=np.uint8)


@dataclass(frozen=True)
class Fingerprint:
    """One track's fingerprint.

    Attributes
    ----------
    bits : np.ndarray
        ``uint32``: one word per frame of :data:`_FRAME_S` seconds; bits ``b`` and ``16 + b`` from bands ``b`` and
        ``b + 1``.
    profile : np.ndarray
        ``float32``, 34 values, over the frames but the quietest 15%: each band's mean level less the mean of all
        bands, then each band's standard deviation.
    active : float
        The share of frames in which some band difference changed; see :data:`MIN_ACTIVE_SHARE`.
    frames_per_second : float
        Frames of ``bits`` per second of audio.
    pairs : int
        Pairs of neighbouring bands, the bits of each half of a word that count (16 unless the slices have few rows
        in the bands' range: a low sample rate, a small slice size).
    """

    bits: np.ndarray
    profile: np.ndarray
    active: float
    frames_per_second: float
    pairs: int = BANDS - 1

    @property
    def comparable(self) -> bool:
        """Long and varied enough to be compared with others."""
        return self.active >= MIN_ACTIVE_SHARE and len(self.bits) >= MIN_OVERLAP_S * self.frames_per_second

    def to_json(self) -> dict:
        """A JSON-ready record (the journal's ``fingerprint``)."""
        return {
            "version": FINGERPRINT_VERSION,
            "bits": base64.b64encode(self.bits.astype("<u4").tobytes()).decode("ascii"),
            "profile": [round(float(value), 2) for value in self.profile],
            "active": round(self.active, 4),
            "frames_per_second": round(self.frames_per_second, 4),
            "pairs": self.pairs,
        }

    @classmethod
    def from_json(cls, record: object) -> Fingerprint | None:
        """The fingerprint a record holds; None for a record of another version or a damaged one."""
        try:
            if record["version"] != FINGERPRINT_VERSION:
                return None
            bits = np.frombuffer(base64.b64decode(record["bits"], validate=True), dtype="<u4")
            profile = np.asarray(record["profile"], dtype=np.float32)
            active, rate, pairs = float(record["active"]), float(record["frames_per_second"]), record["pairs"]
        except (TypeError, KeyError, ValueError, OverflowError):
            return None
        if not isinstance(pairs, int) or isinstance(pairs, bool) or not 1 <= pairs < BANDS \
                or profile.shape != (2 * (pairs + 1),) or not np.isfinite(profile).all() or not 0 <= active <= 1 \
                or not math.isfinite(rate) or rate <= 0 or len(bits) > MAX_FRAMES:
            return None
        return cls(bits=bits.astype(np.uint32), profile=profile, active=active, frames_per_second=rate, pairs=pairs)


def row_frequencies(*, features: str, slice_size: int, sample_rate: int, fmin: float = 0.0,
                    fmax: float | None = None) -> np.ndarray:
    """The centre frequency in Hz of each row of a slice (row 0 the highest): linear for ``sox``, Slaney's mel
    scale (librosa's default) for ``mel``."""
    if features == "mel":
        top = fmax if fmax is not None else sample_rate / 2
        mels = np.linspace(_hz_to_mel(fmin), _hz_to_mel(top), slice_size + 2)[1:-1]
        return _mel_to_hz(mels)[::-1]
    return (slice_size - np.arange(1, slice_size + 1)) / slice_size * (sample_rate / 2)


def slices_needed(columns_per_second: float, slice_size: int) -> int:
    """How many of a track's first slices :func:`compute_fingerprint` reads."""
    hop, half = _frame_geometry(columns_per_second)
    return -(-((MAX_FRAMES + 1) * hop + 2 * half + 1) // slice_size)


def _frame_geometry(columns_per_second: float) -> tuple[int, int]:
    """Spectrogram columns between two frames, and the half-width of the smoothing window, in columns."""
    return max(1, round(_FRAME_S * columns_per_second)), max(1, math.ceil(3 * _SMOOTH_S * columns_per_second))


def compute_fingerprint(slices: np.ndarray, *, row_hz: np.ndarray, columns_per_second: float) -> Fingerprint:
    """The fingerprint of a track from its slices (``uint8``, shape ``(n, size, size)``, as written to PNGs).

    ``row_hz`` gives each row's frequency (:func:`row_frequencies`); ``columns_per_second`` the spectrogram's
    column rate. Only the first slices the frames need are read.
    """
    hop, half = _frame_geometry(columns_per_second)
    sigma = _SMOOTH_S * columns_per_second
    count = min(len(slices), slices_needed(columns_per_second, slices.shape[-1]))
    # Means of row ranges and a convolution, not matrix products: BLAS's threads would compete with the other
    # workers' SoX for the cores. Only the rows of the bands are read.
    ranges = _band_ranges(np.asarray(row_hz, dtype=np.float64).tobytes())
    low, high = min(start for start, _ in ranges), max(stop for _, stop in ranges)
    gray = np.asarray(slices[:count, low:high], dtype=np.float32).transpose(1, 0, 2).reshape(high - low, -1) \
        if count else np.zeros((high - low, 0), np.float32)
    # Gray levels are whole numbers: their running sums are exact in float32 (below 2**24), so the means are too.
    running = np.concatenate([np.zeros((1, gray.shape[1]), np.float32), np.cumsum(gray, axis=0)])
    starts, stops = (np.array(bounds) - low for bounds in zip(*ranges))
    bands = (running[stops] - running[starts]) / (stops - starts)[:, None].astype(np.float32)
    frames_per_second, pairs = columns_per_second / hop, len(bands) - 1
    if bands.shape[1] < 2 * half + 1 + 2 * hop or pairs < 1:
        pairs = max(pairs, 1)
        return _as_journaled(Fingerprint(bits=np.zeros(0, np.uint32), profile=np.zeros(2 * (pairs + 1), np.float32),
                                         active=0.0, frames_per_second=frames_per_second, pairs=pairs))
    kernel = np.exp(-0.5 * ((np.arange(-half, half + 1)) / sigma) ** 2)
    kernel /= kernel.sum()
    windows = sliding_window_view(bands, 2 * half + 1, axis=1)[:, ::hop][:, :MAX_FRAMES + 1]
    smooth = np.einsum("ftk,k->ft", windows, kernel)  # einsum's own loops: no BLAS
    contrast = smooth[:-1] - smooth[1:]
    change = contrast[:, 1:] - contrast[:, :-1]
    shape = contrast[:, 1:] - np.median(contrast[:, 1:], axis=1, keepdims=True)
    unused = np.zeros((BANDS - 1 - pairs, change.shape[1]), bool)  # always 0, so never a difference
    words = np.packbits(np.ascontiguousarray(np.concatenate([change > 0, unused, shape > 0, unused]).T), axis=1,
                        bitorder="little")
    bits = np.ascontiguousarray(words).view("<u4").ravel().astype(np.uint32)
    active = float(np.mean(np.abs(change).max(axis=0) >= _ACTIVE_LEVEL))
    # Over the louder frames only: a second of silence added before a copy does not move it.
    loudness = smooth.mean(axis=0)
    loud = smooth[:, loudness >= np.percentile(loudness, 15)]
    level = loud.mean(axis=1)
    profile = np.concatenate([level - level.mean(), loud.std(axis=1)]).astype(np.float32)
    return _as_journaled(Fingerprint(bits=bits, profile=profile, active=active, frames_per_second=frames_per_second,
                                     pairs=pairs))


def _as_journaled(fingerprint: Fingerprint) -> Fingerprint:
    """The fingerprint as its journal record gives it back (rounded as :meth:`Fingerprint.to_json` rounds), so
    that a run comparing a fingerprint it computed and one comparing the journal's find the same copies."""
    restored = Fingerprint.from_json(fingerprint.to_json())
    assert restored is not None, fingerprint
    return restored


def similarity(first: Fingerprint, second: Fingerprint) -> float:
    """``1 - 2 * bit error rate`` at the best offset (within :data:`MAX_OFFSET_S`, with :data:`MIN_OVERLAP_S` of
    overlap); 0.0 when no offset overlaps enough or the fingerprints were made differently (frame rates, bands)."""
    return float(similarities(first, [second])[0])


def similarities(first: Fingerprint, others: list[Fingerprint]) -> np.ndarray:
    """:func:`similarity` of ``first`` with each of ``others``, computed together (``float64``)."""
    result = np.zeros(len(others))
    rate = first.frames_per_second
    reach, min_overlap = round(MAX_OFFSET_S * rate), math.ceil(MIN_OVERLAP_S * rate)
    a = first.bits
    alike = [index for index, other in enumerate(others)
             if other.frames_per_second == rate and other.pairs == first.pairs and len(other.bits) >= min_overlap]
    if len(a) < min_overlap or not alike:
        return result
    # Row k of a track's windows lines its bits up against ``a`` shifted by k - reach frames; the padding's
    # frames do not count.
    longest = max(len(others[index].bits) for index in alike)
    padded = np.zeros((len(alike), reach + longest + reach + len(a)), np.uint32)
    valid = np.zeros(padded.shape, bool)
    for row, index in enumerate(alike):
        bits = others[index].bits
        padded[row, reach:reach + len(bits)] = bits
        valid[row, reach:reach + len(bits)] = True
    windows = sliding_window_view(padded, len(a), axis=1)[:, : 2 * reach + 1]
    masks = sliding_window_view(valid, len(a), axis=1)[:, : 2 * reach + 1]
    errors = (_bit_count(windows ^ a) * masks).sum(axis=2, dtype=np.int64)
    overlap = masks.sum(axis=2)
    rates = np.where(overlap >= min_overlap, errors / (2.0 * first.pairs * np.maximum(overlap, 1)), np.inf)
    best = rates.min(axis=1)
    result[alike] = np.where(np.isfinite(best), 1.0 - 2.0 * best, 0.0)
    return result


def _bit_count(words: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint32``: numpy's own count where it has one (2.0 and later), else a table of halves."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(words)
    halves = np.ascontiguousarray(words).view(np.uint16).reshape(*words.shape, 2)
    return _POPCOUNT[halves].sum(axis=-1)


@functools.lru_cache(maxsize=16)
def _band_ranges(row_hz: bytes) -> tuple[tuple[int, int], ...]:
    """The first and past-the-last row of each band (:func:`_band_rows`, whose rows are consecutive) of rows at
    ``row_hz`` Hz (the bytes of a ``float64`` array, so that the answer can be cached)."""
    return tuple((int(chosen.min()), int(chosen.max()) + 1)
                 for chosen in _band_rows(np.frombuffer(row_hz, dtype=np.float64)))


def _band_rows(row_hz: np.ndarray) -> list[np.ndarray]:
    """The rows of each band: :data:`BANDS` bands spaced by frequency from 250 Hz to 5 kHz (or to 90% of the
    highest row's frequency, if lower); a band narrower than a row gets the nearest row, and a band with the rows of
    the band below it is left out (its bits would never differ between two tracks)."""
    top = min(_TOP_HZ, 0.9 * float(row_hz.max()))
    edges = np.geomspace(min(_BOTTOM_HZ, top / 2), top, BANDS + 1)
    rows: list[np.ndarray] = []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = np.nonzero((row_hz >= low) & (row_hz < high))[0]
        chosen = inside if len(inside) else np.array([int(np.argmin(np.abs(row_hz - math.sqrt(low * high))))])
        if not rows or not np.array_equal(rows[-1], chosen):
            rows.append(chosen)
    return rows


def _hz_to_mel(hz: float) -> float:
    """Slaney's mel scale: linear to 1 kHz, logarithmic above."""
    return hz * 3 / 200 if hz < 1000 else 15 + math.log(hz / 1000) * 27 / math.log(6.4)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    return np.where(mels < 15, mels * 200 / 3, 1000 * np.exp((mels - 15) * math.log(6.4) / 27))

"""Log-mel spectrograms, the ``mel`` representation (``genreslice build --features mel``).

SoX does what it does for the ``sox`` representation up to the spectrogram: it decodes the file (any format it
reads, or FFmpeg's WAV of one it cannot), mixes it to mono and resamples it with its ``rate`` effect to the
analysis rate; then, instead of drawing a spectrogram, it streams the samples as raw 32-bit floats through a
pipe (:data:`PCM_OUTPUT`). This module turns them into gray levels with librosa's mel filterbank
(``librosa.filters.mel``, Slaney's mel scale and area normalisation, librosa's defaults), its window, and its dB
scale (the formula of ``librosa.power_to_db``):

1. STFT with a periodic Hann window of :attr:`MelSettings.n_fft` samples, one frame every ``hop_length =
   sample_rate / pixels_per_second`` samples, frames centred on their time (the signal padded with ``n_fft / 2``
   zeros on each side), as ``librosa.stft(center=True, pad_mode="constant")``; power ``|X|**2``.
2. ``n_mels = slice_size`` mel bands between ``fmin`` and ``fmax``: ``librosa.feature.melspectrogram`` of the
   same settings, computed in blocks of frames in float32 (the same values, several times faster, and memory
   bounded by a block instead of the file).
3. ``dB = 10 * log10(max(S, 1e-10) / ref)`` (``librosa.power_to_db`` without ``top_db``) with a FIXED
   reference, the power of a full-scale sine at the peak of its STFT bin, ``(sum(window) / 2) ** 2`` (not the
   file's loudest value), so a louder file is brighter and one file's level does not change another's pixels.
4. ``gray = 255 + (dB - max_db) * 255 / top_db``, rounded and clipped to 0..255: a linear function of dB, so
   ``max_db`` is white and ``max_db - top_db`` (and anything quieter, digital silence included) black.

The image has the layout of SoX's (:func:`genreslice.pipeline.spectrogram.render_spectrogram`): ``n_mels + 1``
rows, the lowest band at the bottom, and a black row 0 standing where SoX's Nyquist row is, which slicing drops
like that one.

librosa's filters (and SciPy's FFT) are imported when the first mel spectrogram is computed, not with this module: a
``sox`` build never pays for them, a ``mel`` build once per process (about 2 s; ``librosa.core``, another second,
is not needed).
"""
from __future__ import annotations

import functools
import math
import threading
import warnings
from dataclasses import dataclass, fields, replace

import numpy as np

from genreslice.pipeline.errors import ParameterError

#: SoX's output options for the ``mel`` representation: raw 32-bit little-endian floats on standard output.
PCM_OUTPUT = ("-t", "raw", "-e", "floating-point", "-b", "32", "-L", "-")
#: SoX's buffer for the ``mel`` representation, in bytes (its default is 8192): the samples go through the pipe in
#: writes as large as the pipe holds. Same samples, about 20 ms less per 30-s file (fewer writes and wake-ups).
SOX_BUFFER_BYTES = 65536
#: librosa's floor under the power before its logarithm: digital silence reads about -154 dB, below any gray.
AMIN = 1e-10
#: Columns per block of the STFT: 128 (about 3 s at 50 columns per second). Its work arrays (about 2 MB at n_fft
#: 2048) stay in the processor's caches, and :class:`MelStream` computes a block soon after SoX wrote its samples,
#: so little is left to compute when SoX ends (measured, 20 files of 30 s rendered in one process: 32 to 256 give
#: the same wall time within the noise, 512 about 10% more; below 64, numpy's per-call overhead costs CPU: 10 ms
#: more per file at 32, 20 ms at 16).
_BLOCK_FRAMES = 128
#: The most bytes of samples read from SoX's pipe at once: its buffer (:data:`SOX_BUFFER_BYTES`).
_READ_BYTES = SOX_BUFFER_BYTES


@dataclass(frozen=True)
class MelSettings:
    """The settings of a log-mel spectrogram besides those it shares with SoX's (sample rate, hop, slice size).

    Attributes
    ----------
    n_fft : int
        FFT size (and Hann window length) in samples; a power of two from 256 to 16384. 2048 (93 ms at 22050 Hz)
        is librosa's default.
    fmin : float
        Lowest frequency of the mel bands, in Hz; 0 or more, below ``fmax``.
    fmax : float or None
        Highest frequency of the mel bands, in Hz, at most half the sample rate; None: half the sample rate
        (resolved by :class:`~genreslice.pipeline.spectrogram.SpectrogramSpec`).
    max_db : float
        The level drawn white, in dB relative to a full-scale sine at the peak of its STFT bin. A 0 dBFS sine
        reads about -13 to -16 dB (bands near 1 kHz) and -19 to -23 dB (near 5 kHz) under Slaney's area-normalised
        bands, louder music a few dB less; -10 leaves headroom.
    top_db : float
        The range of dB drawn in gray: ``max_db - top_db`` and below is black; above 0, at most 200.
    """

    n_fft: int = 2048
    fmin: float = 0.0
    fmax: float | None = None
    max_db: float = -10.0
    top_db: float = 90.0

    def resolved(self, *, sample_rate: int, hop_length: int, n_mels: int) -> MelSettings:
        """These settings checked against the spectrogram's, with ``fmax`` filled in.

        Raises
        ------
        ParameterError
            A setting is out of range; the message names it and its value.
        """
        for name in ("fmin", "max_db", "top_db", *(("fmax",) if self.fmax is not None else ())):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ParameterError(f"mel {name}={value!r} must be a finite number")
        if isinstance(self.n_fft, bool) or not isinstance(self.n_fft, int) \
                or not 256 <= self.n_fft <= 16384 or self.n_fft & (self.n_fft - 1):
            raise ParameterError(f"mel n_fft={self.n_fft!r} must be a power of two from 256 to 16384")
        fmax = sample_rate / 2 if self.fmax is None else float(self.fmax)
        if not 0 < fmax <= sample_rate / 2:
            raise ParameterError(f"mel fmax={self.fmax!r} must be above 0 and at most half the sample rate "
                                 f"({sample_rate / 2:g} Hz)")
        if not 0 <= self.fmin < fmax:
            raise ParameterError(f"mel fmin={self.fmin!r} must be 0 or more and below fmax ({fmax:g} Hz)")
        if not 0 < self.top_db <= 200:
            raise ParameterError(f"mel top_db={self.top_db!r} must be above 0 and at most 200")
        if hop_length > self.n_fft:
            raise ParameterError(f"mel n_fft={self.n_fft} must be at least the hop of {hop_length} samples "
                                 "(sample_rate / pixels_per_second), or audio between frames is never analysed: "
                                 "raise --pixels-per-second or lower --sample-rate")
        if n_mels > self.n_fft // 2:
            raise ParameterError(f"mel n_fft={self.n_fft} gives {self.n_fft // 2 + 1} frequency bins, too few for "
                                 f"{n_mels} mel bands (slice_size)")
        return replace(self, fmin=float(self.fmin), fmax=fmax, max_db=float(self.max_db), top_db=float(self.top_db))

    def to_dict(self, *, sample_rate: int, hop_length: int, n_mels: int) -> dict:
        """The ``mel`` sub-block of a recorded ``spectrogram`` block: the settings, then what follows from them
        (for the record; :meth:`from_dict` reads the settings only)."""
        return {**{field.name: getattr(self, field.name) for field in fields(self)},
                "hop_length": hop_length, "n_mels": n_mels, "window": "hann", "power": 2.0, "mel_scale": "slaney",
                "norm": "slaney", "ref_power": full_scale_power(self.n_fft), "amin": AMIN,
                "gray": "255 + (dB - max_db) * 255 / top_db, rounded, clipped to 0..255"}

    @classmethod
    def from_dict(cls, record: object) -> MelSettings:
        """The settings a recorded ``mel`` sub-block holds.

        Raises
        ------
        ParameterError
            The block is not an object, or a setting is missing or not a number.
        """
        if not isinstance(record, dict):
            raise ParameterError(f"spectrogram setting mel must be a JSON object. Received: {record!r}")
        missing = [field.name for field in fields(cls) if field.name not in record]
        if missing:
            raise ParameterError(f"spectrogram mel settings lack {', '.join(missing)}")
        for field in fields(cls):
            value, wanted = record[field.name], int if field.name == "n_fft" else (int, float)
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ParameterError(f"spectrogram setting mel.{field.name}={value!r} is not a number"
                                     + (" of samples" if wanted is int else ""))
        return cls(**{field.name: record[field.name] for field in fields(cls)})


def full_scale_power(n_fft: int) -> float:
    """The dB reference: the power a full-scale sine has at the peak of its STFT bin, ``(sum(window) / 2) ** 2``
    for the periodic Hann window of ``n_fft`` samples (whose sum is ``n_fft / 2``)."""
    return float((n_fft / 4) ** 2)


def mel_gray(samples: np.ndarray, *, sample_rate: int, hop_length: int, n_mels: int, settings: MelSettings,
             max_columns: int) -> np.ndarray:
    """The gray log-mel spectrogram of mono samples.

    Parameters
    ----------
    samples : np.ndarray
        1-D float samples at ``sample_rate`` (full scale is 1.0); float32 is used as it is, without a copy.
    sample_rate : int
        Their rate in Hz.
    hop_length : int
        Samples between frames: one column per ``hop_length`` samples.
    n_mels : int
        Mel bands, the image's rows but one.
    settings : MelSettings
        Resolved settings (:meth:`MelSettings.resolved`).
    max_columns : int
        The most columns analysed: a longer file gives this many, from its beginning.

    Returns
    -------
    np.ndarray
        ``uint8`` array of shape ``(n_mels + 1, n_columns)``, ``n_columns = min(len(samples) // hop_length,
        max_columns)``: row 0 black (where SoX's Nyquist row is), row ``n_mels`` the lowest band; digital silence
        is 0. The same pixels as :class:`MelStream` fed the same samples.
    """
    samples = np.asarray(samples, dtype=np.float32).ravel()
    analysis = _Analysis(sample_rate=sample_rate, hop_length=hop_length, n_mels=n_mels, settings=settings)
    n_columns = min(len(samples) // hop_length, max_columns)
    blocks = [analysis.gray_block(samples, 0, start, min(start + _BLOCK_FRAMES, n_columns))
              for start in range(0, n_columns, _BLOCK_FRAMES)]
    return _image(blocks, n_mels)


class MelStream:
    """A gray log-mel spectrogram computed while its samples arrive: what :func:`mel_gray` gives, block by block.

    A build reads SoX's samples from a pipe into :meth:`space` and reports them with :meth:`advance`; each block
    of :data:`_BLOCK_FRAMES` columns whose samples have all arrived is computed then, while SoX decodes the rest of
    the file on another core, and its samples are dropped. So the mel step costs little time beyond SoX's own, and
    the memory a file needs is a block's and its image's, whatever its length (the samples are never all held).
    The pixels are :func:`mel_gray`'s of the same samples, bit for bit: each column is computed alone.

    Parameters
    ----------
    sample_rate, hop_length, n_mels, settings, max_columns
        As :func:`mel_gray`. Samples beyond the last column ``max_columns`` allows are counted and dropped.
    """

    def __init__(self, *, sample_rate: int, hop_length: int, n_mels: int, settings: MelSettings,
                 max_columns: int) -> None:
        self._analysis = _Analysis(sample_rate=sample_rate, hop_length=hop_length, n_mels=n_mels,
                                   settings=settings)
        self._hop, self._half, self._n_mels = hop_length, settings.n_fft // 2, n_mels
        self._max_columns = max_columns
        # Samples past this index are in no column max_columns allows (the last one ends at
        # (max_columns - 1) * hop + n_fft / 2).
        self._limit = max_columns * hop_length + settings.n_fft
        # A block's samples, room for a read, and what a read may leave of a partial sample.
        capacity = (_BLOCK_FRAMES + 1) * hop_length + 2 * settings.n_fft + 2 * _READ_BYTES // 4
        self._samples = np.zeros(capacity, dtype=np.float32)
        self._raw = self._samples.view(np.uint8)
        self._discard = memoryview(bytearray(_READ_BYTES))
        self._base = 0  # the index, in the file, of self._samples[0]
        self._end = 0  # bytes held in self._samples
        self._received = 0  # bytes received in all
        self._next = 0  # the first column not computed yet
        self._discarding = False
        self._blocks: list[np.ndarray] = []

    def space(self) -> memoryview:
        """Where the next bytes of little-endian float32 samples go: read into it, then call :meth:`advance`."""
        self._discarding = self._base * 4 + self._end >= self._limit * 4
        if self._discarding:
            return self._discard
        if len(self._raw) - self._end < _READ_BYTES:
            keep = max(self._next * self._hop - self._half, self._base)  # the first sample a column still needs
            drop = (keep - self._base) * 4
            self._raw[: self._end - drop] = self._raw[drop : self._end]  # numpy copies overlapping ranges safely
            self._base, self._end = keep, self._end - drop
        return memoryview(self._raw[self._end :])

    def advance(self, n_bytes: int) -> None:
        """Count ``n_bytes`` read into :meth:`space`, and compute the blocks whose samples have all arrived."""
        self._received += n_bytes
        if not self._discarding:
            self._end += n_bytes
        total = self._received // 4
        while True:
            stop = self._next + _BLOCK_FRAMES
            if stop > self._max_columns or total < max((stop - 1) * self._hop + self._half, stop * self._hop):
                return
            self._compute(stop)

    def feed(self, samples: np.ndarray) -> None:
        """Take samples from an array (float32, native order) instead of a pipe."""
        data = memoryview(np.ascontiguousarray(samples, dtype="<f4").view(np.uint8).ravel())
        while data:
            space = self.space()
            n_bytes = min(len(space), len(data))
            space[:n_bytes] = data[:n_bytes]
            data = data[n_bytes:]
            self.advance(n_bytes)

    @property
    def computed_columns(self) -> int:
        """Columns computed so far; the next block waits until its last column's samples have all arrived."""
        return self._next

    def finish(self) -> np.ndarray:
        """The image, once every sample has arrived: :func:`mel_gray`'s of all the samples received."""
        n_columns = min(self._received // 4 // self._hop, self._max_columns)
        while self._next < n_columns:
            self._compute(min(self._next + _BLOCK_FRAMES, n_columns))
        return _image(self._blocks, self._n_mels)

    def _compute(self, stop: int) -> None:
        held = min(self._end // 4, self._limit - self._base)
        self._blocks.append(self._analysis.gray_block(self._samples[:held], self._base, self._next, stop))
        self._next = stop


def _image(blocks: list[np.ndarray], n_mels: int) -> np.ndarray:
    """The image of gray blocks ``(columns, n_mels)``: ``(n_mels + 1, columns)``, lowest band last, row 0 black.
    Each block is copied into place, so the image is held twice at most while it is put together."""
    gray = np.zeros((n_mels + 1, sum(len(block) for block in blocks)), dtype=np.uint8)
    start = 0
    for block in blocks:
        gray[1:, start : start + len(block)] = block.T[::-1]
        start += len(block)
    return gray


class _Analysis:
    """The steps of a log-mel spectrogram for one setting, on one block of columns at a time, in work arrays that
    are reused from block to block (one set per thread): new arrays of a few MB for every block would cost the
    kernel's page faults, measured at 20 ms of CPU per 30-s file, more than the FFTs."""

    def __init__(self, *, sample_rate: int, hop_length: int, n_mels: int, settings: MelSettings) -> None:
        self.hop, self.n_fft, self.settings = hop_length, settings.n_fft, settings
        self.bands = _mel_bands(sample_rate, settings.n_fft, n_mels, settings.fmin, settings.fmax)
        self.window = _window(settings.n_fft)

    def gray_block(self, samples: np.ndarray, base: int, start: int, stop: int) -> np.ndarray:
        """Gray levels ``(stop - start, n_mels)`` of columns ``start`` to ``stop``; ``samples[0]`` is the file's
        sample ``base``, and the file's samples outside ``samples`` that a column needs are zeros."""
        power = _frame_power(samples, start, stop, hop_length=self.hop, n_fft=self.n_fft, window=self.window,
                             base=base)
        return db_to_gray(mel_db(self.bands.apply(power), n_fft=self.n_fft), self.settings)


def load_mel_tools(*, sample_rate: int, hop_length: int, n_mels: int, settings: MelSettings) -> None:
    """Import librosa and SciPy's FFT and make the filterbank and window of these settings now, in this thread.

    :func:`mel_gray` does it on its first call. A build calls this before its workers start, so that they inherit
    it (forked) and settings that leave a band empty are refused before any work; prediction, before it computes
    spectrograms in several threads at once.

    Raises
    ------
    ParameterError
        A mel band would have no frequency bin.
    """
    mel_gray(np.zeros(hop_length, dtype=np.float32), sample_rate=sample_rate, hop_length=hop_length, n_mels=n_mels,
             settings=settings, max_columns=1)


def mel_db(power: np.ndarray, *, n_fft: int) -> np.ndarray:
    """Mel power in dB against the fixed reference of :func:`full_scale_power`.

    The formula of ``librosa.power_to_db(power, ref=full_scale_power(n_fft), amin=AMIN, top_db=None)``, to the
    last bit, without importing ``librosa.core`` for it (about a second more of start-up in every build process).
    librosa's ``top_db`` is not used: its floor follows the file's loudest value, and a fixed one is wanted.
    """
    return 10.0 * np.log10(np.maximum(AMIN, power)) - 10.0 * np.log10(np.maximum(AMIN, full_scale_power(n_fft)))


def db_to_gray(db: np.ndarray, settings: MelSettings) -> np.ndarray:
    """Gray levels of dB values: ``255 + (dB - max_db) * 255 / top_db``, rounded half to even, clipped to 0..255."""
    gray = np.rint((np.asarray(db, dtype=np.float64) - settings.max_db) * (255.0 / settings.top_db) + 255.0)
    return np.clip(np.nan_to_num(gray, nan=0.0), 0, 255).astype(np.uint8)


def _frame_power(samples: np.ndarray, start: int, stop: int, *, hop_length: int, n_fft: int, window: np.ndarray,
                 base: int = 0) -> np.ndarray:
    """``|STFT|**2`` of frames ``start`` to ``stop``, shape ``(stop - start, n_fft // 2 + 1)``, float32, in a work
    array of this thread that the next call overwrites.

    Frame ``t`` holds the file's samples ``t * hop_length - n_fft // 2`` onwards, zeros outside the signal: the
    frames of ``librosa.stft(center=True, pad_mode="constant")``. ``samples[0]`` is the file's sample ``base``.
    """
    import scipy.fft

    n_frames = stop - start
    first = start * hop_length - n_fft // 2
    length = (n_frames - 1) * hop_length + n_fft
    segment = _work("segment", length, np.float32)
    lo, hi = max(first, base), min(first + length, base + len(samples))
    if hi > lo:
        segment[: lo - first] = 0
        segment[lo - first : hi - first] = samples[lo - base : hi - base]
        segment[hi - first :] = 0
    else:
        segment[:] = 0
    frames = np.lib.stride_tricks.sliding_window_view(segment, n_fft)[::hop_length]
    windowed = _work("windowed", n_frames * n_fft, np.float32).reshape(n_frames, n_fft)
    np.multiply(frames, window, out=windowed)
    spectrum = scipy.fft.rfft(windowed, axis=-1, overwrite_x=True).view(np.float32)
    np.square(spectrum, out=spectrum)
    power = _work("power", n_frames * (n_fft // 2 + 1), np.float32).reshape(n_frames, n_fft // 2 + 1)
    return np.add(spectrum[:, 0::2], spectrum[:, 1::2], out=power)


_WORK = threading.local()


def _work(name: str, size: int, dtype: type) -> np.ndarray:
    """A 1-D work array of this thread, reused while it is large enough (its contents are not kept)."""
    arrays = _WORK.__dict__.setdefault("arrays", {})
    array = arrays.get(name)
    if array is None or array.size < size:
        array = arrays[name] = np.empty(max(size, 1), dtype=dtype)
    return array[:size]


@functools.lru_cache(maxsize=4)
def _window(n_fft: int) -> np.ndarray:
    """librosa's periodic Hann window, float32."""
    import librosa

    return librosa.filters.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@dataclass(frozen=True)
class _MelBands:
    """librosa's mel filterbank, applied as sums over each band's bins instead of a matrix product.

    A triangular band ``k`` is non-zero strictly between the edges ``f[k]`` and ``f[k + 2]``, so bands of the same
    parity never share a bin: per parity, each bin has one weight and one band, and a band's power is one
    ``np.add.reduceat`` over its run of bins. That is the product with the filterbank without BLAS, whose threads
    would spin after each product on the core SoX needs for the next file (measured: about 75 ms of CPU per file
    in a one-worker build), and with the same summation order on every machine.

    Attributes
    ----------
    n_mels : int
        Bands.
    groups : tuple
        Per parity: the weight of each bin (float32), where each run of bins of one band or of none starts, the
        band of each run that has one, and which runs have one.
    """

    n_mels: int
    groups: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]

    def apply(self, power: np.ndarray) -> np.ndarray:
        """Mel power ``(n_frames, n_mels)`` of power spectra ``(n_frames, n_bins)``, float32."""
        mel = np.zeros((len(power), self.n_mels), dtype=np.float32)
        weighted = _work("weighted", power.size, np.float32).reshape(power.shape)
        for weights, starts, bands, has_band in self.groups:
            mel[:, bands] = np.add.reduceat(np.multiply(power, weights, out=weighted), starts, axis=1)[:, has_band]
        return mel


@functools.lru_cache(maxsize=4)
def _mel_bands(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> _MelBands:
    """librosa's mel filterbank (Slaney scale and normalisation) as :class:`_MelBands`."""
    import librosa

    with warnings.catch_warnings():  # librosa warns of bands without a bin; that is refused below instead
        warnings.simplefilter("ignore", UserWarning)
        bank = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False,
                                   norm="slaney", dtype=np.float32)
    empty = np.flatnonzero(~(bank > 0).any(axis=1))
    if empty.size:
        raise ParameterError(
            f"mel bands {', '.join(map(str, empty[:5]))}{', ...' if empty.size > 5 else ''} of {n_mels} would "
            f"have no frequency bin (fmin={fmin:g} Hz, fmax={fmax:g} Hz, n_fft={n_fft}): they would always be "
            "black. Widen the frequency range, or raise n_fft")
    groups = []
    for parity in (0, 1):
        band_of_bin = np.full(bank.shape[1], -1)
        for band in range(parity, n_mels, 2):
            band_of_bin[bank[band] > 0] = band
        starts = np.flatnonzero(np.diff(band_of_bin, prepend=-2))  # each run of one band (or of none)
        has_band = band_of_bin[starts] >= 0
        groups.append((bank[parity::2].sum(axis=0), starts, band_of_bin[starts][has_band], has_band))
    return _MelBands(n_mels=n_mels, groups=tuple(groups))

"""One SoX process per track: decode, mix to mono, resample, render a gray spectrogram.

Two representations (:data:`FEATURES`, ``SpectrogramSpec.features``): ``sox``, SoX's own linear-frequency
spectrogram, described below; and ``mel``, a log-mel spectrogram, for which SoX stops after resampling and streams
the samples to :mod:`genreslice.pipeline.mel` through a pipe. Both give the same image contract: ``slice_size + 1``
rows of 8-bit gray, louder brighter, silence black, low frequencies at the bottom, row 0 dropped by slicing.

Formats SoX cannot read (:data:`~genreslice.pipeline.discovery.FFMPEG_EXTENSIONS`: AAC or ALAC in ``.m4a``, ``.aac``,
``.opus``, ``.wma``) are first decoded by FFmpeg into a temporary WAV file at their own sample rate and channels
(32-bit float, so no sample loses precision), which the same SoX command then reads: downmix, resampling and
spectrogram are SoX's whatever the container, and a lossless file gives the same slices as its WAV.

SoX writes an 8-bit palette PNG. In monochrome mode the palette's first four entries are reserved for axes and
labels, so the stored index of a pixel is its gray level plus four. Reading the indices as intensities (the
predecessor's defect) shifts every value and turns silence gray; the palette is applied here instead, so
louder is brighter and silence is black.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from genreslice.pipeline import layout
from genreslice.pipeline.discovery import FFMPEG_EXTENSIONS
from genreslice.pipeline.errors import ParameterError, SoxError
from genreslice.pipeline.mel import PCM_OUTPUT, SOX_BUFFER_BYTES, MelSettings, MelStream, load_mel_tools
from genreslice.pipeline.png import read_png_rows
from genreslice.pipeline.slicing import slice_spectrogram
from genreslice.pipeline.sox import FFMPEG_INSTALL_HINT, dies_with_parent, find_ffmpeg

#: SoX's ``rate`` effect quality flags, by the name users pass on the command line.
RESAMPLE_QUALITIES = {"quick": "-q", "low": "-l", "medium": "-m", "high": "-h", "very-high": "-v"}
#: SoX's spectrogram effect renders at most this many columns and silently stops there.
SOX_MAX_COLUMNS = 200_000
#: The representations a data set can hold, by the name ``--features`` takes.
FEATURES = {
    "sox": "SoX's linear-frequency spectrogram",
    "mel": "a log-mel spectrogram (librosa's mel filterbank and dB scale on SoX's resampled samples)",
}
#: The format of a ``sox`` spectrogram block, as every genreslice wrote it before ``mel`` existed.
SPEC_FORMAT_VERSION = 1
#: The format of a ``mel`` block: a genreslice that knows only version 1 refuses it instead of reading it as ``sox``.
MEL_SPEC_FORMAT_VERSION = 2
#: The settings of every block, in the order they are recorded (``features`` and ``mel`` only in a mel block).
_SHARED_SETTINGS = ("sample_rate", "pixels_per_second", "slice_size", "height_target", "resample_quality")
#: Keys of a block that follow from its representation (the last two are the build's measure of the column
#: rate): where two blocks differ in ``features``, only that is named, not these.
_FOLLOW_FEATURES = ("format_version", "mel", "sox_effects", "columns_per_second", "slice_seconds")
#: Seconds SoX may spend on one file by default before the file is reported as failed.
SOX_TIMEOUT_S = 600.0
#: What SoX's libpng says when the audio is shorter than one spectrogram column.
_ZERO_WIDTH = "Image width is zero"
#: Signals that end SoX from outside; a file SoX fails on this way is tried again by a later build.
#: (Looked up by name: Windows has no SIGKILL or SIGHUP, and the module must import there too.)
_OUTSIDE_KILLS = frozenset(getattr(signal, name) for name in ("SIGKILL", "SIGTERM", "SIGINT", "SIGHUP")
                           if hasattr(signal, name))


@dataclass(frozen=True)
class SpectrogramSpec:
    """How audio becomes spectrogram slices; recorded next to the data it describes.

    Attributes
    ----------
    sample_rate : int
        Analysis rate in Hz every file is resampled to, so all files share one frequency axis.
    pixels_per_second : int
        Time resolution: spectrogram columns per second of audio (SoX ``-X``).
    slice_size : int
        Width and height of a square slice in pixels; SoX renders ``slice_size + 1`` rows and the top
        (Nyquist) row is dropped.
    height_target : int
        SoX ``-Y``: the total height SoX aims at; it picks the largest ``2**k + 1`` rows not above it (``sox``
        only; recorded for ``mel`` too).
    resample_quality : str
        One of ``RESAMPLE_QUALITIES``: SoX ``rate`` quality.
    features : str
        The representation, one of :data:`FEATURES`: ``"sox"`` (SoX's spectrogram) or ``"mel"`` (log-mel; then
        ``sample_rate / pixels_per_second`` must be a whole number of samples, the hop, and ``slice_size`` is the
        number of mel bands).
    mel : MelSettings
        FFT size, frequency range and dB-to-gray mapping of ``mel`` (its ``fmax`` filled in); left at its defaults
        for ``sox``.
    """

    sample_rate: int = 22050
    pixels_per_second: int = 50
    slice_size: int = 128
    height_target: int = 200
    resample_quality: str = "high"
    features: str = "sox"
    mel: MelSettings = field(default_factory=MelSettings)

    def __post_init__(self) -> None:
        if not 4000 <= self.sample_rate <= 192_000:
            raise ParameterError(f"sample_rate={self.sample_rate} must be between 4000 and 192000 Hz")
        if not 1 <= self.pixels_per_second <= 5000:
            raise ParameterError(f"pixels_per_second={self.pixels_per_second} must be between 1 and 5000")
        if self.resample_quality not in RESAMPLE_QUALITIES:
            raise ParameterError(
                f"resample_quality={self.resample_quality!r} must be one of {', '.join(RESAMPLE_QUALITIES)}"
            )
        if self.slice_size < 1 or self.slice_size & (self.slice_size - 1):
            raise ParameterError(f"slice_size={self.slice_size} must be a power of two")
        if not self.slice_size + 1 <= self.height_target < 2 * self.slice_size + 1:
            raise ParameterError(
                f"height_target={self.height_target} must make SoX render slice_size + 1 = "
                f"{self.slice_size + 1} rows (between {self.slice_size + 1} and {2 * self.slice_size})"
            )
        if self.features not in FEATURES:
            raise ParameterError(f"features={self.features!r} must be one of {', '.join(FEATURES)}")
        if not isinstance(self.mel, MelSettings):
            raise ParameterError(f"mel={self.mel!r} must be a MelSettings")
        if self.features == "sox":
            if self.mel != MelSettings():
                raise ParameterError(f"mel settings apply to features='mel' only, not to 'sox'. Received: {self.mel}")
            return
        if self.sample_rate % self.pixels_per_second:
            raise ParameterError(
                f"pixels_per_second={self.pixels_per_second} must divide sample_rate={self.sample_rate} for mel "
                f"features: a column is a hop of sample_rate / pixels_per_second samples, a whole number (e.g. 50 "
                f"at 22050 Hz)")
        object.__setattr__(self, "mel", self.mel.resolved(sample_rate=self.sample_rate, hop_length=self.hop_length,
                                                          n_mels=self.slice_size))

    @property
    def hop_length(self) -> int:
        """Samples between two columns of a ``mel`` spectrogram: ``sample_rate / pixels_per_second``."""
        return self.sample_rate // self.pixels_per_second

    def sox_effects(self) -> list[str]:
        """The SoX effect chain, as arguments: for ``sox``, the one that renders a PNG to standard output; for
        ``mel``, the one that resamples, stopping after the samples of :data:`SOX_MAX_COLUMNS` columns."""
        resample = ["channels", "1", "rate", RESAMPLE_QUALITIES[self.resample_quality], str(self.sample_rate)]
        if self.features == "mel":
            # The last column analysed needs half a window of audio after its centre.
            return [*resample, "trim", "0", f"{SOX_MAX_COLUMNS * self.hop_length + self.mel.n_fft // 2}s"]
        return [*resample, *self.spectrogram_effect()]

    def spectrogram_effect(self) -> list[str]:
        """SoX's ``spectrogram`` effect with its arguments: monochrome, raw (no axes), the PNG to standard output."""
        return ["spectrogram", "-Y", str(self.height_target), "-X", str(self.pixels_per_second), "-m", "-r", "-o", "-"]

    def slice_seconds(self, columns_per_second: float) -> float:
        """Seconds of audio one slice covers at the column rate SoX really renders
        (:func:`measure_columns_per_second`)."""
        return self.slice_size / columns_per_second

    def columns_per_second(self) -> float | None:
        """The column rate of ``mel``, exactly ``sample_rate / hop_length``; None for ``sox``, whose rate SoX
        chooses (:func:`measure_columns_per_second`)."""
        return self.sample_rate / self.hop_length if self.features == "mel" else None

    def to_dict(self) -> dict:
        """JSON-ready description, with the effect chain for the record.

        A ``sox`` block is what every genreslice wrote before ``mel`` existed (format version 1, no ``features``);
        a ``mel`` block has format version 2, ``"features": "mel"`` and a ``mel`` sub-block.
        """
        shared = {name: getattr(self, name) for name in _SHARED_SETTINGS}
        if self.features == "sox":
            return {"format_version": SPEC_FORMAT_VERSION, **shared, "sox_effects": self.sox_effects()}
        mel = self.mel.to_dict(sample_rate=self.sample_rate, hop_length=self.hop_length, n_mels=self.slice_size)
        return {"format_version": MEL_SPEC_FORMAT_VERSION, **shared, "features": self.features, "mel": mel,
                "sox_effects": self.sox_effects()}

    @classmethod
    def from_dict(cls, record: dict) -> SpectrogramSpec:
        """The spec a recorded ``spectrogram`` block (``dataset.json``, ``model.json``) describes.

        A block without ``features`` is ``sox``.

        Raises
        ------
        ParameterError
            A setting is missing or out of range, or the block was written by a newer format.
        """
        if not isinstance(record, dict):
            raise ParameterError(f"spectrogram settings must be a JSON object. Received: {record!r}")
        features = record.get("features", "sox")
        if features not in FEATURES:
            raise ParameterError(f"spectrogram features={features!r} is not one of {', '.join(FEATURES)}; it was "
                                 "written by another version of genreslice")
        version = MEL_SPEC_FORMAT_VERSION if features == "mel" else SPEC_FORMAT_VERSION
        if record.get("format_version", SPEC_FORMAT_VERSION) != version:
            raise ParameterError(
                f"spectrogram format_version={record.get('format_version')!r} is not {version} (features "
                f"{features!r}); it was written by another version of genreslice"
            )
        names = (*_SHARED_SETTINGS, "mel") if features == "mel" else _SHARED_SETTINGS
        missing = [name for name in names if name not in record]
        if missing:
            raise ParameterError(f"spectrogram settings lack {', '.join(missing)}")
        values = {}
        for name in _SHARED_SETTINGS:
            value, wanted = record[name], str if name == "resample_quality" else int
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ParameterError(f"spectrogram setting {name}={value!r} is not {wanted.__name__}")
            values[name] = value
        if features == "mel":
            values.update(features=features, mel=MelSettings.from_dict(record["mel"]))
        return cls(**values)


def spectrogram_differences(recorded: object, current: object) -> list[tuple[str, object, object]]:
    """Where two recorded ``spectrogram`` blocks differ, as ``(key, recorded value, current value)`` on the keys
    of ``current`` (see :func:`genreslice.pipeline.layout.setting_differences`); keys are dotted from the block.

    A block without ``features`` is ``sox``, so a ``sox`` block and a ``mel`` block differ in ``features`` (named
    with both values) whichever is which; what follows from the representation (format version, ``mel``
    settings, SoX effects, column rate) is not listed besides it.
    """
    def named(block: object) -> object:
        return {"features": "sox", **block} if isinstance(block, dict) else block

    differences = list(layout.setting_differences(named(recorded), named(current)))
    if isinstance(recorded, dict) and any(key == "features" for key, _, _ in differences):
        differences = [(key, old, new) for key, old, new in differences
                       if key.split(".", 1)[0] not in _FOLLOW_FEATURES]
    return differences


@dataclass(frozen=True)
class AudioSlices:
    """One file's spectrogram cut into slices.

    Attributes
    ----------
    slices : np.ndarray
        ``uint8`` array of shape ``(n, slice_size, slice_size)``, true gray levels; ``n`` may be 0.
    duration_s : float
        Length of the audio at the requested column rate, rounded to 10 ms.
    truncated : bool
        SoX stopped at :data:`SOX_MAX_COLUMNS`: only the beginning of a very long file was analysed.
    """

    slices: np.ndarray
    duration_s: float
    truncated: bool

    def truncation_note(self) -> str:
        """Why only part of the file was analysed; empty if all of it was."""
        if not self.truncated:
            return ""
        return (f"only the first {self.duration_s:g} s were analysed (at most {SOX_MAX_COLUMNS} spectrogram columns "
                "are rendered)")


def too_short_reason(duration_s: float, slice_seconds: float) -> str:
    """The recorded reason for a file with no whole slice."""
    return f"{duration_s:g} s of audio is shorter than one slice ({slice_seconds:.2f} s)"


def sox_command(path: str | os.PathLike, spec: SpectrogramSpec, *, sox_path: str = "sox") -> list[str]:
    """The argument list for one track: for ``sox``, SoX writes the spectrogram PNG to standard output; for
    ``mel``, the resampled mono samples as raw 32-bit floats (:data:`~genreslice.pipeline.mel.PCM_OUTPUT`).

    The path is made absolute so a name with a leading dash is never read as an option, and ``--no-glob``
    stops SoX from expanding ``[`` ``*`` ``?`` in real file names. ``-R`` seeds SoX's generators.
    """
    # -D: SoX would dither the samples on their way to the null output, after the spectrogram: pure cost (and
    # for mel, floats need no dither).
    if spec.features == "mel":
        return [sox_path, "-R", "-D", "-V2", "--buffer", str(SOX_BUFFER_BYTES), "--no-glob",
                os.path.abspath(os.fspath(path)), *PCM_OUTPUT, *spec.sox_effects()]
    return [sox_path, "-R", "-D", "-V2", "--no-glob", os.path.abspath(os.fspath(path)), "-n", *spec.sox_effects()]


def ffmpeg_command(path: str | os.PathLike, wav_path: str | os.PathLike, spec: SpectrogramSpec, *,
                   ffmpeg_path: str = "ffmpeg") -> list[str]:
    """The argument list that decodes the first audio stream of ``path`` into a WAV file for SoX.

    The WAV keeps the file's sample rate and channels (SoX mixes and resamples, as for any file) and holds
    32-bit floats, exact for every 16- and 24-bit source. Both paths are absolute and given through FFmpeg's
    ``file:`` protocol, so no name is read as an option or another protocol. Decoding stops a minute after
    the longest audio SoX renders (:data:`SOX_MAX_COLUMNS`): SoX would ignore the rest, and the WAV stays
    bounded; no tags are copied.
    """
    max_seconds = SOX_MAX_COLUMNS / spec.pixels_per_second + 60
    return [ffmpeg_path, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error",
            "-i", "file:" + os.path.abspath(os.fspath(path)),
            "-map", "0:a:0", "-map_metadata", "-1", "-t", f"{max_seconds:g}", "-c:a", "pcm_f32le",
            "-bitexact", "-f", "wav", "-y", "file:" + os.path.abspath(os.fspath(wav_path))]


def needs_ffmpeg(path: str | os.PathLike) -> bool:
    """Whether ``path`` is in a format SoX cannot read, which FFmpeg decodes first (by its extension)."""
    return os.path.splitext(os.fspath(path))[1].lower() in FFMPEG_EXTENSIONS


def measure_columns_per_second(spec: SpectrogramSpec, *, sox_path: str = "sox", timeout_s: float = 60.0) -> float:
    """The column rate SoX really renders for ``spec``.

    SoX advances a whole number of samples per column, so the rate is ``sample_rate / step`` for a step it
    chooses: at 22050 Hz and 50 pixels per second it renders 50.1136 columns per second, not 50. Durations
    and slice start times use this rate. SoX reports it (at verbosity 3) only when it differs from the request.
    A ``mel`` spectrogram's rate is exactly ``sample_rate / hop_length``, known without SoX.
    """
    if spec.columns_per_second() is not None:
        return spec.columns_per_second()
    command = [sox_path, "-R", "-D", "-V3", "-r", str(spec.sample_rate), "-c", "1", "-n", "-n", "synth", "0.1",
               "sine", "440", *spec.spectrogram_effect()]
    try:
        run = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SoxError(f"SoX could not render a test spectrogram: {err}", command=command) from err
    stderr = run.stderr.decode("utf-8", errors="replace")
    if run.returncode != 0:
        raise SoxError(f"SoX could not render a test spectrogram: {summarize_sox_stderr(stderr)}",
                       command=command, stderr=stderr)
    match = re.search(r"actual pixels/s = ([0-9.]+)", stderr)
    return float(match.group(1)) if match else float(spec.pixels_per_second)


def render_spectrogram(
    path: str | os.PathLike,
    spec: SpectrogramSpec,
    *,
    sox_path: str = "sox",
    timeout_s: float = SOX_TIMEOUT_S,
    on_start: Callable[[subprocess.Popen], None] | None = None,
) -> np.ndarray:
    """Render the gray spectrogram of one audio file.

    Parameters
    ----------
    path : str or os.PathLike
        Audio file in any format SoX reads, or one FFmpeg decodes for it (:func:`needs_ffmpeg`).
    spec : SpectrogramSpec
        Analysis settings.
    sox_path : str
        SoX executable.
    timeout_s : float
        Seconds before SoX is killed and the file is reported as failed (FFmpeg's decoding included).
    on_start : callable, optional
        Called with the SoX process (and the FFmpeg process before it) once it runs, so a caller can kill it (a
        cancelled prediction); a killed SoX or FFmpeg is reported as a failure like any other.

    Returns
    -------
    np.ndarray
        ``uint8`` array of shape ``(spec.slice_size + 1, n_columns)``: true gray levels, 0 = silence,
        row 0 = highest frequency (Nyquist; black for ``mel``), the last row the lowest,
        ``n_columns = floor(duration_s * spec.pixels_per_second)``, at most :data:`SOX_MAX_COLUMNS`.

    Raises
    ------
    SoxError
        SoX failed, timed out, or wrote something that is not the expected PNG; carries SoX's stderr. Or FFmpeg
        failed on the file, or is not installed (a transient failure).
    """
    render = _render_mel if spec.features == "mel" else _render_sox
    if needs_ffmpeg(path):
        with _decoded_by_ffmpeg(path, spec, timeout_s=timeout_s, on_start=on_start) as (wav_path, left_s):
            return render(wav_path, spec, sox_path=sox_path, timeout_s=left_s, budget_s=timeout_s, on_start=on_start)
    return render(path, spec, sox_path=sox_path, timeout_s=timeout_s, budget_s=timeout_s, on_start=on_start)


def prepare_rendering(spec: SpectrogramSpec) -> None:
    """Load now what rendering ``spec`` needs besides SoX: for ``mel``, librosa and the filterbank (a second or two,
    once per process); nothing for ``sox``. For a build before its workers start (they inherit it), and a caller
    about to render from several threads at once.

    Raises
    ------
    ParameterError
        Settings the filterbank refuses (a mel band without a frequency bin).
    """
    if spec.features == "mel":
        load_mel_tools(sample_rate=spec.sample_rate, hop_length=spec.hop_length, n_mels=spec.slice_size,
                       settings=spec.mel)


@contextlib.contextmanager
def _decoded_by_ffmpeg(path: str | os.PathLike, spec: SpectrogramSpec, *, timeout_s: float,
                       on_start: Callable[[subprocess.Popen], None] | None):
    """Decode ``path`` with FFmpeg into a temporary WAV file, removed on exit; yields it and the seconds left of
    ``timeout_s``.

    Raises
    ------
    SoxError
        FFmpeg is not installed (transient: a later build, with FFmpeg, tries again), could not be started, timed
        out, was killed, or failed on the file (carrying FFmpeg's message).
    """
    extension = os.path.splitext(os.fspath(path))[1].lower()
    ffmpeg_path = find_ffmpeg()
    if ffmpeg_path is None:
        raise SoxError(f"cannot decode {extension} files without FFmpeg: install it ({FFMPEG_INSTALL_HINT}) and run "
                       "the same command again", transient=True)
    started = time.monotonic()
    folder = _decode_folder()
    descriptor, wav_path = tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=".wav", dir=folder)
    os.close(descriptor)
    try:
        command = ffmpeg_command(path, wav_path, spec, ffmpeg_path=ffmpeg_path)
        finished = _run_sox(command, timeout_s=timeout_s, on_start=on_start, program="FFmpeg")
        _check_sox_exit(finished, program="FFmpeg")
        left_s = timeout_s - (time.monotonic() - started)
        if left_s <= 0:
            raise SoxError(f"FFmpeg and SoX timed out after {timeout_s:g} s", command=command, transient=True)
        yield wav_path, left_s
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(wav_path)


#: The folder, in the system's temporary folder, of FFmpeg's decoded WAV files; each is named after its process.
DECODE_FOLDER = "genreslice-decoded"


def _decode_folder() -> str:
    """The folder for decoded WAV files, swept of those whose process is gone.

    A worker killed mid-decode (a build stopped with Ctrl-C kills its workers) cannot remove its file, which may
    hold a gigabyte of samples: the next decode anywhere on the machine removes it.
    """
    folder = os.path.join(tempfile.gettempdir(), DECODE_FOLDER)
    os.makedirs(folder, exist_ok=True)
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            pid = name.split("-", 1)[0]
            if name.endswith(".wav") and pid.isdigit() and not _process_exists(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
    return folder


def _process_exists(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would send Ctrl-C there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a system that cannot tell: keep its file
    return True


def _render_sox(path: str | os.PathLike, spec: SpectrogramSpec, *, sox_path: str, timeout_s: float, budget_s: float,
                on_start: Callable[[subprocess.Popen], None] | None) -> np.ndarray:
    """:func:`render_spectrogram` of a file SoX reads; ``budget_s`` is the whole file's timeout, for the message."""
    command = sox_command(path, spec, sox_path=sox_path)
    finished = _run_sox(command, timeout_s=timeout_s, on_start=on_start, budget_s=budget_s)
    if finished.returncode != 0 and _ZERO_WIDTH in finished.stderr:
        # Less audio than one spectrogram column (a file of a few samples): libpng refuses an image of width 0
        # and SoX aborts. That is a file too short to slice, not a damaged one.
        return np.zeros((spec.slice_size + 1, 0), dtype=np.uint8)
    _check_sox_exit(finished)
    return _spectrogram_image(finished, spec)


def _render_mel(path: str | os.PathLike, spec: SpectrogramSpec, *, sox_path: str, timeout_s: float, budget_s: float,
                on_start: Callable[[subprocess.Popen], None] | None) -> np.ndarray:
    """:func:`render_spectrogram` of a file SoX reads, for ``mel``: SoX's samples through a pipe into a
    :class:`genreslice.pipeline.mel.MelStream`, which computes the spectrogram while SoX decodes the rest of the
    file, holding a block of samples at a time. SoX stops after :data:`SOX_MAX_COLUMNS` columns of samples
    (:meth:`SpectrogramSpec.sox_effects`)."""
    stream = MelStream(sample_rate=spec.sample_rate, hop_length=spec.hop_length, n_mels=spec.slice_size,
                       settings=spec.mel, max_columns=SOX_MAX_COLUMNS)
    finished = _run_sox(sox_command(path, spec, sox_path=sox_path), timeout_s=timeout_s, on_start=on_start,
                        budget_s=budget_s, stdout_to=stream)
    _check_sox_exit(finished)
    return stream.finish()


def _run_sox(command: list[str], *, timeout_s: float, on_start: Callable[[subprocess.Popen], None] | None,
             program: str = "SoX", budget_s: float | None = None,
             stdout_to: MelStream | None = None) -> subprocess.CompletedProcess:
    """Run SoX (or FFmpeg, named by ``program``) to its end: its stdout (bytes; empty when ``stdout_to`` takes it
    as it comes), its stderr decoded; killed after ``timeout_s``. ``budget_s``, when larger, is the timeout
    reported (the file's, of which ``timeout_s`` is left).

    Raises
    ------
    SoxError
        The program could not be started, or timed out.
    """
    try:
        # Its own process group: SoX treats SIGINT/SIGTERM as a normal end and exits 0 with a truncated
        # spectrogram, so a Ctrl-C meant for the build must reach Python (which then kills SoX), not SoX. And it
        # dies with the process that started it, however that process ends (SIGKILL included).
        process = subprocess.Popen(dies_with_parent(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   process_group=0)
    except OSError as err:
        raise SoxError(f"{program} could not be started: {err}", command=command, transient=True) from err
    with process:
        try:
            if on_start is not None:
                on_start(process)
            if stdout_to is None:
                stdout, stderr_bytes = process.communicate(timeout=timeout_s)
            else:
                stdout, stderr_bytes = b"", _stream_stdout(process, stdout_to, timeout_s=timeout_s)
        except subprocess.TimeoutExpired as err:
            process.kill()
            process.communicate()
            shown = f"{timeout_s:g} s" if budget_s is None or budget_s <= timeout_s else (
                f"{budget_s:g} s (FFmpeg decoding, then SoX)")
            raise SoxError(f"{program} timed out after {shown}", command=command, transient=True) from err
        except BaseException:
            process.kill()
            raise
    stderr = stderr_bytes.decode("utf-8", errors="replace")
    return subprocess.CompletedProcess(command, process.returncode, stdout=stdout, stderr=stderr)


def _stream_stdout(process: subprocess.Popen, stream: MelStream, *, timeout_s: float) -> bytes:
    """Read the process's stdout into ``stream`` as it comes, and its stderr, until both close and it exits:
    ``Popen.communicate`` for a caller that uses the output while the process still runs. Returns the stderr.

    Raises
    ------
    subprocess.TimeoutExpired
        Both were not closed and the process had not exited after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    stderr: list[bytes] = []
    with selectors.PollSelector() if hasattr(selectors, "PollSelector") else selectors.SelectSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(process.args, timeout_s)
            for key, _ in selector.select(left):
                if key.fileobj is process.stdout:
                    n_bytes = os.readv(key.fd, [stream.space()])
                    if n_bytes:
                        stream.advance(n_bytes)
                        continue
                else:
                    data = os.read(key.fd, 32768)
                    if data:
                        stderr.append(data)
                        continue
                selector.unregister(key.fileobj)
                key.fileobj.close()
    process.wait(timeout=max(deadline - time.monotonic(), 0.001))
    return b"".join(stderr)


def _check_sox_exit(finished: subprocess.CompletedProcess, *, program: str = "SoX") -> None:
    """Raise :class:`SoxError` for a SoX (or FFmpeg) that was killed or failed; a signal from outside makes it
    transient."""
    summarize = summarize_ffmpeg_stderr if program == "FFmpeg" else summarize_sox_stderr
    if finished.returncode < 0:
        number = -finished.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        # Killed from outside (the OOM killer, a user, a stop): not the file's fault, unlike a crash (SIGSEGV,
        # SIGABRT...) on a malformed file, which would crash again.
        raise SoxError(f"{program} was killed by {name}: {summarize(finished.stderr)}", command=finished.args,
                       stderr=finished.stderr, transient=number in _OUTSIDE_KILLS)
    if finished.returncode != 0:
        raise SoxError(f"{program} exited with status {finished.returncode}: {summarize(finished.stderr)}",
                       command=finished.args, stderr=finished.stderr)


def _spectrogram_image(finished: subprocess.CompletedProcess, spec: SpectrogramSpec) -> np.ndarray:
    """The gray spectrogram in SoX's PNG, checked to have the rows ``spec`` asks for."""
    try:
        gray = decode_sox_png(finished.stdout)
    except ValueError as err:
        raise SoxError(f"SoX output is not a readable spectrogram: {err}", command=finished.args,
                       stderr=finished.stderr) from err
    if gray.shape[0] != spec.slice_size + 1:
        raise SoxError(
            f"SoX rendered {gray.shape[0]} rows, expected {spec.slice_size + 1} "
            f"(height_target={spec.height_target})",
            command=finished.args,
            stderr=finished.stderr,
        )
    return gray


def render_slices(path: str | os.PathLike, spec: SpectrogramSpec, *, sox_path: str = "sox",
                  timeout_s: float = SOX_TIMEOUT_S,
                  on_start: Callable[[subprocess.Popen], None] | None = None) -> AudioSlices:
    """Render one file's spectrogram and cut it into whole slices, in memory.

    The build writes these slices as PNGs; prediction classifies them directly, so both see the same pixels.

    Raises
    ------
    SoxError
        As :func:`render_spectrogram`.
    """
    gray = render_spectrogram(path, spec, sox_path=sox_path, timeout_s=timeout_s, on_start=on_start)
    n_columns = gray.shape[1]
    # SoX sizes the image from the file's length at the requested rate, then steps through the audio at its
    # real column rate (e.g. 50.11 per second) and stops at that width: the width gives the duration at the
    # requested rate, while slice start times advance at the real one.
    return AudioSlices(slices=slice_spectrogram(gray, spec.slice_size),
                       duration_s=round(n_columns / spec.pixels_per_second, 2),
                       truncated=n_columns >= SOX_MAX_COLUMNS)


def decode_sox_png(data: bytes) -> np.ndarray:
    """Decode SoX's PNG into true gray levels (``uint8``, 2-D) by applying its palette.

    SoX (through libpng) writes 8-bit palette images with every row unfiltered; those are decoded here with
    zlib and numpy, several times faster than a general decoder. Anything else goes through Pillow.
    """
    gray = _decode_unfiltered_palette_png(data)
    if gray is not None:
        return gray
    from PIL import Image, UnidentifiedImageError  # only for the rare PNG the fast path declines

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.mode == "P":
                palette = np.frombuffer(bytes(image.getpalette("RGB")), dtype=np.uint8).reshape(-1, 3)
                return _palette_gray_lut(palette)[np.asarray(image)]
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"{len(data)} bytes that PIL cannot read as PNG ({err})") from err


def _palette_gray_lut(palette: np.ndarray) -> np.ndarray:
    """Index -> gray level. The monochrome palette is gray (R = G = B); averaging keeps any palette meaningful."""
    lut = np.zeros(256, dtype=np.uint8)
    lut[: len(palette)] = palette[:256].mean(axis=1).round().astype(np.uint8)
    return lut


def _decode_unfiltered_palette_png(data: bytes) -> np.ndarray | None:
    """The fast path: an 8-bit, non-interlaced palette PNG whose rows all use filter 0; None otherwise."""
    parsed = read_png_rows(data)
    if parsed is None or parsed[0] != 3 or parsed[1] is None:
        return None
    _, palette, rows = parsed
    if rows[:, 0].any():
        return None
    return _palette_gray_lut(palette)[rows[:, 1:]]


#: Said where SoX's message stops at a colon with nothing after it (``can't open input file `x':``).
_SOX_GAVE_NO_REASON = " no reason given (not audio SoX can decode, or a damaged file)"


def summarize_sox_stderr(stderr: str, *, limit: int = 300) -> str:
    """The useful part of SoX's stderr: its FAIL lines, else its last line, shortened.

    A line that ends at a colon (SoX names the file but not the problem) says so instead of stopping there.
    SoX's warning that a ``trim`` ends after the audio is left out.
    """
    # The mel chain's "trim" (the column cap) warns on every file shorter than the cap: never the reason.
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "WARN trim:" not in line]
    fail_lines = [line for line in lines if " FAIL " in f" {line} "]
    text = "; ".join(line + _SOX_GAVE_NO_REASON if line.endswith(":") else line
                     for line in fail_lines or lines[-1:]) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summarize_ffmpeg_stderr(stderr: str, *, limit: int = 300) -> str:
    """FFmpeg's messages (it runs at ``-loglevel error``), on one line, shortened; without the memory addresses of
    its components (``[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d1...]``) or the ``file:`` prefix of paths."""
    stderr = re.sub(r" @ 0x[0-9a-fA-F]+\]", "]", stderr)
    lines = [re.sub(r"(^|\s)file:(?=/)", r"\1", line.strip()) for line in stderr.splitlines() if line.strip()]
    text = "; ".join(lines) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."

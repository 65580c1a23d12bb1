"""One SoX process per track: decode, mix to mono, resample, render a gray spectrogram.

SoX writes an 8-bit palette PNG. In monochrome mode the palette's first four entries are reserved for axes and
labels, so the stored index of a pixel is its gray level plus four. Reading the indices as intensities (the
predecessor's defect) shifts every value and turns silence gray; the palette is applied here instead, so
louder is brighter and silence is black.
"""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

import numpy as np

from genreslice.pipeline.errors import ParameterError, SoxError
from genreslice.pipeline.png import read_png_rows
from genreslice.pipeline.slicing import slice_spectrogram
from genreslice.pipeline.sox import dies_with_parent

#: SoX's ``rate`` effect quality flags, by the name users pass on the command line.
RESAMPLE_QUALITIES = {"quick": "-q", "low": "-l", "medium": "-m", "high": "-h", "very-high": "-v"}
#: SoX's spectrogram effect renders at most this many columns and silently stops there.
SOX_MAX_COLUMNS = 200_000
SPEC_FORMAT_VERSION = 1
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
        SoX ``-Y``: the total height SoX aims at; it picks the largest ``2**k + 1`` rows not above it.
    resample_quality : str
        One of ``RESAMPLE_QUALITIES``: SoX ``rate`` quality.
    """

    sample_rate: int = 22050
    pixels_per_second: int = 50
    slice_size: int = 128
    height_target: int = 200
    resample_quality: str = "high"

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

    def sox_effects(self) -> list[str]:
        """The SoX effect chain, as arguments, that renders a PNG to standard output."""
        return ["channels", "1", "rate", RESAMPLE_QUALITIES[self.resample_quality], str(self.sample_rate),
                *self.spectrogram_effect()]

    def spectrogram_effect(self) -> list[str]:
        """SoX's ``spectrogram`` effect with its arguments: monochrome, raw (no axes), the PNG to standard output."""
        return ["spectrogram", "-Y", str(self.height_target), "-X", str(self.pixels_per_second), "-m", "-r", "-o", "-"]

    def slice_seconds(self, columns_per_second: float) -> float:
        """Seconds of audio one slice covers at the column rate SoX really renders
        (:func:`measure_columns_per_second`)."""
        return self.slice_size / columns_per_second

    def to_dict(self) -> dict:
        """JSON-ready description, with the effect chain for the record."""
        return {"format_version": SPEC_FORMAT_VERSION, **asdict(self), "sox_effects": self.sox_effects()}

    @classmethod
    def from_dict(cls, record: dict) -> SpectrogramSpec:
        """The spec a recorded ``spectrogram`` block (``dataset.json``, ``model.json``) describes.

        Raises
        ------
        ParameterError
            A setting is missing or out of range, or the block was written by a newer format.
        """
        if not isinstance(record, dict):
            raise ParameterError(f"spectrogram settings must be a JSON object. Received: {record!r}")
        if record.get("format_version", SPEC_FORMAT_VERSION) != SPEC_FORMAT_VERSION:
            raise ParameterError(
                f"spectrogram format_version={record.get('format_version')!r} is not {SPEC_FORMAT_VERSION}; "
                "it was written by another version of genreslice"
            )
        missing = [field.name for field in fields(cls) if field.name not in record]
        if missing:
            raise ParameterError(f"spectrogram settings lack {', '.join(missing)}")
        values = {}
        for field in fields(cls):
            value, wanted = record[field.name], str if field.type == "str" else int
            if not isinstance(value, wanted) or isinstance(value, bool):
                raise ParameterError(f"spectrogram setting {field.name}={value!r} is not {wanted.__name__}")
            values[field.name] = value
        return cls(**values)


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
        return f"only the first {self.duration_s:g} s were analysed (SoX renders at most {SOX_MAX_COLUMNS} columns)"


def too_short_reason(duration_s: float, slice_seconds: float) -> str:
    """The recorded reason for a file with no whole slice."""
    return f"{duration_s:g} s of audio is shorter than one slice ({slice_seconds:.2f} s)"


def sox_command(path: str | os.PathLike, spec: SpectrogramSpec, *, sox_path: str = "sox") -> list[str]:
    """The argument list for one track.

    The path is made absolute so a name with a leading dash is never read as an option, and ``--no-glob``
    stops SoX from expanding ``[`` ``*`` ``?`` in real file names. ``-R`` seeds SoX's generators.
    """
    # -D: SoX would dither the samples on their way to the null output, after the spectrogram: pure cost.
    return [sox_path, "-R", "-D", "-V2", "--no-glob", os.path.abspath(os.fspath(path)), "-n", *spec.sox_effects()]


def measure_columns_per_second(spec: SpectrogramSpec, *, sox_path: str = "sox", timeout_s: float = 60.0) -> float:
    """The column rate SoX really renders for ``spec``.

    SoX advances a whole number of samples per column, so the rate is ``sample_rate / step`` for a step it
    chooses: at 22050 Hz and 50 pixels per second it renders 50.1136 columns per second, not 50. Durations
    and slice start times use this rate. SoX reports it (at verbosity 3) only when it differs from the request.
    """
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
        Audio file in any format SoX reads.
    spec : SpectrogramSpec
        Analysis settings.
    sox_path : str
        SoX executable.
    timeout_s : float
        Seconds before SoX is killed and the file is reported as failed.
    on_start : callable, optional
        Called with the SoX process once it runs, so a caller can kill it (a cancelled prediction); a killed
        SoX is reported as a failure like any other.

    Returns
    -------
    np.ndarray
        ``uint8`` array of shape ``(spec.slice_size + 1, n_columns)``: true gray levels, 0 = silence,
        row 0 = highest frequency (Nyquist), ``n_columns = floor(duration_s * spec.pixels_per_second)``.

    Raises
    ------
    SoxError
        SoX failed, timed out, or wrote something that is not the expected PNG; carries SoX's stderr.
    """
    command = sox_command(path, spec, sox_path=sox_path)
    finished = _run_sox(command, timeout_s=timeout_s, on_start=on_start)
    if finished.returncode != 0 and _ZERO_WIDTH in finished.stderr:
        # Less audio than one spectrogram column (a file of a few samples): libpng refuses an image of width 0
        # and SoX aborts. That is a file too short to slice, not a damaged one.
        return np.zeros((spec.slice_size + 1, 0), dtype=np.uint8)
    _check_sox_exit(finished)
    return _spectrogram_image(finished, spec)


def _run_sox(command: list[str], *, timeout_s: float,
             on_start: Callable[[subprocess.Popen], None] | None) -> subprocess.CompletedProcess:
    """Run SoX to its end: its PNG on stdout (bytes), its stderr decoded; killed after ``timeout_s``.

    Raises
    ------
    SoxError
        SoX could not be started, or timed out.
    """
    try:
        # Its own process group: SoX treats SIGINT/SIGTERM as a normal end and exits 0 with a truncated
        # spectrogram, so a Ctrl-C meant for the build must reach Python (which then kills SoX), not SoX. And it
        # dies with the process that started it, however that process ends (SIGKILL included).
        process = subprocess.Popen(dies_with_parent(command), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   process_group=0)
    except OSError as err:
        raise SoxError(f"SoX could not be started: {err}", command=command, transient=True) from err
    with process:
        try:
            if on_start is not None:
                on_start(process)
            stdout, stderr_bytes = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as err:
            process.kill()
            process.communicate()
            raise SoxError(f"SoX timed out after {timeout_s:g} s", command=command, transient=True) from err
        except BaseException:
            process.kill()
            raise
    stderr = stderr_bytes.decode("utf-8", errors="replace")
    return subprocess.CompletedProcess(command, process.returncode, stdout=stdout, stderr=stderr)


def _check_sox_exit(finished: subprocess.CompletedProcess) -> None:
    """Raise :class:`SoxError` for a SoX that was killed or failed; a signal from outside makes it transient."""
    if finished.returncode < 0:
        number = -finished.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        # Killed from outside (the OOM killer, a user, a stop): not the file's fault, unlike a crash (SIGSEGV,
        # SIGABRT...) on a malformed file, which would crash again.
        raise SoxError(f"SoX was killed by {name}: {summarize_sox_stderr(finished.stderr)}", command=finished.args,
                       stderr=finished.stderr, transient=number in _OUTSIDE_KILLS)
    if finished.returncode != 0:
        raise SoxError(f"SoX exited with status {finished.returncode}: {summarize_sox_stderr(finished.stderr)}",
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
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    fail_lines = [line for line in lines if " FAIL " in f" {line} "]
    text = "; ".join(line + _SOX_GAVE_NO_REASON if line.endswith(":") else line
                     for line in fail_lines or lines[-1:]) or "no message"
    return text if len(text) <= limit else text[: limit - 3] + "..."

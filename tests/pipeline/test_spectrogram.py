from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from genreslice.pipeline.errors import ParameterError, SoxError
from genreslice.pipeline.slicing import slice_spectrogram
from genreslice.pipeline.spectrogram import (
    SpectrogramSpec,
    decode_sox_png,
    render_slices,
    render_spectrogram,
    sox_command,
    too_short_reason,
)
from tests.helpers import silence, synth

SPEC = SpectrogramSpec()
BIN_HZ = SPEC.sample_rate / 2 / SPEC.slice_size  # 86.13 Hz per row


def expected_row(freq_hz: float) -> int:
    """Row of a sine in a slice. SoX's 129 rows are DFT bins 128 (Nyquist, top) down to 0 (DC, bottom); the
    Nyquist row is dropped, so slice row r holds bin 127 - r."""
    return SPEC.slice_size - 1 - round(freq_hz / BIN_HZ)


def row_profile(path) -> np.ndarray:
    gray = render_spectrogram(path, SPEC)
    return slice_spectrogram(gray, SPEC.slice_size).mean(axis=(0, 2))


def test_rows_columns_and_dtype(tmp_path, sox_info):
    gray = render_spectrogram(synth(tmp_path / "a.mp3", 10.0), SPEC)
    assert gray.dtype == np.uint8
    assert gray.shape[0] == 129
    # MP3 encoder padding adds a few milliseconds at most.
    assert 500 <= gray.shape[1] <= 503


@pytest.mark.parametrize("freq_hz", [1000.0, 4000.0, 9000.0])
def test_sine_lands_on_its_frequency_row_with_high_frequencies_at_top(tmp_path, sox_info, freq_hz):
    profile = row_profile(synth(tmp_path / "sine.wav", 6.0, "sine", f"{freq_hz}"))
    assert abs(int(profile.argmax()) - expected_row(freq_hz)) <= 1


def test_louder_sine_is_brighter_at_its_row(tmp_path, sox_info):
    row = expected_row(2000.0)
    quiet = row_profile(synth(tmp_path / "quiet.mp3", 6.0, "sine", "2000", volume=0.02))
    loud = row_profile(synth(tmp_path / "loud.mp3", 6.0, "sine", "2000", volume=0.9))
    assert loud[row] > quiet[row] + 20
    assert loud[row] > 200  # a full-scale sine is near white, not a palette index near 4 + gray


def test_silence_is_black(tmp_path, sox_info):
    gray = render_spectrogram(silence(tmp_path / "silence.wav", 5.0), SPEC)
    assert gray.max() == 0


def test_palette_is_applied_not_read_as_indices():
    # SoX's monochrome palette: indices 0-3 are reserved, index k >= 4 is gray k - 4.
    from PIL import Image
    import io

    indices = np.array([[4, 5, 100], [255, 4, 4]], dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    palette = [0, 0, 0, 255, 255, 255, 191, 191, 191, 127, 127, 127] + [v for k in range(252) for v in (k, k, k)]
    image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    assert decode_sox_png(buffer.getvalue()).tolist() == [[0, 1, 96], [251, 0, 0]]


def test_frequency_axis_is_fixed_whatever_the_file_rate(tmp_path, sox_info):
    low = row_profile(synth(tmp_path / "a.wav", 6.0, "sine", "3000", rate=16000, channels=1))
    high = row_profile(synth(tmp_path / "b.flac", 6.0, "sine", "3000", rate=48000, channels=2))
    assert int(low.argmax()) == int(high.argmax()) == pytest.approx(expected_row(3000.0), abs=1)


def test_stereo_is_mixed_to_mono(tmp_path, sox_info):
    # Left channel 1 kHz, right channel 5 kHz: both must appear in the one mono spectrogram.
    path = synth(tmp_path / "stereo.wav", 6.0, "sine", "1000", "sine", "5000")
    profile = row_profile(path)
    assert profile[expected_row(1000.0)] > 150 and profile[expected_row(5000.0)] > 150


def test_a_killed_mel_render_reports_the_kill_not_the_trim_warning(tmp_path, sox_info):
    """The mel chain's trim (the column cap) warns on every file; a SoX killed mid-file must say it was killed,
    not that warning (the last line of its stderr)."""
    import signal

    from genreslice.pipeline.spectrogram import summarize_sox_stderr

    stderr = "sox WARN trim: End position is after expected end of audio.\n"
    assert summarize_sox_stderr(stderr) == "no message"
    assert summarize_sox_stderr("sox WARN mp3: MAD lost sync\n" + stderr) == "sox WARN mp3: MAD lost sync"
    path = tmp_path / "long.wav"
    subprocess.run(["sox", "-n", "-r", "22050", str(path), "synth", "300", "sine", "440"], check=True)
    with pytest.raises(SoxError) as caught:
        render_spectrogram(path, SpectrogramSpec(features="mel"), on_start=lambda process: process.send_signal(
            signal.SIGKILL))
    assert "killed by SIGKILL" in str(caught.value) and "trim" not in str(caught.value), str(caught.value)


def test_failure_carries_sox_stderr_and_command(tmp_path, sox_info):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SoxError) as caught:
        render_spectrogram(bad, SPEC)
    assert "can't open input file" in str(caught.value)
    assert caught.value.command[0].endswith("sox") and str(bad) in caught.value.command
    assert "FAIL" in caught.value.stderr
    # SoX names the file and stops at a colon; the reason must not stop there too.
    assert caught.value.stderr.rstrip().endswith(":")
    assert str(caught.value).endswith("': no reason given (not audio SoX can decode, or a damaged file)")


def test_timeout_is_reported(tmp_path, sox_info):
    path = synth(tmp_path / "long.flac", 600.0, "sine", "440", channels=1, rate=8000)
    with pytest.raises(SoxError, match="timed out"):
        render_spectrogram(path, SPEC, timeout_s=0.01)


def test_command_is_an_argument_list_safe_for_odd_names():
    command = sox_command("-rf $(touch x) [a]*.mp3", SPEC, sox_path="sox")
    path_index = command.index("--no-glob") + 1
    assert command[path_index].startswith("/") and command[path_index].endswith("-rf $(touch x) [a]*.mp3")
    assert ["-Y", "200", "-X", "50", "-m", "-r"] == command[command.index("spectrogram") + 1:][:6]
    assert command[command.index("rate") + 2] == "22050"


@pytest.mark.parametrize("bad", [
    {"sample_rate": 100}, {"pixels_per_second": 0}, {"resample_quality": "best"}, {"slice_size": 100},
    {"height_target": 300},
])
def test_bad_spec_values_are_named(bad):
    with pytest.raises(ParameterError, match=next(iter(bad))):
        SpectrogramSpec(**bad)


def test_fast_png_path_matches_pillow_on_real_sox_output(tmp_path, sox_info):
    import subprocess
    from PIL import Image
    import io

    path = synth(tmp_path / "mix.mp3", 7.0, "sine", "800", "pinknoise")
    data = subprocess.run(sox_command(path, SPEC, sox_path=sox_info.path), capture_output=True, check=True).stdout
    with Image.open(io.BytesIO(data)) as image:
        expected = np.asarray(image.convert("L"))
    assert np.array_equal(decode_sox_png(data), expected)


def test_filtered_png_falls_back_to_pillow():
    from PIL import Image
    import io

    pixels = np.random.default_rng(3).integers(0, 256, size=(129, 300), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # grayscale, adaptively filtered
    assert np.array_equal(decode_sox_png(buffer.getvalue()), pixels)
    with pytest.raises(ValueError, match="cannot read as PNG"):
        decode_sox_png(b"\x89PNG\r\n\x1a\n garbage")


def test_measured_column_rate(sox_info):
    from genreslice.pipeline.spectrogram import measure_columns_per_second

    assert measure_columns_per_second(SPEC, sox_path=sox_info.path) == pytest.approx(22050 / 440)
    assert measure_columns_per_second(SpectrogramSpec(sample_rate=44100), sox_path=sox_info.path) == 50.0


def test_a_recorded_spec_reads_back():
    spec = SpectrogramSpec(sample_rate=16000, pixels_per_second=40, resample_quality="medium")
    recorded = {**spec.to_dict(), "sox_version": "14.4.2", "columns_per_second": 40.0, "slice_seconds": 3.2}
    assert SpectrogramSpec.from_dict(recorded) == spec
    with pytest.raises(ParameterError, match="lack height_target"):
        SpectrogramSpec.from_dict({key: value for key, value in recorded.items() if key != "height_target"})
    with pytest.raises(ParameterError, match="sample_rate='16000' is not int"):
        SpectrogramSpec.from_dict({**recorded, "sample_rate": "16000"})
    with pytest.raises(ParameterError, match="pixels_per_second=0 must be between"):
        SpectrogramSpec.from_dict({**recorded, "pixels_per_second": 0})
    with pytest.raises(ParameterError, match="format_version=2"):
        SpectrogramSpec.from_dict({**recorded, "format_version": 2})


def test_render_slices_cuts_whole_slices(tmp_path):
    audio = render_slices(synth(tmp_path / "seven seconds.mp3", 7.0), SPEC)
    assert audio.slices.shape == (2, 128, 128) and audio.slices.dtype == np.uint8
    assert audio.duration_s == pytest.approx(7.0, abs=0.05) and not audio.truncated and audio.truncation_note() == ""
    np.testing.assert_array_equal(audio.slices, slice_spectrogram(render_spectrogram(tmp_path / "seven seconds.mp3",
                                                                                     SPEC), 128))
    assert too_short_reason(1.5, 2.5542) == "1.5 s of audio is shorter than one slice (2.55 s)"


def test_the_sox_block_is_what_every_earlier_version_wrote():
    """Data sets and models made before the mel representation existed stay readable and compatible: a sox
    block has no new key, and a block without ``features`` is sox."""
    block = SPEC.to_dict()
    assert json.dumps(block) == (
        '{"format_version": 1, "sample_rate": 22050, "pixels_per_second": 50, "slice_size": 128, "height_target": '
        '200, "resample_quality": "high", "sox_effects": ["channels", "1", "rate", "-h", "22050", "spectrogram", '
        '"-Y", "200", "-X", "50", "-m", "-r", "-o", "-"]}')
    assert SpectrogramSpec.from_dict(block) == SPEC and SPEC.features == "sox"
    assert sox_command("a.mp3", SPEC)[5:7] == [os.path.abspath("a.mp3"), "-n"]

"""The ``mel`` representation: SoX's resampled samples through a pipe, librosa's mel filterbank and dB scale.

Synthetic signals (SoX ``synth``) in, gray levels out: a sine lands in its mel band and is brighter when louder,
silence is black, the pixels are librosa's mel spectrogram, and a mel build behaves as a sox build does (failures,
resume, a refused change of representation, a kill).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genreslice.pipeline import layout, spectrogram
from genreslice.pipeline.build import BuildConfig, build_dataset
from genreslice.pipeline.errors import ParameterError, SettingsMismatchError, SoxError
from genreslice.pipeline.mel import _BLOCK_FRAMES, MelSettings, MelStream, db_to_gray, full_scale_power, mel_gray
from genreslice.pipeline.spectrogram import (
    SpectrogramSpec,
    measure_columns_per_second,
    render_slices,
    render_spectrogram,
    sox_command,
    spectrogram_differences,
)
from tests.helpers import (
    LABELS,
    ends_within,
    genreslice,
    read_csv,
    silence,
    stalling_sox,
    synth,
    tag_id3,
    tagged_mp3,
    tree_digest,
    wait_for_pid,
)

MEL = SpectrogramSpec(features="mel")
ROOT = Path(__file__).parents[2]


def band_centres(spec: SpectrogramSpec = MEL) -> np.ndarray:
    """Centre frequency of each mel band, lowest first: the inner points of librosa's band edges."""
    import librosa

    return librosa.mel_frequencies(n_mels=spec.slice_size + 2, fmin=spec.mel.fmin, fmax=spec.mel.fmax)[1:-1]


def row_profile(path: Path, spec: SpectrogramSpec = MEL) -> np.ndarray:
    """Mean gray of each slice row over the whole file (row 0 = top = highest band)."""
    return render_slices(path, spec).slices.mean(axis=(0, 2))


def test_a_sine_lands_in_its_mel_band_and_is_brighter_when_louder(tmp_path, sox_info):
    centres = band_centres()
    for band in (12, 70, 115):  # about 270 Hz, 2.4 kHz and 8.5 kHz
        profile = row_profile(synth(tmp_path / f"{band}.wav", 3.0, "sine", f"{centres[band]:.2f}", volume=0.5))
        assert int(profile.argmax()) == MEL.slice_size - 1 - band, band
    row = MEL.slice_size - 1 - 40
    loud = row_profile(synth(tmp_path / "loud.wav", 3.0, "sine", f"{centres[40]:.2f}", volume=10 ** (-6 / 20)))
    quiet = row_profile(synth(tmp_path / "quiet.wav", 3.0, "sine", f"{centres[40]:.2f}", volume=10 ** (-26 / 20)))
    # Gray is linear in dB against a fixed reference: 20 dB quieter is 20 * 255 / top_db levels darker,
    # whatever the file's own loudest value.
    assert loud[row] - quiet[row] == pytest.approx(20 * 255 / MEL.mel.top_db, abs=2)
    assert 100 < quiet[row] < loud[row] < 255


def test_silence_is_black_and_the_spare_top_row_too(tmp_path, sox_info):
    gray = render_spectrogram(silence(tmp_path / "silence.wav", 5.0), MEL)
    assert gray.shape == (MEL.slice_size + 1, 250) and gray.dtype == np.uint8
    assert gray.max() == 0
    noise = render_spectrogram(synth(tmp_path / "noise.wav", 3.0, "whitenoise"), MEL)
    assert noise[0].max() == 0 and noise[1:].min() > 50  # row 0 stands where SoX's Nyquist row is


def librosa_mel_power(samples: np.ndarray, spec: SpectrogramSpec) -> np.ndarray:
    """``librosa.feature.melspectrogram(y=samples, sr, n_fft, hop_length, n_mels, fmin, fmax)`` as librosa defines
    it, written out in float64: frames centred on their time with ``n_fft / 2`` zeros on each side
    (``center=True, pad_mode="constant"``), a periodic Hann window, ``|rfft|**2``, librosa's filterbank. Calling
    librosa's own function would cost about 24 s of numba compiling in a new environment (``librosa.util.utils``
    compiles its ufuncs when imported); genreslice imports only ``librosa.filters``, which does not."""
    import librosa
    import scipy.signal

    n_fft, hop = spec.mel.n_fft, spec.hop_length
    padded = np.pad(samples.astype(np.float64), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True)
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    bank = librosa.filters.mel(sr=spec.sample_rate, n_fft=n_fft, n_mels=spec.slice_size, fmin=spec.mel.fmin,
                               fmax=spec.mel.fmax, dtype=np.float64)
    return bank @ power.T


def test_pixels_are_librosas_mel_spectrogram_in_db(tmp_path, sox_info):
    spec = SpectrogramSpec(features="mel", mel=MelSettings(fmin=30.0, fmax=8000.0))
    path = synth(tmp_path / "chord.mp3", 4.0, "sawtooth", "220", "sine", "1500", "pinknoise", volume=0.3)
    samples = np.frombuffer(subprocess.run(sox_command(path, spec), capture_output=True, check=True).stdout, "<f4")
    n_columns = len(samples) // spec.hop_length
    power = librosa_mel_power(samples, spec)
    assert power.shape == (spec.slice_size, 1 + n_columns)  # librosa's frame count: 1 + len // hop
    # librosa.power_to_db(power, ref=full_scale_power(n_fft), amin=1e-10, top_db=None), its formula
    db = 10 * np.log10(np.maximum(1e-10, power[:, :n_columns])) - 10 * np.log10(full_scale_power(spec.mel.n_fft))
    expected = db_to_gray(db, spec.mel)[::-1]
    gray = render_spectrogram(path, spec)
    assert gray.shape == (129, n_columns) and 200 <= n_columns <= 202  # MP3 padding adds a few ms
    difference = np.abs(gray[1:].astype(int) - expected)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def samples_of(path: Path, spec: SpectrogramSpec = MEL) -> np.ndarray:
    """SoX's samples for ``spec``, as a mel render reads them."""
    return np.frombuffer(subprocess.run(sox_command(path, spec), capture_output=True, check=True).stdout, "<f4")


@pytest.mark.parametrize("n_fft, rate, pixels", [(2048, 22050, 50), (512, 22050, 50), (256, 8000, 250)])
def test_a_stream_read_in_any_pieces_gives_the_pixels_of_all_the_samples_at_once(tmp_path, sox_info, n_fft, rate,
                                                                                  pixels):
    # n_fft 512 at a hop of 441 samples: frames barely overlap, the case where a column needs samples past the next
    spec = SpectrogramSpec(features="mel", mel=MelSettings(n_fft=n_fft), sample_rate=rate, pixels_per_second=pixels)
    samples = samples_of(synth(tmp_path / "chord.wav", 9.3, "sawtooth", "220", "sine", "1500", "pinknoise",
                               volume=0.3), spec)
    settings = dict(sample_rate=spec.sample_rate, hop_length=spec.hop_length, n_mels=spec.slice_size,
                    settings=spec.mel)
    raw, rng = samples.tobytes(), np.random.default_rng(n_fft)
    whole_columns = len(samples) // spec.hop_length
    for max_columns in (1, 127, 128, 300, whole_columns - 1, whole_columns, 10 * whole_columns):
        stream, offset = MelStream(**settings, max_columns=max_columns), 0
        while offset < len(raw):  # pieces of 1 byte to 70 kB: samples split across reads, reads across blocks
            space = stream.space()
            n_bytes = min(len(space), len(raw) - offset, int(rng.choice([1, 3, 4, 4097, 70_000])))
            space[:n_bytes] = raw[offset : offset + n_bytes]
            stream.advance(n_bytes)
            offset += n_bytes
        expected = mel_gray(samples, **settings, max_columns=max_columns)
        assert expected.shape == (spec.slice_size + 1, min(max_columns, whole_columns))
        np.testing.assert_array_equal(stream.finish(), expected, err_msg=f"max_columns={max_columns}")
    for length in (0, 1, spec.hop_length - 1, spec.hop_length, 3 * spec.hop_length + 7):  # shorter than a block
        stream = MelStream(**settings, max_columns=10**6)
        stream.feed(samples[:length])
        np.testing.assert_array_equal(stream.finish(), mel_gray(samples[:length], **settings, max_columns=10**6))
    # Each column is its own: the columns of the first 5 s (but those whose frame reaches past 5 s) are the whole
    # file's.
    alone = 5 * pixels - -(-n_fft // 2 // spec.hop_length)
    np.testing.assert_array_equal(mel_gray(samples[: 5 * rate], **settings, max_columns=10**6)[:, :alone],
                                  expected[:, :alone])


@pytest.mark.parametrize("n_fft, pixels", [(2048, 50), (512, 50)])  # hop 441: under n_fft / 2, then over it
def test_a_block_is_computed_as_soon_as_its_last_sample_arrives_and_not_before(n_fft, pixels):
    spec = SpectrogramSpec(features="mel", mel=MelSettings(n_fft=n_fft), pixels_per_second=pixels)
    hop, half, block = spec.hop_length, n_fft // 2, _BLOCK_FRAMES
    settings = dict(sample_rate=spec.sample_rate, hop_length=hop, n_mels=spec.slice_size, settings=spec.mel)
    samples = np.random.default_rng(0).standard_normal(3 * block * hop + n_fft).astype(np.float32) * 0.1
    stream, fed = MelStream(**settings, max_columns=10**6), 0
    for done in (1, 2):
        # The last column of the block is centred on sample (stop - 1) * hop and reaches to (stop - 1) * hop + half;
        # and the file must be long enough to have a column at stop - 1 (stop * hop samples).
        needed = max((done * block - 1) * hop + half, done * block * hop)
        stream.feed(samples[fed : needed - 1])
        assert stream.computed_columns == (done - 1) * block
        stream.feed(samples[needed - 1 : needed])
        assert stream.computed_columns == done * block
        fed = needed
    stream.feed(samples[fed:])
    np.testing.assert_array_equal(stream.finish(), mel_gray(samples, **settings, max_columns=10**6))


def test_a_long_file_is_analysed_without_holding_its_samples(tmp_path, sox_info):
    path = synth(tmp_path / "ten minutes.wav", 600.0, "sine", "440", "pinknoise", channels=1, rate=8000,
                 volume=0.3)
    spectrogram.prepare_rendering(MEL)  # librosa's import is not what is measured
    tracemalloc.start()
    try:
        audio = render_slices(path, MEL)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    samples_bytes = 600 * MEL.sample_rate * 4  # 52.9 MB of float32 samples went through the pipe
    image_bytes = 600 * 50 * (MEL.slice_size + 1)  # 3.9 MB of gray image, the slices as much again
    assert audio.slices.shape == (234, 128, 128) and audio.slices.std() > 1
    assert peak < 4 * image_bytes + 8 * 2**20 < samples_bytes / 2, peak


def test_columns_durations_and_the_cap_on_long_files(tmp_path, sox_info, monkeypatch):
    assert measure_columns_per_second(MEL) == 50.0  # exactly sample_rate / hop, no SoX needed
    path = synth(tmp_path / "seven.mp3", 7.0, "sine", "440")
    audio = render_slices(path, MEL)
    assert audio.slices.shape == (2, 128, 128) and audio.duration_s == pytest.approx(7.0, abs=0.06)
    assert not audio.truncated and audio.truncation_note() == ""
    monkeypatch.setattr(spectrogram, "SOX_MAX_COLUMNS", 300)
    assert sox_command(path, MEL)[-3:] == ["trim", "0", f"{300 * 441 + 1024}s"]  # SoX stops decoding there
    capped = render_slices(path, MEL)
    assert capped.truncated and capped.duration_s == 6.0 and len(capped.slices) == 2
    assert "only the first 6 s were analysed" in capped.truncation_note()


def test_files_sox_cannot_read_fail_with_its_message(tmp_path, sox_info):
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(SoxError, match="can't open input file") as caught:
        render_spectrogram(bad, MEL)
    assert "FAIL" in caught.value.stderr and str(bad) in caught.value.command
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(SoxError, match="SoX exited with status"):
        render_spectrogram(tmp_path / "empty.wav", MEL)
    tiny = synth(tmp_path / "tiny.wav", 0.005, "sine", "440")  # less than one column
    assert render_spectrogram(tiny, MEL).shape == (129, 0)
    with pytest.raises(SoxError, match="timed out"):
        render_spectrogram(synth(tmp_path / "long.flac", 300.0, channels=1, rate=8000), MEL, timeout_s=0.01)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="FFmpeg is not installed (`make test` installs it)")
def test_a_lossless_m4a_gives_the_pixels_of_its_wav(tmp_path, sox_info):
    wav = synth(tmp_path / "source.wav", 4.0, "sine", "300-4000", "sine", "700", extra=("gain", "-1"))
    m4a = tmp_path / "source.m4a"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", os.fspath(wav), "-c:a", "alac",
                    os.fspath(m4a)], check=True, capture_output=True, timeout=120)
    assert np.array_equal(render_spectrogram(m4a, MEL), render_spectrogram(wav, MEL))


def test_spec_settings_are_checked_and_named():
    with pytest.raises(ParameterError, match="pixels_per_second=43 must divide sample_rate=22050"):
        SpectrogramSpec(features="mel", pixels_per_second=43)
    for bad, name in [({"fmax": 20000.0}, "fmax=20000.0"), ({"fmin": 11025.0}, "fmin=11025.0"),
                      ({"n_fft": 1000}, "n_fft=1000"), ({"top_db": 0.0}, "top_db=0.0"),
                      ({"n_fft": 256}, "n_fft=256 must be at least the hop of 441"),
                      ({"max_db": float("nan")}, "max_db=nan")]:
        with pytest.raises(ParameterError, match=name):
            SpectrogramSpec(features="mel", mel=MelSettings(**bad))
    with pytest.raises(ParameterError, match="features='mfcc' must be one of sox, mel"):
        SpectrogramSpec(features="mfcc")
    with pytest.raises(ParameterError, match="mel settings apply to features='mel' only"):
        SpectrogramSpec(mel=MelSettings(fmin=30.0))


def test_the_mel_block_round_trips_and_an_older_reader_refuses_it():
    spec = SpectrogramSpec(features="mel", pixels_per_second=25, mel=MelSettings(fmin=20.0, n_fft=4096))
    block = json.loads(json.dumps(spec.to_dict()))
    assert block["format_version"] == 2 and block["features"] == "mel"
    assert block["mel"]["fmax"] == 11025.0 and block["mel"]["hop_length"] == 882 and block["mel"]["n_mels"] == 128
    assert block["mel"]["ref_power"] == (4096 / 4) ** 2
    assert SpectrogramSpec.from_dict(block) == spec
    with pytest.raises(ParameterError, match="format_version=1 is not 2"):
        SpectrogramSpec.from_dict({**block, "format_version": 1})
    with pytest.raises(ParameterError, match="lack mel"):
        SpectrogramSpec.from_dict({key: value for key, value in block.items() if key != "mel"})
    with pytest.raises(ParameterError, match="mel.n_fft='4096' is not a number"):
        SpectrogramSpec.from_dict({**block, "mel": {**block["mel"], "n_fft": "4096"}})
    with pytest.raises(ParameterError, match="features='cqt'"):
        SpectrogramSpec.from_dict({**block, "features": "cqt"})
    sox = SpectrogramSpec().to_dict()
    assert spectrogram_differences(sox, block) == [("features", "sox", "mel"), ("pixels_per_second", 50, 25)]
    assert spectrogram_differences(block, sox) == [("features", "mel", "sox"), ("pixels_per_second", 25, 50)]
    assert spectrogram_differences(block, SpectrogramSpec(features="mel", pixels_per_second=25,
                                                          mel=MelSettings(n_fft=4096)).to_dict()) == [
        ("mel.fmin", 20.0, 0.0)]


def test_importing_the_pipeline_loads_neither_librosa_nor_tensorflow():
    code = ("import sys, genreslice.pipeline.build, genreslice.pipeline.spectrogram, genreslice.pipeline.mel\n"
            "print(sorted(name for name in ('librosa', 'scipy', 'tensorflow') if name in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def mel_library(tmp_path_factory, sox_info):
    """Six tagged songs of three genres, a damaged copy of one, random bytes, an empty file and a clip too short
    for a slice; and their mel build."""
    root = tmp_path_factory.mktemp("mel")
    music = root / "music"
    for index, (genre, sound) in enumerate([("Rock", ("pinknoise",)), ("Jazz", ("sine", "330")),
                                            ("Pop", ("square", "220")), ("Rock", ("brownnoise",)),
                                            ("Jazz", ("sine", "550")), ("Pop", ("sawtooth", "440"))]):
        tagged_mp3(music / genre / f"song {index}.mp3", 6.0, genre, f"Artist {index}", *sound)
    whole = (music / "Jazz" / "song 1.mp3").read_bytes()
    (music / "Jazz" / "truncated.mp3").write_bytes(whole[: len(whole) // 2])
    (music / "Rock" / "random.mp3").write_bytes(np.random.default_rng(3).integers(0, 256, 40_000, np.uint8).tobytes())
    tag_id3(music / "Rock" / "random.mp3", genre="Rock", artist="Noise")  # labelled; the audio is garbage
    (music / "Rock" / "empty.mp3").write_bytes(b"")
    tagged_mp3(music / "Pop" / "short.mp3", 1.5, "Pop", "Artist 9", "sine", "880")
    out = root / "built"
    summary = build_dataset(music, out, LABELS, BuildConfig(spec=MEL, workers=2), sox=sox_info)
    return music, out, summary


def test_a_mel_build_records_its_settings_and_failures(mel_library, sox_info):
    music, out, summary = mel_library
    dataset = json.loads((out / layout.DATASET_JSON).read_text())
    block = dataset["spectrogram"]
    assert {key: block[key] for key in ("format_version", "features", "columns_per_second", "slice_seconds")} == {
        "format_version": 2, "features": "mel", "columns_per_second": 50.0, "slice_seconds": 2.56}
    assert SpectrogramSpec.from_dict(block) == MEL and block["sox_version"] == sox_info.version
    rows = {row["path"]: row for row in read_csv(out / layout.TRACKS_CSV)}
    assert [rows[f"{genre}/song {index}.mp3"]["n_slices"] for index, genre in
            enumerate(["Rock", "Jazz", "Pop", "Rock", "Jazz", "Pop"])] == ["2"] * 6
    assert rows["Rock/random.mp3"]["status"] == "failed" and "SoX" in rows["Rock/random.mp3"]["reason"]
    assert rows["Rock/empty.mp3"]["status"] == "failed" and "empty file" in rows["Rock/empty.mp3"]["reason"]
    assert rows["Jazz/truncated.mp3"]["status"] == "ok"
    assert rows["Pop/short.mp3"]["status"] == "too_short" and "(2.56 s)" in rows["Pop/short.mp3"]["reason"]
    assert float(rows["Pop/short.mp3"]["duration_s"]) == pytest.approx(1.5, abs=0.06)
    starts = [row["start_s"] for row in read_csv(out / layout.SLICES_CSV) if row["track_id"] == rows[
        "Rock/song 0.mp3"]["track_id"]]
    assert starts == ["0.00", "2.56"]
    assert summary.status_counts == {"ok": 7, "failed": 2, "skipped": 0, "too_short": 1}


def test_the_pngs_are_the_in_memory_slices(mel_library):
    music, out, _ = mel_library
    for row in read_csv(out / layout.TRACKS_CSV):
        if row["status"] != "ok":
            continue
        expected = render_slices(music / row["path"], SpectrogramSpec.from_dict(
            json.loads((out / layout.DATASET_JSON).read_text())["spectrogram"])).slices
        pngs = []
        for index in range(int(row["n_slices"])):
            with Image.open(out / layout.slice_path(row["track_id"], index)) as image:
                assert image.mode == "L"
                pngs.append(np.asarray(image))
        assert np.array_equal(np.stack(pngs), expected), row["path"]


def test_a_mel_build_resumes_and_refuses_another_representation(mel_library, tmp_path, sox_info):
    music, out, _ = mel_library
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / layout.track_slice_dir(read_csv(out / layout.TRACKS_CSV)[0]["track_id"]))
    before = tree_digest(out)
    summary = build_dataset(music, copy, LABELS, BuildConfig(spec=MEL, workers=1), sox=sox_info)
    assert summary.processed == 1 and summary.repaired == 1
    assert tree_digest(copy) == before
    with pytest.raises(SettingsMismatchError, match=r"\(spectrogram.features: built with 'mel', now 'sox'\)"):
        build_dataset(music, copy, LABELS, BuildConfig(workers=1), sox=sox_info)
    other = SpectrogramSpec(features="mel", mel=MelSettings(fmax=8000.0))
    with pytest.raises(SettingsMismatchError, match="spectrogram.mel.fmax: built with 11025.0, now 8000.0"):
        build_dataset(music, copy, LABELS, BuildConfig(spec=other, workers=1), sox=sox_info)
    assert tree_digest(copy) == before


def test_settings_that_leave_a_band_empty_are_refused_before_any_work(mel_library, tmp_path, sox_info):
    music, _, _ = mel_library
    narrow = SpectrogramSpec(features="mel", mel=MelSettings(fmax=500.0))  # 128 bands 3.9 Hz apart, bins 10.8
    with pytest.raises(ParameterError, match="would have no frequency bin .*fmax=500 Hz, n_fft=2048"):
        build_dataset(music, tmp_path / "out", LABELS, BuildConfig(spec=narrow, workers=2), sox=sox_info)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_mel_build_killed_with_sigkill_resumes_to_the_same_data_set(mel_library, tmp_path):
    """The command line: --features mel, a build killed while SoX streams samples, a re-run that completes it."""
    music, out, _ = mel_library
    stalled = tmp_path / "music"
    shutil.copytree(music, stalled)
    shutil.copy(music / "Rock" / "song 0.mp3", stalled / "Rock" / "ZZSTALLZZ song.mp3")
    env, pid_file = stalling_sox(tmp_path / "bin")
    command = ["build", str(stalled), str(tmp_path / "out"), "--features", "mel", "--workers", "1", "--no-progress"]
    process = subprocess.Popen([sys.executable, "-m", "genreslice", *command], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    sox = wait_for_pid(pid_file)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert ends_within(sox, 5), "SoX outlived the build killed with SIGKILL"
    (stalled / "Rock" / "ZZSTALLZZ song.mp3").unlink()
    resumed = genreslice(*command)
    assert resumed.returncode == 0, resumed.stderr
    digest, reference = tree_digest(tmp_path / "out"), tree_digest(out)
    assert digest.pop(layout.TRACKS_CSV) != reference.pop(layout.TRACKS_CSV) and digest == reference
    # tracks.csv differs only where SoX's messages name the audio folder.
    assert (tmp_path / "out" / layout.TRACKS_CSV).read_text().replace(str(stalled), str(music)) == (
        out / layout.TRACKS_CSV).read_text()
    refused = genreslice("build", str(stalled), str(tmp_path / "out"), "--no-progress")
    assert refused.returncode != 0 and "spectrogram.features: built with 'mel', now 'sox'" in refused.stderr
    misplaced = genreslice("build", str(stalled), str(tmp_path / "other"), "--mel-fmin", "30", "--no-progress")
    assert misplaced.returncode != 0 and "--mel-fmin applies to --features mel only" in misplaced.stderr

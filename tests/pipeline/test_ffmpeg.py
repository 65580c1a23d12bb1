"""Formats SoX cannot read (.m4a, .aac, .opus, .wma): decoded by FFmpeg, then the same SoX chain; tags read.

The audio is made here with FFmpeg from SoX ``synth`` WAVs; without FFmpeg these tests are skipped (CI has it).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from genreslice.genre_getters import make_label_source
from genreslice.genre_getters.id3 import read_tag_values
from genreslice.pipeline import spectrogram
from genreslice.pipeline.build import BuildConfig, build_dataset
from genreslice.pipeline.discovery import AUDIO_EXTENSIONS, scan_audio
from genreslice.pipeline.errors import SoxError
from genreslice.pipeline.spectrogram import SpectrogramSpec, ffmpeg_command, render_slices
from genreslice.pipeline.sox import find_ffmpeg
from tests.helpers import read_csv, synth

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="FFmpeg is not installed (`make test` installs it)")
SPEC = SpectrogramSpec()
INSTALL_HINT = ("cannot decode .m4a files without FFmpeg: install it (Debian/Ubuntu: sudo apt-get install ffmpeg; "
                "macOS: brew install ffmpeg) and run the same command again")


def encode(source: Path, target: Path, *codec: str) -> Path:
    """``source`` re-encoded by FFmpeg into ``target`` with the ``-c:a`` arguments ``codec``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([FFMPEG, "-nostdin", "-loglevel", "error", "-y", "-i", os.fspath(source), *codec,
                    os.fspath(target)], check=True, capture_output=True, timeout=120)
    return target


def has_encoder(name: str) -> bool:
    listing = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=60)
    return any(line.split()[1:2] == [name] for line in listing.stdout.splitlines() if line.startswith(" "))


@pytest.fixture(scope="module")
def wav(tmp_path_factory, sox_info):
    """Six seconds of a sweep over a tone, 16-bit stereo at 44.1 kHz."""
    folder = tmp_path_factory.mktemp("ffmpeg")
    synthesized = synth(folder / "synth.wav", 6.0, "sine", "300-4000", "sine", "700", extra=("gain", "-1"))
    return encode(synthesized, folder / "source.wav", "-c:a", "pcm_s16le")


def tag_mp4(path: Path, **tags: str) -> Path:
    from mutagen.mp4 import MP4

    audio = MP4(path)
    for key, value in tags.items():
        audio[key] = [value]
    audio.save()
    return path


def test_new_extensions_are_discovered(tmp_path):
    for name in ("a.m4a", "b.AAC", "c.opus", "d.Wma", "e.mp3"):
        (tmp_path / name).write_bytes(b"x")
    assert {".m4a", ".aac", ".opus", ".wma"} <= AUDIO_EXTENSIONS
    assert [audio.rel_path for audio in scan_audio(tmp_path).files] == ["a.m4a", "b.AAC", "c.opus", "d.Wma", "e.mp3"]


@pytest.mark.parametrize("bits", [16, 24])
def test_lossless_m4a_gives_the_slices_of_its_wav(tmp_path, wav, bits, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(scratch))
    if bits == 24:
        wav = encode(wav, tmp_path / "source24.wav", "-c:a", "pcm_s24le", "-af", "volume=0.7")
    alac = encode(wav, tmp_path / "lossless.m4a", "-c:a", "alac", *(["-sample_fmt", "s32p"] if bits == 24 else []))
    from_wav, from_m4a = render_slices(wav, SPEC), render_slices(alac, SPEC)
    assert from_wav.slices.shape == from_m4a.slices.shape == (2, 128, 128)
    assert from_m4a.slices.tobytes() == from_wav.slices.tobytes()
    assert from_m4a.duration_s == from_wav.duration_s == 6.0
    assert [path.name for path in scratch.iterdir()] == [spectrogram.DECODE_FOLDER]
    assert not list((scratch / spectrogram.DECODE_FOLDER).iterdir())  # the decoded WAV is gone


def test_decoded_files_of_killed_processes_are_swept(tmp_path, wav, monkeypatch):
    """A worker killed while FFmpeg decodes (Ctrl-C kills a build's workers) leaves its WAV; the next decode
    removes the files of processes that are gone and leaves those of running ones."""
    monkeypatch.setattr(tempfile, "tempdir", os.fspath(tmp_path))
    folder = tmp_path / spectrogram.DECODE_FOLDER
    folder.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (folder / f"{gone.pid}-left.wav").write_bytes(b"RIFF" + bytes(1000))
    (folder / f"{os.getpid()}-mine.wav").write_bytes(b"RIFF")
    render_slices(encode(wav, tmp_path / "x.m4a", "-c:a", "alac"), SPEC)
    assert sorted(path.name for path in folder.iterdir()) == [f"{os.getpid()}-mine.wav"]


def test_command_is_an_argument_list_with_absolute_file_paths(tmp_path):
    command = ffmpeg_command("-x [1].m4a", tmp_path / "out.wav", SPEC, ffmpeg_path="/usr/bin/ffmpeg")
    assert command[0] == "/usr/bin/ffmpeg" and "-nostdin" in command
    assert command[command.index("-i") + 1] == "file:" + os.path.abspath("-x [1].m4a")
    assert command[-1] == "file:" + os.fspath(tmp_path / "out.wav")
    assert command[command.index("-c:a") + 1] == "pcm_f32le" and command[command.index("-map") + 1] == "0:a:0"


@pytest.mark.parametrize("name, codec", [("x.opus", "libopus"), ("x.wma", "wmav2"), ("x.aac", "aac"),
                                         ("x.m4a", "aac")])
def test_lossy_formats_decode_close_to_the_source(tmp_path, wav, name, codec):
    if not has_encoder(codec):
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    reference = render_slices(wav, SPEC).slices.astype(float)
    audio = render_slices(encode(wav, tmp_path / name, "-c:a", codec, "-b:a", "128k"), SPEC)
    assert audio.slices.shape == reference.shape
    assert abs(audio.duration_s - 6.0) < 0.1
    assert np.abs(audio.slices - reference).mean() < 6  # same picture, codec noise aside


def test_tags_of_opus_wma_and_m4a_are_read(tmp_path, wav):
    from mutagen.asf import ASF
    from mutagen.oggopus import OggOpus

    found = {}
    if has_encoder("libopus"):
        opus = OggOpus(encode(wav, tmp_path / "a.opus", "-c:a", "libopus"))
        opus["GENRE"], opus["ARTIST"] = ["Punk"], ["The Opus"]
        opus.save()
        found["opus"] = read_tag_values(tmp_path / "a.opus")
    if has_encoder("wmav2"):
        wma = ASF(encode(wav, tmp_path / "a.wma", "-c:a", "wmav2"))
        wma["WM/Genre"], wma["Author"] = ["Jazz"], ["Windows Quartet"]
        wma.save()
        found["wma"] = read_tag_values(tmp_path / "a.wma")
        album_only = ASF(encode(wav, tmp_path / "b.wma", "-c:a", "wmav2"))
        album_only["WM/AlbumArtist"] = ["Album Band"]
        album_only.save()
        found["wma album artist"] = read_tag_values(tmp_path / "b.wma")
    tag_mp4(encode(wav, tmp_path / "a.m4a", "-c:a", "aac"), **{"\xa9gen": "Hip-Hop", "aART": "Album Crew"})
    found["m4a album artist"] = read_tag_values(tmp_path / "a.m4a")
    assert found == {key: value for key, value in {
        "opus": (["Punk"], ["The Opus"]), "wma": (["Jazz"], ["Windows Quartet"]),
        "wma album artist": ([], ["Album Band"]), "m4a album artist": (["Hip-Hop"], ["Album Crew"])}.items()
        if key in found}
    assert "wma" in found or not has_encoder("wmav2")


def test_tagged_m4a_builds_end_to_end(tmp_path, wav, sox_info):
    music = tmp_path / "music"
    tag_mp4(encode(wav, music / "song.m4a", "-c:a", "aac", "-b:a", "128k"),
            **{"\xa9gen": "Hip-Hop", "\xa9ART": "MC Test"})
    encode(wav, music / "lossless.m4a", "-c:a", "alac")  # no tags: skipped, not failed
    build_dataset(music, tmp_path / "out", make_label_source("id3"), BuildConfig(workers=1), sox=sox_info)
    rows = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    song = rows["song.m4a"]
    assert (song["status"], song["genre"], song["artist"], song["n_slices"]) == ("ok", "Hip-Hop", "MC Test", "2")
    assert abs(float(song["duration_s"]) - 6.0) < 0.1
    assert (rows["lossless.m4a"]["status"], rows["lossless.m4a"]["reason"]) == ("skipped", "no genre tag")


def test_too_short_m4a_is_too_short_as_its_wav(tmp_path, sox_info):
    short_wav = synth(tmp_path / "short.wav", 1.0)
    short = encode(short_wav, tmp_path / "short.m4a", "-c:a", "alac")
    assert render_slices(short, SPEC).duration_s == render_slices(short_wav, SPEC).duration_s == 1.0
    assert len(render_slices(short, SPEC).slices) == 0


def test_without_ffmpeg_the_track_fails_with_the_install_hint(tmp_path, wav, sox_info, monkeypatch):
    music = tmp_path / "music"
    tag_mp4(encode(wav, music / "song.m4a", "-c:a", "aac"), **{"\xa9gen": "Rock", "\xa9ART": "X"})
    monkeypatch.setattr(spectrogram, "find_ffmpeg", lambda: None)
    with pytest.raises(SoxError) as caught:
        render_slices(music / "song.m4a", SPEC)
    assert str(caught.value) == INSTALL_HINT and caught.value.transient
    build_dataset(music, tmp_path / "out", make_label_source("id3"), BuildConfig(workers=1), sox=sox_info)
    [row] = read_csv(tmp_path / "out" / "tracks.csv")
    assert (row["status"], row["reason"], row["genre"]) == ("failed", INSTALL_HINT, "Rock")


def test_ffmpeg_is_looked_up_on_path(tmp_path, wav):
    """A process whose PATH has SoX but no FFmpeg reports the install hint (the finder is not patched)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sox", "setpriv"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    song = encode(wav, tmp_path / "song.m4a", "-c:a", "aac")
    code = ("import sys\nfrom genreslice.pipeline.spectrogram import SpectrogramSpec, render_slices\n"
            "from genreslice.pipeline.errors import SoxError\n"
            "try:\n    render_slices(sys.argv[1], SpectrogramSpec())\n"
            "except SoxError as err:\n    print(err, err.transient)\n")
    result = subprocess.run([sys.executable, "-c", code, os.fspath(song)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PATH": os.fspath(bin_dir)},
                            cwd=Path(__file__).parents[2])
    assert result.stdout.strip() == f"{INSTALL_HINT} True", result.stderr
    assert find_ffmpeg() is not None  # this process still finds it


def test_damaged_m4a_fails_with_ffmpegs_message(tmp_path, sox_info):
    music = tmp_path / "music"
    music.mkdir()
    (music / "broken.m4a").write_bytes(np.random.default_rng(7).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(SoxError) as caught:
        render_slices(music / "broken.m4a", SPEC)
    assert str(caught.value).startswith("FFmpeg exited with status ")
    assert "Invalid data found when processing input" in str(caught.value) and not caught.value.transient
    assert " @ 0x" not in str(caught.value) and "file:" not in str(caught.value)
    build_dataset(music, tmp_path / "out", make_label_source("id3"), BuildConfig(workers=1), sox=sox_info)
    [row] = read_csv(tmp_path / "out" / "tracks.csv")
    assert row["status"] == "failed"


@pytest.mark.slow
def test_predict_classifies_an_m4a_as_its_wav(tmp_path, toy_model):
    """Prediction renders through the same path: a lossless .m4a gets the votes of the WAV it was made from."""
    from genreslice.training.predict import Classifier
    from tests.helpers import TOY_GENRES, toy_song

    genre = sorted(TOY_GENRES)[0]
    source = encode(toy_song(tmp_path / "song.mp3", genre, 345.0, seconds=12.0), tmp_path / "song.wav",
                    "-c:a", "pcm_s16le")
    lossless = encode(source, tmp_path / "song.m4a", "-c:a", "alac")
    from_wav, from_m4a = Classifier(toy_model / "model").classify([source, lossless])
    assert from_m4a.status == "ok" and from_m4a.n_slices == from_wav.n_slices > 0
    assert (from_m4a.genre, from_m4a.votes, from_m4a.duration_s) == (from_wav.genre, from_wav.votes,
                                                                     from_wav.duration_s)
    assert from_m4a.mean_probability == from_wav.mean_probability

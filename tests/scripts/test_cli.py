"""The ``genreslice`` command as a user runs it: a real subprocess, real files."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from genreslice.pipeline import layout
from genreslice.pipeline.build import plural
from tests.helpers import genreslice, help_of, read_csv, tagged_mp3, tree_digest, wait_for_journal


def test_help_explains_every_option():
    text = help_of("build", 17)
    for option in ["--metadata", "--subset", "--genre-map", "--genres", "--exclude-genres", "--max-tracks-per-genre",
                   "--dry-run"]:
        assert option in text


def test_build_prints_progress_and_summary(library, tmp_path):
    result = genreslice("build", str(library), str(tmp_path / "out"), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "tracks: 100%" in result.stderr and "ok=12" in result.stderr
    assert "12 tracks ok, 0 failed, 0 skipped, 0 too short; 48 slices, 3 genres" in result.stdout
    assert "audio hours per wall hour" in result.stdout
    again = genreslice("build", str(library), str(tmp_path / "out"), "--no-progress")
    assert again.returncode == 0 and "No audio work was needed" in again.stdout and again.stderr == ""


@pytest.mark.slow
def test_kill_9_mid_build_then_resume_gives_identical_outputs(library, reference, tmp_path):
    out = tmp_path / "out"
    journal = out / layout.STATE_DIR / "journal.jsonl"
    process = start_build(library, out, workers=1)
    wait_for_journal(out, 4)
    os.killpg(process.pid, signal.SIGKILL)  # the build and its worker, with no chance to clean up
    process.wait()
    finished_before = [json.loads(line) for line in journal.read_bytes().splitlines()]
    assert 4 <= len(finished_before) < 12, "the build was not killed mid-way"
    assert not (out / "tracks.csv").exists()
    for png in (out / "slices").rglob("*.png"):  # nothing partial or corrupt in the final layout
        with Image.open(png) as image:
            image.load()
            assert image.size == (128, 128)
    kept = {path: path.stat().st_mtime_ns for record in finished_before
            for path in (out / layout.track_slice_dir(record["track_id"])).glob("*.png")}

    result = genreslice("build", str(library), str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert f"This run: {plural(12 - len(finished_before), 'track')}" in result.stdout
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # finished tracks were not redone
    assert tree_digest(out) == tree_digest(reference)
    assert not (out / layout.STATE_DIR / "tmp").exists()


def start_build(library: Path, out: Path, workers: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genreslice", "build", str(library), str(out), "--workers",
                             str(workers), "--no-progress"], cwd=Path(__file__).parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_killing_only_the_main_process_of_a_parallel_build(library, reference, tmp_path):
    out = tmp_path / "out"
    process = start_build(library, out, workers=2)
    wait_for_journal(out, 3)
    os.kill(process.pid, signal.SIGKILL)  # the main process only: its workers must not outlive it
    process.wait()
    result = genreslice("build", str(library), str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert tree_digest(out) == tree_digest(reference)


@pytest.mark.slow
def test_ctrl_c_mid_build_then_resume(library, reference, tmp_path):
    out = tmp_path / "out"
    process = start_build(library, out, workers=2)
    wait_for_journal(out, 3)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "run the same command again to resume" in stderr
    result = genreslice("build", str(library), str(out), "--workers", "2")
    assert result.returncode == 0, result.stderr
    # No track cut short by the interrupt was recorded as finished: the result equals an uninterrupted build.
    assert tree_digest(out) == tree_digest(reference)


@pytest.mark.slow
def test_sigint_to_a_background_build_truncates_nothing(library, reference, tmp_path):
    """A build started in the background ignores SIGINT, but SoX installs its own handler and, interrupted,
    exits 0 with a truncated spectrogram. Run in its own process group, SoX never sees the group's SIGINT."""
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "genreslice", "build", str(library), str(out), "--workers",
                                "2", "--no-progress"], cwd=Path(__file__).parents[2], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    wait_for_journal(out, 1)
    for _ in range(5):
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.1)
    assert process.wait(timeout=120) == 0
    assert tree_digest(out) == tree_digest(reference)


def fake_sox(folder: Path, help_formats: str) -> dict:
    folder.mkdir()
    script = folder / "sox"
    script.write_text("#!/bin/sh\n"
                      "echo 'sox:      SoX v14.4.2'\n"
                      f"echo 'AUDIO FILE FORMATS: {help_formats}'\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}"}


@pytest.mark.parametrize("formats, message", [
    (None, "SoX ('sox') was not found on PATH. Install it with: sudo apt-get install sox libsox-fmt-mp3"),
    ("wav flac ogg", "cannot read mp3. Install MP3 support with: sudo apt-get install sox libsox-fmt-mp3"),
])
def test_missing_sox_or_mp3_support_is_fatal_before_any_work(library, tmp_path, formats, message):
    if formats is None:
        (tmp_path / "empty").mkdir()
        env = {**os.environ, "PATH": str(tmp_path / "empty")}
    else:
        env = fake_sox(tmp_path / "bin", formats)
    result = genreslice("build", str(library), str(tmp_path / "out"), env=env)
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_lock_held_is_fatal(library, tmp_path):
    out = tmp_path / "out"
    (out / layout.STATE_DIR).mkdir(parents=True)
    with open(out / layout.STATE_DIR / "lock", "a+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = genreslice("build", str(library), str(out))
    assert result.returncode == 1 and "another build is running" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--workers", "0"], "0 must be at least 1"),
    (["--split-ratios", "1,2"], "split ratios '1,2' must be three"),
    (["--resample-quality", "best"], "invalid choice: 'best'"),
    (["--sample-rate", "100"], "sample_rate=100 must be between 4000 and 192000 Hz"),
    (["--pixels-per-second", "9000"], "pixels_per_second=9000 must be between 1 and 5000"),
    (["--timeout", "inf"], "inf must be more than 0 and at most"),
    (["--timeout", "nan"], "nan must be more than 0 and at most"),
    (["--split-ratios", "inf,1,1"], "split ratios 'inf,1,1' must be three non-negative"),
    (["--workers", "5000"], "5000 must be at most 1024"),
])
def test_bad_arguments_exit_2_with_the_value(library, tmp_path, args, message):
    result = genreslice("build", str(library), str(tmp_path / "out"), *args)
    assert result.returncode == 2 and message in result.stderr


def test_missing_audio_folder(tmp_path):
    result = genreslice("build", str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert result.returncode == 1 and "nowhere" in result.stderr and "does not exist" in result.stderr


def test_per_file_failures_still_exit_0(tmp_path, sox_info):
    audio = tmp_path / "audio"
    tagged_mp3(audio / "good.mp3", 3.0, "Rock", "A")
    (audio / "bad.mp3").write_bytes(b"\x00" * 1000)
    result = genreslice("build", str(audio), str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0
    assert {row["path"]: row["status"] for row in read_csv(tmp_path / "out/tracks.csv")} == \
        {"bad.mp3": "failed", "good.mp3": "ok"}


def test_pipeline_never_imports_tensorflow():
    code = ("import sys, genreslice.pipeline.build, genreslice.genre_getters, genreslice.scripts.cli; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).parent)
    assert result.stdout.strip() == "False", result.stderr


def test_empty_audio_folder_is_an_error(tmp_path):
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "readme.txt").write_text("no music here")
    result = genreslice("build", str(tmp_path / "audio"), str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 1 and "no audio files (aac, aif, aiff, au, flac, m4a, mp3, oga, ogg, opus, wav, wma)" in result.stderr
    assert not (tmp_path / "out").exists()

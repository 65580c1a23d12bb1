"""Stopping ``genreslice`` with signals, as terminals, job schedulers and ``kill`` do: the command ends at once,
leaves no SoX running, says how to resume, and a re-run completes the work.

A stalling SoX (``tests.helpers.stalling_sox``) stands for SoX decoding a very long file: it keeps running until
something kills it, so every test can check that something did.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ends_within, genreslice, stalling_sox, toy_song, tree_digest, wait_for_pid

ROOT = Path(__file__).parents[2]
STALL = "ZZSTALLZZ"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stalling_library(library, tmp_path_factory):
    """The CLI tests' 12 songs and one more whose SoX never ends, and its uninterrupted build."""
    root = tmp_path_factory.mktemp("stalling")
    music = root / "music"
    shutil.copytree(library, music)
    shutil.copy(library / "Rock/track 00.mp3", music / f"Rock/{STALL} long song.mp3")
    result = genreslice("build", str(music), str(root / "reference"), "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    return music, root / "reference"


def start(command: list[str], env: dict) -> subprocess.Popen:
    """``genreslice COMMAND`` in a process group of its own, as a shell starts a job."""
    return subprocess.Popen([sys.executable, "-m", "genreslice", *command], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def stop(process: subprocess.Popen, signum: int, *, times: int = 1, group: bool = False) -> tuple[str, float]:
    """Send ``signum`` ``times`` times, 0.2 s apart; returns stderr and the seconds the process took to end."""
    sent = time.monotonic()
    for _ in range(times):
        with contextlib.suppress(ProcessLookupError):  # it may be gone after the first
            (os.killpg if group else os.kill)(process.pid, signum)
        time.sleep(0.2)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"genreslice did not end within 30 s of {signal.Signals(signum).name}") from None
    return stderr, time.monotonic() - sent


def build_command(music: Path, out: Path, workers: int) -> list[str]:
    return ["build", str(music), str(out), "--workers", str(workers), "--no-progress"]


def test_ctrl_c_pressed_again_and_again_ends_the_build_at_once(stalling_library, tmp_path):
    """The main process alone gets SIGINT three times while a worker's SoX decodes a long file; before, the
    second one left concurrent.futures hanging for good."""
    music, reference = stalling_library
    env, pid_file = stalling_sox(tmp_path / "bin")
    process = start(build_command(music, tmp_path / "out", 2), env)
    sox = wait_for_pid(pid_file)
    stderr, seconds = stop(process, signal.SIGINT, times=3)
    assert process.returncode == 130 and seconds < 5, stderr
    assert "interrupted; run the same command again to resume" in stderr and "Traceback" not in stderr
    assert ends_within(sox, 5), "SoX kept running"
    resumed = genreslice(*build_command(music, tmp_path / "out", 2))
    assert resumed.returncode == 0, resumed.stderr
    assert tree_digest(tmp_path / "out") == tree_digest(reference)


@pytest.mark.parametrize("name, status", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_stop_the_build_like_ctrl_c(stalling_library, tmp_path, name, status):
    music, reference = stalling_library
    env, pid_file = stalling_sox(tmp_path / "bin")
    process = start(build_command(music, tmp_path / "out", 2), env)
    sox = wait_for_pid(pid_file)
    stderr, seconds = stop(process, getattr(signal, name))
    assert process.returncode == status and seconds < 5, stderr
    assert f"genreslice build: stopped by {name}; run the same command again to resume." in stderr
    assert "Traceback" not in stderr
    assert ends_within(sox, 5), "SoX kept running"
    assert genreslice(*build_command(music, tmp_path / "out", 1)).returncode == 0
    assert tree_digest(tmp_path / "out") == tree_digest(reference)


@pytest.mark.parametrize("workers", [1, 2])
def test_sox_dies_with_a_build_killed_with_sigkill(stalling_library, tmp_path, workers):
    music, _ = stalling_library
    env, pid_file = stalling_sox(tmp_path / "bin")
    process = start(build_command(music, tmp_path / "out", workers), env)
    sox = wait_for_pid(pid_file)
    stop(process, signal.SIGKILL)
    assert ends_within(sox, 5), "SoX outlived the build killed with SIGKILL"


def test_ctrl_c_to_the_whole_group_prints_no_worker_traceback(stalling_library, tmp_path):
    """While one worker waits for SoX, the other has nothing left to do; Ctrl-C reaches both."""
    music, _ = stalling_library
    env, pid_file = stalling_sox(tmp_path / "bin")
    process = start(build_command(music, tmp_path / "out", 2), env)
    sox = wait_for_pid(pid_file)
    journal = tmp_path / "out/.genreslice/journal.jsonl"
    deadline = time.monotonic() + 60
    while len(journal.read_bytes().splitlines()) < 12 and time.monotonic() < deadline:  # the others are done
        time.sleep(0.05)
    stderr, _ = stop(process, signal.SIGINT, group=True)
    assert process.returncode == 130
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr and "Process " not in stderr, stderr
    assert ends_within(sox, 5)


@pytest.fixture(scope="module")
def stalling_songs(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict stall")
    toy_song(root / "a song.mp3", "Jazz", 300, seconds=4.0)
    toy_song(root / f"b {STALL}.mp3", "Rock", 400, seconds=4.0)
    return root


@pytest.mark.parametrize("name, status", [("SIGKILL", -9), ("SIGTERM", 143), ("SIGHUP", 129), ("SIGINT", 130)])
def test_predict_leaves_no_sox_running_whatever_stops_it(toy_model, stalling_songs, tmp_path, name, status):
    env, pid_file = stalling_sox(tmp_path / "bin")
    process = start(["predict", str(toy_model / "model"), str(stalling_songs), "--no-progress"], env)
    sox = wait_for_pid(pid_file)
    stderr, seconds = stop(process, getattr(signal, name))
    assert process.returncode == status and seconds < 5, stderr
    if name != "SIGKILL":
        stopped = "interrupted" if name == "SIGINT" else f"stopped by {name}"
        assert f"genreslice predict: {stopped}." in stderr and "Traceback" not in stderr
    assert ends_within(sox, 5), f"SoX outlived predict stopped by {name}"


def test_sigterm_stops_training_and_a_rerun_continues(tmp_path, sox_info):
    from benchmarks.synthetic_slices import write_synthetic_dataset

    dataset = write_synthetic_dataset(tmp_path / "dataset", tracks_per_genre=4, slices_per_track=16,
                                      split_tracks=(3, 1, 0), seed=2)
    command = ["train", str(dataset), str(tmp_path / "model"), "--model", "compact", "--epochs", "2",
               "--patience", "0", "--target-accuracy", "off", "--batch-size", "8", "--no-progress"]
    process = start(command, dict(os.environ))
    deadline = time.monotonic() + 120
    while not (tmp_path / "model/checkpoint/state.json").exists():  # the first epoch is committed
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    stderr, seconds = stop(process, signal.SIGTERM)
    assert process.returncode == 143 and seconds < 10, stderr
    assert "genreslice train: stopped by SIGTERM; run the same command again to resume." in stderr
    resumed = genreslice(*command)
    assert resumed.returncode == 0, resumed.stderr
    assert "continuing at epoch" in resumed.stdout


@pytest.mark.parametrize("second", ["SIGINT", "SIGTERM"])
def test_a_second_signal_while_stopping_ends_the_command_at_once(second):
    """The first signal starts a clean-up; when that takes long, the next one does not wait for it. (The build's
    own clean-up is quick, so this checks the handler itself, under a clean-up that blocks.)"""
    code = ("import time\n"
            "from genreslice.scripts.cli import stop_signals_raise\n"
            "with stop_signals_raise():\n"
            "    try:\n"
            "        print('working', flush=True)\n"
            "        time.sleep(60)\n"
            "    except KeyboardInterrupt:\n"
            "        print('cleaning up', flush=True)\n"
            "        time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout.readline() == "working\n"
    os.kill(process.pid, signal.SIGINT)
    assert process.stdout.readline() == "cleaning up\n"
    os.kill(process.pid, getattr(signal, second))
    assert process.wait(timeout=10) == 130  # the status of the first signal
    assert f"genreslice: stopped at once ({second} while stopping)." in process.stderr.read()

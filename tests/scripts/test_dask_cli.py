"""``genreslice build --executor dask`` and ``--scheduler`` as a user runs them: real subprocesses, a real cluster."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genreslice.pipeline import layout
from genreslice.pipeline.build import plural
from tests.helpers import genreslice, help_of, tree_digest, wait_for_journal

pytest.importorskip("distributed", reason="the Dask tests need genreslice[dask] (make test installs it)")


def test_build_on_a_local_dask_cluster_equals_the_process_pool(library, reference, tmp_path):
    out = tmp_path / "out"
    result = genreslice("build", str(library), str(out), "--executor", "dask", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "Running on a local Dask cluster at tcp://127.0.0.1:" in result.stdout
    assert "2 worker threads" in result.stdout
    assert "12 tracks ok, 0 failed, 0 skipped, 0 too short; 48 slices, 3 genres" in result.stdout
    assert "tracks: 100%" in result.stderr and "ok=12" in result.stderr  # the same progress bar
    assert "INFO" not in result.stderr and "Traceback" not in result.stderr  # Dask's chatter is held back
    assert tree_digest(out) == tree_digest(reference)


@pytest.mark.slow
def test_build_on_a_separately_started_cluster(library, reference, tmp_path):
    """A scheduler and a worker process started as on other machines (own working directories, relative paths on
    the command line): the build runs there and equals the process pool's."""
    scheduler_file = tmp_path / "scheduler.json"
    machines = [tmp_path / name for name in ("scheduler-host", "worker-host", "user-host")]
    for folder in machines:
        folder.mkdir()
    started = []
    try:
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(scheduler_file)],
            cwd=machines[0], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        started.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "2", "--nthreads", "1",
             "--no-dashboard"],
            cwd=machines[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        user = machines[2]
        shutil.copytree(library, user / "music")
        result = subprocess.run([sys.executable, "-m", "genreslice", "build", "music", "data set", "--scheduler",
                                 address, "--no-progress"], capture_output=True, text=True, timeout=300, cwd=user)
        assert result.returncode == 0, result.stderr
        assert f"Running on the Dask cluster at {address}: " in result.stdout
        assert "12 tracks ok" in result.stdout
        assert tree_digest(user / "data set") == tree_digest(reference)
    finally:
        for process in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process in started:
            process.wait(timeout=60)


@pytest.mark.slow
def test_ctrl_c_on_a_local_dask_cluster_then_resume(library, reference, tmp_path, sox_info):
    # SoX found on PATH takes 0.3 s more per track, so the build is surely mid-way when Ctrl-C comes.
    slow = tmp_path / "bin" / "sox"
    slow.parent.mkdir()
    slow.write_text(f'#!/bin/sh\ncase "$*" in *.mp3*) sleep 0.3;; esac\nexec {sox_info.path} "$@"\n')
    slow.chmod(0o755)
    env = {**os.environ, "PATH": f"{slow.parent}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "genreslice", "build", str(library), str(out), "--executor",
                                "dask", "--workers", "2"], cwd=Path(__file__).parents[2], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_journal(out, 3)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends to the foreground group
    started = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "run the same command again to resume" in stderr
    assert time.monotonic() - started < 10
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr  # not from the workers either
    finished = len((out / layout.STATE_DIR / "journal.jsonl").read_text().splitlines())
    assert 3 <= finished < 12
    result = genreslice("build", str(library), str(out), "--executor", "dask", "--workers", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert f"This run: {plural(12 - finished, 'track')}" in result.stdout
    assert tree_digest(out) == tree_digest(reference)


def test_scheduler_and_workers_together_is_a_usage_error(library, tmp_path):
    result = genreslice("build", str(library), str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9",
                        "--workers", "2")
    assert result.returncode == 2 and "--workers applies to this machine only" in result.stderr
    assert not (tmp_path / "out").exists()


def test_dask_missing_is_a_clear_error(library, tmp_path):
    # A site folder that shadows the distributed package with one that cannot be imported.
    shadow = tmp_path / "shadow" / "distributed"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named distributed')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    result = genreslice("build", str(library), str(tmp_path / "out"), "--executor", "dask", env=env)
    assert result.returncode == 1
    assert "the Dask executor needs Dask" in result.stderr and "pip install 'genreslice[dask]'" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_help_explains_the_executors():
    text = help_of("build", 19)
    for words in ("--executor", "{pool,dask}", "--scheduler", "tcp://HOST:PORT", "genreslice[dask]"):
        assert words in text

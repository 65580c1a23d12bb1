"""Helpers for tests about processes: a SoX that stalls on chosen files, whether a process is gone, and
running a command without the superuser's right to read every file."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def stalling_sox(folder: Path, *, marker: str = "ZZSTALLZZ") -> tuple[dict, Path]:
    """A ``sox`` on PATH that behaves like the real one, except for a file whose name holds ``marker``: then it
    writes its process id into ``sox.pid`` and turns into a ten-minute ``sleep`` (same process, as ``exec``
    keeps the pid), as SoX decoding a very long file would.

    Returns the environment to run genreslice with, and the pid file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pid_file = folder / "sox.pid"
    script = folder / "sox"
    script.write_text("#!/bin/sh\n"
                      f"case \"$*\" in *{marker}*) echo $$ > '{pid_file}.tmp'; mv '{pid_file}.tmp' '{pid_file}';"
                      " exec sleep 600;; esac\n"
                      f"exec {shutil.which('sox')} \"$@\"\n")
    script.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}, pid_file


def wait_for_pid(pid_file: Path, timeout: float = 120.0) -> int:
    """The pid a :func:`stalling_sox` wrote, once it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_file.exists():
            return int(pid_file.read_text())
        time.sleep(0.05)
    raise AssertionError(f"no stalled SoX started within {timeout} s")


def is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a dead process whose parent has not reaped it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def ends_within(pid: int, seconds: float) -> bool:
    """Wait up to ``seconds`` for process ``pid`` to end."""
    deadline = time.monotonic() + seconds
    while is_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def unprivileged() -> list[str]:
    """A command prefix under which file permissions apply, even to root.

    Root reads every file whatever its mode; ``setpriv`` drops the two capabilities that allow it
    (``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``) from the command it runs. Skips the test where that cannot be
    done.
    """
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    try:
        check = subprocess.run([*prefix, "true"], capture_output=True, timeout=30, check=False)
    except OSError:
        pytest.skip("running as root without setpriv: cannot make a folder unreadable")
    if check.returncode != 0:
        pytest.skip("running as root and cannot drop CAP_DAC_OVERRIDE: cannot make a folder unreadable")
    return prefix


def hold_lock(lock_path: Path, *, shared: bool = False) -> subprocess.Popen:
    """Another process holding ``lock_path`` as a running build does (exclusive) or as a training or evaluation
    does (``shared``); it has the lock once this returns. Stop it with :func:`stop`."""
    code = ("import fcntl, sys, time\n"
            f"handle = open(sys.argv[1], {'r' if shared else 'a+'!r})\n"
            f"fcntl.lockf(handle, fcntl.{'LOCK_SH' if shared else 'LOCK_EX'})\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, os.fspath(lock_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def stop(holder: subprocess.Popen) -> None:
    """End a process started by a test, if it still runs."""
    if holder.poll() is None:
        holder.kill()
        holder.wait()


def build_could_start(lock_path: Path) -> bool:
    """Whether a build (an exclusive lock, taken by another process) could start now."""
    code = ("import fcntl, sys\n"
            "handle = open(sys.argv[1], 'a+')\n"
            "try:\n"
            "    fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "except OSError:\n"
            "    sys.exit(1)\n")
    return subprocess.run([sys.executable, "-c", code, os.fspath(lock_path)], timeout=60).returncode == 0

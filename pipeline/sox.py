"""Finding SoX (and FFmpeg, which decodes what SoX cannot read) and checking what SoX can read, before any work
starts."""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from genreslice.pipeline.errors import SoxUnavailableError

INSTALL_HINT = "sudo apt-get install sox libsox-fmt-mp3"
#: How to install FFmpeg, which decodes the formats SoX cannot read (AAC/ALAC in .m4a, .aac, Opus, WMA).
FFMPEG_INSTALL_HINT = "Debian/Ubuntu: sudo apt-get install ffmpeg; macOS: brew install ffmpeg"
REQUIRED_FORMATS = ("mp3", "wav", "flac", "ogg")
_PROBE_TIMEOUT_S = 30


@dataclass(frozen=True)
class SoxInfo:
    """The SoX binary a build uses.

    Attributes
    ----------
    path : str
        Absolute path of the ``sox`` executable.
    version : str
        Version string, e.g. ``"14.4.2"``; recorded in ``dataset.json`` because it can change pixels.
    formats : frozenset of str
        Audio file formats this SoX build can read.
    """

    path: str
    version: str
    formats: frozenset[str]


def find_sox(*, executable: str = "sox", required_formats: tuple[str, ...] = REQUIRED_FORMATS) -> SoxInfo:
    """Locate SoX and check it reads every format in ``required_formats``.

    Raises
    ------
    SoxUnavailableError
        SoX is not on ``PATH``, does not run, or lacks a required format; the message gives the install command.
    """
    path = shutil.which(executable)
    if path is None:
        raise SoxUnavailableError(f"SoX ('{executable}') was not found on PATH. Install it with: {INSTALL_HINT}")
    try:
        # One process: ``sox -h`` prints the version on its first line and the formats it reads.
        help_run = subprocess.run(
            [path, "-h"], capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SoxUnavailableError(f"SoX at {path} does not run ({err}). Reinstall it with: {INSTALL_HINT}") from err
    match = re.search(r"SoX v(\d+(?:\.\d+)+\S*)", help_run.stdout + help_run.stderr)
    if match is None:
        raise SoxUnavailableError(
            f"SoX at {path} did not report a version (exit {help_run.returncode}): "
            f"{(help_run.stderr or help_run.stdout).strip()[:200]!r}. Reinstall it with: {INSTALL_HINT}"
        )
    formats: frozenset[str] = frozenset()
    for line in help_run.stdout.splitlines():
        if line.startswith("AUDIO FILE FORMATS:"):
            formats = frozenset(line.split(":", 1)[1].split())
    missing = [fmt for fmt in required_formats if fmt not in formats]
    if missing:
        raise SoxUnavailableError(
            f"SoX at {path} (v{match.group(1)}) cannot read {', '.join(missing)}. "
            f"Install MP3 support with: {INSTALL_HINT}"
        )
    return SoxInfo(path=path, version=match.group(1), formats=formats)


def dies_with_parent(command: list[str]) -> list[str]:
    """``command``, started so that the kernel kills it when the thread that started it ends.

    SoX runs in a process group of its own (so a Ctrl-C meant for genreslice does not end it with a truncated
    spectrogram and exit status 0), which also puts it out of reach of signals sent to genreslice's group. When
    genreslice or a build worker is killed, even with SIGKILL, nothing would stop a SoX decoding a long file.
    On Linux, util-linux's ``setpriv --pdeathsig KILL`` asks the kernel to kill the command when its parent
    ends, then runs it in its own place (same process, same exit status). Where ``setpriv`` is missing the
    command runs as given.
    """
    prefix = _pdeathsig_prefix()
    return [*prefix, *command] if prefix else command


@functools.cache
def _pdeathsig_prefix() -> tuple[str, ...]:
    """``("/usr/bin/setpriv", "--pdeathsig", "KILL", "--")`` where it works, else empty; checked once per process."""
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return ()
    prefix = (setpriv, "--pdeathsig", "KILL", "--")
    try:
        check = subprocess.run([*prefix, "true"], capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return ()
    return prefix if check.returncode == 0 else ()


@functools.cache
def find_ffmpeg(executable: str = "ffmpeg") -> str | None:
    """Absolute path of the FFmpeg executable on ``PATH``, or None; looked up once per process.

    FFmpeg is optional: only files SoX cannot read (``.m4a``, ``.aac``, ``.opus``, ``.wma``) need it, and without
    it those files fail one by one with :data:`FFMPEG_INSTALL_HINT`.
    """
    path = shutil.which(executable)
    return None if path is None else os.path.abspath(path)

"""Helpers shared by the test modules (and by ``benchmarks.bench_labels``): test audio, processes, builds, the
command line, the toy genres, training runs and label-source metadata fixtures.

Test modules import helpers from here, never from one another or from a ``conftest.py``
(``tests/test_helpers_layout.py`` checks this); the ``conftest.py`` files hold pytest fixtures only.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mutagen.id3 import ID3, TCON, TPE1, TIT2

from genreslice.genre_getters import Id3LabelSource, LabelSource, make_label_source
from genreslice.pipeline import layout


# Test audio, made offline at test time: SoX synthesises it, mutagen tags it.

def synth(path: str | os.PathLike, seconds: float, *sources: str, rate: int = 44100, channels: int = 2,
          volume: float = 0.5, extra: tuple[str, ...] = ()) -> Path:
    """Write ``seconds`` of SoX ``synth`` audio (e.g. ``"sine", "440"``) to ``path``; format from its extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sources = sources or ("sine", "440")
    command = ["sox", "-R", "-n", "-r", str(rate), "-c", str(channels), "--no-glob", os.path.abspath(path),
               "synth", f"{seconds}", *sources, "vol", f"{volume}", *extra]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path


def music(path: str | os.PathLike, seed: int, *, seconds: float = 14.0, genre: str = "Electronic",
          bpm: float = 126.0) -> Path:
    """Write a WAV of the demo synthesizer's ``genre`` at ``bpm``: music that changes, unlike a ``synth`` tone, so
    that its fingerprint can be compared (songs of one genre and tempo differ in key, chords and melody)."""
    import numpy as np

    from genreslice.scripts.demo_corpus import _write_wav, synthesize_song

    class FixedTempo:  # the demo styles draw their tempo first
        def __init__(self, rng):
            self.rng, self.used = rng, False

        def uniform(self, *args):
            if self.used:
                return self.rng.uniform(*args)
            self.used = True
            return bpm

        def __getattr__(self, name):
            return getattr(self.rng, name)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_wav(path, synthesize_song(genre, FixedTempo(np.random.default_rng(seed)), seconds))
    return path


def near_copy(source: str | os.PathLike, target: str | os.PathLike, *effects: str, bitrate: int | None = None) -> Path:
    """Write ``source`` through SoX ``effects`` (``rate 16000``, ``gain -3``, ``trim 1.5``, ``channels 2``), as an
    MP3 of ``bitrate`` kbps when given."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = ["-C", str(bitrate)] if bitrate else []
    subprocess.run(["sox", "-V1", "--no-glob", os.path.abspath(source), *options, "--no-glob", os.path.abspath(target),
                    *effects], check=True, capture_output=True, timeout=120)
    return target


def silence(path: str | os.PathLike, seconds: float, *, rate: int = 44100, channels: int = 2) -> Path:
    """Write digital silence."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), "--no-glob", os.path.abspath(path),
                    "trim", "0", f"{seconds}"], check=True, capture_output=True, timeout=120)
    return path


def tag_id3(path: str | os.PathLike, *, genre: str | None = None, artist: str | None = None,
            title: str | None = None) -> Path:
    """Write an ID3v2 tag with the given frames (replacing any existing tag)."""
    tags = ID3()
    if genre is not None:
        tags.add(TCON(encoding=3, text=[genre]))
    if artist is not None:
        tags.add(TPE1(encoding=3, text=[artist]))
    if title is not None:
        tags.add(TIT2(encoding=3, text=[title]))
    tags.save(path)
    return Path(path)


def append_id3v1(path: str | os.PathLike, *, genre_byte: int, artist: str = "", title: str = "") -> Path:
    """Append a raw 128-byte ID3v1 tag, as old rippers wrote them (no ID3v2 at all)."""
    def field(text: str, size: int) -> bytes:
        return text.encode("latin-1")[:size].ljust(size, b"\x00")

    block = b"TAG" + field(title, 30) + field(artist, 30) + field("", 30) + b"2001" + field("", 30)
    block += bytes([genre_byte])
    with open(path, "ab") as handle:
        handle.write(block)
    return Path(path)


def tagged_mp3(path: str | os.PathLike, seconds: float, genre: str | None, artist: str | None,
               *sources: str, **synth_options) -> Path:
    """A tagged MP3 of synthesised audio."""
    synth(path, seconds, *sources, **synth_options)
    return tag_id3(path, genre=genre, artist=artist)


# Processes: a SoX that stalls on chosen files, whether a process is gone, running a command without the
# superuser's right to read every file, and other processes holding a build's or a training's lock.

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


# Builds from Python: the ID3 label source, a build's tables and files, a small tagged corpus, and label sources
# that never open the audio.

LABELS = Id3LabelSource()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tree_digest(out: Path) -> dict[str, str]:
    """Every file of a build except the private state folder, by relative path -> SHA-256."""
    digests = {}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        if path.is_file() and not rel.startswith(layout.STATE_DIR):
            digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digests


def make_corpus(root: Path) -> Path:
    """Eight tracks of three genres by five artists, plus one untagged and one too short."""
    specs = [
        ("rock/a1 - one.mp3", 7.0, "Rock", "Artist One", ("sine", "300")),
        ("rock/a1 - two.mp3", 6.0, "(17)", "artist one", ("square", "200")),
        ("rock/a2 - three.mp3", 8.0, "Rock", "Artist Two", ("sine", "500")),
        ("jazz/a3 - four.mp3", 6.0, "Jazz", "Artist Three", ("pinknoise",)),
        ("jazz/a4 - five.mp3", 5.5, "Jazz", "Artist Four", ("triangle", "700")),
        ("pop/a5 - six.mp3", 6.0, "Pop", "Artist Five", ("sine", "1500")),
        ("pop/noartist.mp3", 6.0, "Pop", None, ("sine", "2500")),
        ("pop/short.mp3", 1.5, "Pop", "Artist Five", ("sine", "900")),
    ]
    for rel, seconds, genre, artist, sources in specs:
        tagged_mp3(root / rel, seconds, genre, artist, *sources)
    synth(root / "untagged.mp3", 3.0)
    return root


class LabelsFromNames:
    """A label source that never opens the audio (as FMA's and MTG-Jamendo's): every file is Rock, by an artist
    named after it. Its failures come from the audio work, not from labelling."""

    name = "names"
    reads_audio = False
    metadata_problems: tuple[str, ...] = ()
    taxonomy = LABELS.taxonomy

    def settings(self) -> dict:
        return {"source": self.name}

    def label(self, path, rel_path):
        from genreslice.genre_getters import TrackLabel

        return TrackLabel(genre="Rock", artist=rel_path)

    def missing_audio(self, labelled_ids):
        return []


class LabelsFromStems(LabelsFromNames):
    """Track ids from file names, as FMA's (``000/000002.mp3`` is track 2): two files may claim one id."""

    def label(self, path, rel_path):
        from genreslice.genre_getters import TrackLabel

        return TrackLabel(genre="Rock", artist=rel_path, track_id=Path(rel_path).stem.lstrip("0"))


# The ``genreslice`` command as a user runs it: a real subprocess from the repository root.

GENRES = ["Rock", "Jazz", "Pop"]


def genreslice(*args: str, env: dict | None = None, **options) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genreslice", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=Path(__file__).parents[1], **options)


def help_of(command: str, min_options: int) -> str:
    """``genreslice COMMAND --help``, checked to explain every option of the command; returns the text."""
    from genreslice.scripts.cli import make_parser

    result = genreslice(command, "--help")
    assert result.returncode == 0 and "(default: None)" not in result.stdout
    parser = make_parser()._subparsers._group_actions[0].choices[command]
    options = [action for action in parser._actions if action.dest != "help"]
    assert len(options) >= min_options
    for action in options:
        assert action.help and len(action.help) > 10, action.dest
        assert (action.option_strings[0] if action.option_strings else action.metavar) in result.stdout
    return result.stdout


def wait_for_journal(out: Path, lines: int) -> None:
    journal = out / layout.STATE_DIR / "journal.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if journal.exists() and len(journal.read_bytes().splitlines()) >= lines:
            return
        time.sleep(0.02)
    raise AssertionError("the build did not get going")


# The toy genres: three "genres" a small CNN tells apart after a few seconds of training (pure tones, rich tones,
# noise), which the session fixture ``toy_model`` (tests/conftest.py) builds and trains on.

TOY_GENRES = {"Jazz": "sine", "Electronic": "square", "Rock": "pinknoise"}
TOY_SPLIT_RATIOS = (0.6, 0.2, 0.2)
TOY_TRACKS = {"train": 4, "validation": 1, "test": 2}


def artist_in_split(split: str, ratios: tuple[float, float, float], prefix: str) -> str:
    """An artist name that the build's artist hash puts in ``split``: fixes each track's split in a test."""
    from genreslice.pipeline.splits import assign_split, split_key

    return next(name for name in (f"{prefix}-{n}" for n in range(10_000))
                if assign_split(split_key(name, ""), ratios) == split)


def toy_song(path, genre: str, pitch: float, seconds: float = 12.0, artist: str | None = None):
    """A tagged MP3 of one toy genre at ``pitch`` Hz (pitches 150 to 900 are what the toy model was trained on).

    A noise genre has no pitch: its songs are stretches of SoX's repeatable noise that start ``pitch / 5`` seconds
    in, so songs of pitches 13 Hz apart share no audio (the same stretch would be one recording, which a build
    finds and keeps in one split)."""
    if TOY_GENRES[genre].endswith("noise"):
        offset = f"{pitch / 5:.2f}"
        return tagged_mp3(path, seconds + float(offset), genre, artist, TOY_GENRES[genre], extra=("trim", offset))
    return tagged_mp3(path, seconds, genre, artist, TOY_GENRES[genre], f"{pitch:g}")


# Training runs from Python.

# Fast settings: the small preset (these tests are about how a run goes, not which network), and no stop rule
# fires unless a test asks for one.
RUN = {"model": "compact", "target_accuracy": None, "patience": 0, "loader_workers": 2}


def digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (but the lock, which holds the last holder's pid) -> SHA-256."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "lock"
    }


# FMA's ``fma_metadata/tracks.csv``: three header rows, then one row per track. The real file is not in the
# repository (342 MiB archive); this reproduces its columns and header shape, so the FMA label source reads
# generated files exactly as it reads the real one.

#: FMA's tracks.csv columns, in order (index column ``track_id`` first, not listed).
COLUMNS = [
    *(("album", name) for name in ("comments", "date_created", "date_released", "engineer", "favorites", "id",
                                   "information", "listens", "producer", "tags", "title", "tracks", "type")),
    *(("artist", name) for name in ("active_year_begin", "active_year_end", "associated_labels", "bio", "comments",
                                    "date_created", "favorites", "id", "latitude", "location", "longitude",
                                    "members", "name", "related_projects", "tags", "website", "wikipedia_page")),
    ("set", "split"), ("set", "subset"),
    *(("track", name) for name in ("bit_rate", "comments", "composer", "date_created", "date_recorded", "duration",
                                   "favorites", "genre_top", "genres", "genres_all", "information", "interest",
                                   "language_code", "license", "listens", "lyricist", "number", "publisher", "tags",
                                   "title")),
]


def write_tracks_csv(path: Path, tracks: list[dict]) -> Path:
    """Write ``tracks`` (dicts with ``track_id`` and any of ``genre_top``, ``artist_id``, ``split``, ``subset``,
    ``title``, ``bio``, ``genres_all``) as an FMA ``tracks.csv``; other columns get plausible filler."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *(group for group, _ in COLUMNS)])
        writer.writerow(["", *(name for _, name in COLUMNS)])
        writer.writerow(["track_id", *([""] * len(COLUMNS))])
        for track in tracks:
            values = {
                ("artist", "id"): track.get("artist_id", ""),
                ("artist", "name"): track.get("artist_name", f"Artist {track.get('artist_id', '')}"),
                ("artist", "bio"): track.get("bio", "<p>Plays \"loud\", quiet,\nand in between.</p>"),
                ("set", "split"): track.get("split", "training"),
                ("set", "subset"): track.get("subset", "large"),
                ("track", "genre_top"): track.get("genre_top", ""),
                ("track", "genres"): "[12]",
                ("track", "genres_all"): track.get("genres_all", "[12, 25]"),
                ("track", "title"): track.get("title", f"Track {track['track_id']}"),
                ("track", "duration"): "30",
                ("album", "tags"): "[]",
            }
            writer.writerow([track["track_id"], *(values.get(column, "") for column in COLUMNS)])
    return path


# Label sources built on small metadata fixtures, for tests that run over every registered source.

FIXTURES = Path(__file__).parent / "fixtures"
JAMENDO_SPLIT = FIXTURES / "jamendo" / "split-0"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: A few FMA tracks: (track_id, genre_top, artist_id, split, subset).
FMA_TRACKS = [
    (2, "Hip-Hop", 1, "training", "small"),
    (3, "Hip-Hop", 1, "training", "medium"),
    (5, "Hip-Hop", 1, "training", "small"),
    (10, "Pop", 6, "validation", "small"),
    (20, "", 4, "test", "large"),
    (134, "Rock", 52, "test", "medium"),
    (140, "Folk", 54, "training", "large"),
]


def write_fma_metadata(folder: Path, tracks=FMA_TRACKS) -> Path:
    """``folder/fma_metadata/tracks.csv`` holding ``tracks``; returns the ``fma_metadata`` folder."""
    rows = [{"track_id": track_id, "genre_top": genre, "artist_id": artist, "split": split, "subset": subset}
            for track_id, genre, artist, split, subset in tracks]
    return write_tracks_csv(folder / "fma_metadata" / "tracks.csv", rows).parent


def fixture_source(name: str, folder: Path) -> LabelSource:
    """The source registered as ``name``, reading fixture metadata (written under ``folder`` when needed)."""
    if name == "fma":
        return make_label_source("fma", metadata=write_fma_metadata(folder))
    if name == "jamendo":
        return make_label_source("jamendo", metadata=JAMENDO_SPLIT)
    if name == "csv":  # rows for the contract's relative paths
        metadata = folder / "labels.csv"
        folder.mkdir(parents=True, exist_ok=True)
        metadata.write_text("path,label,artist,split\n000/000002.mp3,Hip-Hop,a1,train\n41/241.mp3,waltz,,test\n"
                            "11/121111.mp3,tango;salsa,a2,\n", encoding="utf-8")
        return make_label_source("csv", audio_dir=folder, metadata=metadata)  # audio_dir: ignored
    if name == "folders":  # the class folders of the contract's relative paths
        for folder_name in ("000", "11", "41", "51", "not", "Rock"):
            (folder / "audio" / folder_name).mkdir(parents=True, exist_ok=True)
        return make_label_source("folders", audio_dir=folder / "audio")
    return make_label_source(name)

"""Genres written into audio files' own tags (``pipeline/library_tags.py``): every format read back, the audio and
the other tags unchanged, atomic replacement (a failure or a killed process leaves the file as it was), and the
undo log."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import mutagen
import pytest
from mutagen.asf import ASF
from mutagen.flac import FLAC, Picture
from mutagen.id3 import APIC, COMM, ID3, TALB, TCON, TIT2, TPE1, TXXX
from mutagen.mp4 import MP4, MP4Cover

from genreslice.pipeline import library_tags
from genreslice.pipeline.library_tags import (
    GenreChange,
    TagWriteError,
    UndoLog,
    UndoLogError,
    read_genres,
    read_undo_log,
    tag_values,
    undo_changes,
    write_genres,
)
from tests.helpers import synth, unprivileged

FFMPEG = shutil.which("ffmpeg")
#: A picture's bytes: only their equality before and after matters.
COVER = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
#: Decoded by FFmpeg (SoX reads none of them).
FFMPEG_SUFFIXES = (".m4a", ".opus", ".wma")


def ffmpeg_encode(path: Path, codec: str) -> Path:
    """A second of a tone encoded by FFmpeg with ``codec``; skips the test where FFmpeg is missing."""
    if FFMPEG is None:
        pytest.skip(f"FFmpeg is not installed: no encoder for {path.suffix} files")
    wav = synth(path.with_suffix(".source.wav"), 1.0, "sine", "440")
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", "-i", str(wav.absolute()), "-c:a", codec,
                    str(path.absolute())], check=True, capture_output=True, timeout=60)
    wav.unlink()
    return path


def make_mp3(path: Path, version: int) -> Path:
    synth(path, 1.0, "sine", "440")
    tags = ID3()
    for frame in (TIT2(encoding=1, text=["A title"]), TPE1(encoding=1, text=["Ärtist", "Second artist"]),
                  TALB(encoding=1, text=["An album"]), COMM(encoding=1, lang="eng", desc="", text=["a comment"]),
                  TXXX(encoding=1, desc="MOOD", text=["calm"]),
                  APIC(encoding=1, mime="image/png", type=3, desc="cover", data=COVER)):
        tags.add(frame)
    tags.save(path, v2_version=version, v23_sep=None)
    return path


def make_flac(path: Path) -> Path:
    synth(path, 1.0, "sine", "440")
    audio = FLAC(path)
    audio.tags.update({"TITLE": "A title", "ARTIST": "Ärtist", "ALBUM": "An album", "COMMENT": "a comment"})
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", COVER
    audio.add_picture(picture)
    audio.save()
    return path


def make_vorbis(path: Path, maker) -> Path:
    maker(path)
    audio = mutagen.File(path)
    audio.tags.update({"TITLE": "A title", "ARTIST": "Ärtist", "ALBUM": "An album"})
    audio.save()
    return path


def make_m4a(path: Path) -> Path:
    ffmpeg_encode(path, "aac")
    audio = MP4(path)
    audio.tags.update({"\xa9nam": ["A title"], "\xa9ART": ["Ärtist"], "\xa9alb": ["An album"],
                       "covr": [MP4Cover(COVER, imageformat=MP4Cover.FORMAT_PNG)]})
    audio.save()
    return path


def make_id3_chunk(path: Path) -> Path:
    """A WAV or AIFF file with an ID3 chunk."""
    synth(path, 1.0, "sine", "440")
    audio = mutagen.File(path)
    audio.add_tags()
    audio.tags.add(TIT2(encoding=3, text=["A title"]))
    audio.tags.add(TPE1(encoding=3, text=["Ärtist"]))
    audio.save()
    return path


def make_wma(path: Path) -> Path:
    ffmpeg_encode(path, "wmav2")
    audio = ASF(path)
    audio.tags.update({"Title": ["A title"], "Author": ["Ärtist"], "WM/AlbumTitle": ["An album"]})
    audio.save()
    return path


MAKERS = {
    "id3v2.3.mp3": lambda path: make_mp3(path, 3),
    "id3v2.4.mp3": lambda path: make_mp3(path, 4),
    "vorbis.flac": make_flac,
    "vorbis.ogg": lambda path: make_vorbis(path, lambda target: synth(target, 1.0, "sine", "440")),
    "opus.opus": lambda path: make_vorbis(path, lambda target: ffmpeg_encode(target, "libopus")),
    "aac.m4a": make_m4a,
    "id3.wav": make_id3_chunk,
    "id3.aiff": make_id3_chunk,
    "asf.wma": make_wma,
}
FIELDS = {".mp3": "TCON", ".wav": "TCON", ".aiff": "TCON", ".flac": "GENRE", ".ogg": "GENRE", ".opus": "GENRE",
          ".m4a": "\xa9gen", ".wma": "WM/Genre"}


def decoded(path: Path) -> bytes:
    """The audio of ``path`` as raw 32-bit PCM, decoded by SoX (FFmpeg for the formats SoX cannot read); no
    dither (``-D``), whose noise differs from run to run."""
    if path.suffix in FFMPEG_SUFFIXES:
        command = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path.absolute()), "-f", "s32le", "-"]
    else:
        command = ["sox", "-D", "--no-glob", str(path.absolute()), "-t", "raw", "-e", "signed", "-b", "32", "-"]
    pcm = subprocess.run(command, check=True, capture_output=True, timeout=60).stdout
    assert len(pcm) > 10_000
    return pcm


def other_tags(path: Path) -> list:
    """Every tag of ``path`` but its genre, with pictures, as comparable text."""
    audio = mutagen.File(path)
    genre_keys = {"tcon", "genre", "\xa9gen", "wm/genre"}
    items = sorted((str(key), repr(value)) for key, value in audio.tags.items() if key.lower() not in genre_keys)
    pictures = [picture.data for picture in getattr(audio, "pictures", [])]
    return [items, pictures]


@pytest.fixture(scope="module")
def originals(tmp_path_factory, sox_info):
    """One small file of each format, tagged with a title, an artist and more (but no genre)."""
    return tmp_path_factory.mktemp("tag formats")


def original(originals: Path, name: str) -> Path:
    path = originals / name
    if not path.exists():
        MAKERS[name](path)
    return path


@pytest.mark.parametrize("name", list(MAKERS))
def test_write_and_read_back_keeping_the_audio_and_the_other_tags(originals, tmp_path, name):
    path = tmp_path / name
    shutil.copy(original(originals, name), path)
    path.chmod(0o640)
    audio, others = decoded(path), other_tags(path)
    assert others[0] and read_genres(path).values == ()

    change = write_genres(path, ["Jazz"])
    assert change == GenreChange(path, FIELDS[path.suffix], (), ("Jazz",))
    assert read_genres(path).values == ("Jazz",) and read_genres(path).field == FIELDS[path.suffix]
    several = ["Rock", "Pop/Funk", "Jäzz"]
    assert write_genres(path, several).old == ("Jazz",)
    assert read_genres(path).values == tuple(several)
    assert decoded(path) == audio and other_tags(path) == others
    if path.suffix == ".mp3":  # the tag's version is kept
        assert path.read_bytes()[:4] == b"ID3" + bytes([int(name[6])])

    assert write_genres(path, []).new == ()  # no genre: the field is removed
    assert read_genres(path).values == () and "Rock" not in repr(mutagen.File(path).tags)
    assert decoded(path) == audio and other_tags(path) == others
    assert path.stat().st_mode & 0o777 == 0o640
    assert [entry.name for entry in tmp_path.iterdir()] == [name]  # no temporary file left


def test_an_existing_genre_is_read_and_replaced(originals, tmp_path):
    path = tmp_path / "old.mp3"
    shutil.copy(original(originals, "id3v2.3.mp3"), path)
    tags = ID3(path)
    tags.add(TCON(encoding=1, text=["Rock", "(17)"]))
    tags.save(v2_version=3, v23_sep=None)
    assert read_genres(path).values == ("Rock", "Rock")
    assert write_genres(path, ["Jazz"]).old == ("Rock", "Rock")
    assert read_genres(path).values == ("Jazz",) and ID3(path).version[:2] == (2, 3)


def test_tag_values_take_the_name_after_the_last_category_separator():
    assert tag_values(["genre---rock", "mood---happy", "genre---sub---dub", "Jazz", "rock", " ", "a---"]) == [
        "rock", "happy", "dub", "Jazz"]


@pytest.mark.parametrize("content", [b"", b"ID3\x04\x00\x00\x00\x00\x00\x30" + b"\x00" * 10,
                                     bytes(range(256)) * 40, b"fLaC" + os.urandom(300)],
                         ids=["empty", "cut short", "random bytes", "damaged flac"])
def test_a_file_mutagen_cannot_read_fails_and_stays_as_it_was(tmp_path, content):
    path = tmp_path / ("song.flac" if content.startswith(b"fLaC") else "song.mp3")
    path.write_bytes(content)
    with pytest.raises(TagWriteError) as caught:
        write_genres(path, ["Jazz"])
    assert caught.value.path == path and str(caught.value).startswith(f"{path}: ")
    assert "\n" not in caught.value.reason and caught.value.reason
    assert path.read_bytes() == content and [entry.name for entry in tmp_path.iterdir()] == [path.name]
    with pytest.raises(TagWriteError):
        read_genres(path)


def test_a_format_without_writable_tags_and_a_missing_file(tmp_path, sox_info):
    au = synth(tmp_path / "tone.au", 0.5)
    before = au.read_bytes()
    with pytest.raises(TagWriteError, match="cannot be written"):
        write_genres(au, ["Jazz"])
    assert au.read_bytes() == before
    with pytest.raises(TagWriteError, match="no such file"):
        write_genres(tmp_path / "gone.mp3", ["Jazz"])


def test_read_only_folder_and_read_only_file_fail_and_stay_as_they_were(originals, tmp_path):
    folder = tmp_path / "read-only folder"
    folder.mkdir()
    in_folder, read_only = folder / "a.mp3", tmp_path / "read-only.mp3"
    for path in (in_folder, read_only):
        shutil.copy(original(originals, "id3v2.4.mp3"), path)
    read_only.chmod(0o444)
    folder.chmod(0o555)
    code = ("import sys\n"
            "from genreslice.pipeline.library_tags import TagWriteError, write_genres, write_problem\n"
            "for path in sys.argv[1:]:\n"
            "    print(write_problem(path))\n"
            "    try:\n"
            "        write_genres(path, ['Jazz'])\n"
            "    except TagWriteError as err:\n"
            "        print(err.reason)\n")
    before = [path.read_bytes() for path in (in_folder, read_only)]
    try:
        result = subprocess.run([*unprivileged(), sys.executable, "-c", code, str(in_folder), str(read_only)],
                                capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    finally:
        folder.chmod(0o755)
    assert result.returncode == 0, result.stderr
    read_only_file = "the file is read-only; make it writable (chmod u+w) to tag it"
    assert result.stdout.splitlines() == [
        "its folder is read-only, and the tagged copy is made there; make it writable to tag the file",
        "cannot make the temporary copy in its folder: Permission denied", read_only_file, read_only_file]
    assert [path.read_bytes() for path in (in_folder, read_only)] == before
    assert sorted(entry.name for entry in tmp_path.rglob("*")) == ["a.mp3", "read-only folder", "read-only.mp3"]


def test_a_failure_before_the_replace_leaves_the_file_and_no_copy(originals, tmp_path, monkeypatch):
    path = tmp_path / "song.flac"
    shutil.copy(original(originals, "vorbis.flac"), path)
    before = path.read_bytes()

    def disk_full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(library_tags.os, "replace", disk_full)
    with pytest.raises(TagWriteError, match="cannot replace the file with the tagged copy: No space left on device"):
        write_genres(path, ["Jazz"])
    monkeypatch.undo()
    assert path.read_bytes() == before and [entry.name for entry in tmp_path.iterdir()] == ["song.flac"]

    class LogFailed(Exception):
        pass

    def failing_log(change):
        assert change.new == ("Jazz",) and len(list(tmp_path.glob(".song.flac.genreslice-*.tmp"))) == 1
        raise LogFailed

    with pytest.raises(LogFailed):  # raised unchanged: a log that cannot be written stops the run
        write_genres(path, ["Jazz"], before_replace=failing_log)
    assert path.read_bytes() == before and [entry.name for entry in tmp_path.iterdir()] == ["song.flac"]


def test_a_process_killed_before_the_replace_leaves_the_file_as_it_was(originals, tmp_path):
    """Killed once the tagged copy is complete and its undo record on disk, just before the rename."""
    path, log = tmp_path / "song.mp3", tmp_path / "undo.jsonl"
    shutil.copy(original(originals, "id3v2.3.mp3"), path)
    before = path.read_bytes()
    code = ("import os, signal, sys\n"
            "from genreslice.pipeline.library_tags import UndoLog, write_genres\n"
            "log = UndoLog(sys.argv[2])\n"
            "def record_then_die(change):\n"
            "    log.record(change)\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            "write_genres(sys.argv[1], ['Jazz'], before_replace=record_then_die)\n")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(log)], capture_output=True, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == before
    [left] = tmp_path.glob(".song.mp3.genreslice-*.tmp")  # a killed process cannot remove its copy; it is whole
    assert ID3(left).getall("TCON")[0].text == ["Jazz"] and decoded(left.rename(tmp_path / "copy.mp3")) \
        == decoded(path)
    records, problems = read_undo_log(log)
    assert problems == [] and [(r.path, r.old, r.new) for r in records] == [(path, (), ("Jazz",))]
    [result] = undo_changes(records)
    assert result.outcome == "already" and path.read_bytes() == before


ODD_NAMES = ["a song with spaces.mp3", "it's \"quoted\".mp3", "$(touch pwned).mp3", "-leading dash.mp3",
             "Ünïcödé 日本.mp3", "new\nline.mp3", os.fsdecode(b"latin-1 caf\xe9.mp3")]


def test_odd_names_are_written_logged_and_undone(originals, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "music"
    folder.mkdir()
    paths = [folder / name for name in ODD_NAMES]
    for path in paths:
        shutil.copy(original(originals, "id3v2.4.mp3"), path)
    log = UndoLog(model_dir="some model")
    assert log.path.name.startswith("genreslice-tags-undo-") and log.path.parent == Path(".")
    for path in paths:
        write_genres(path, ["Jazz"], before_replace=log.record)
    assert log.close()
    assert [read_genres(path).values for path in paths] == [("Jazz",)] * len(paths)
    lines = log.path.read_bytes().decode("utf-8").splitlines()  # valid UTF-8 whatever the names
    header, *entries = map(json.loads, lines)
    assert header["genreslice_undo_log"] == 1 and header["model_dir"] == str(tmp_path / "some model")
    assert entries[-1]["path_bytes"] == os.fsencode(paths[-1].absolute()).hex()
    assert entries[-1]["path"].endswith("latin-1 caf\\xe9.mp3") and "path_bytes" not in entries[0]

    records, problems = read_undo_log(log.path)
    assert problems == [] and [record.path for record in records] == [path.absolute() for path in paths]
    results = list(undo_changes(records))
    assert [result.outcome for result in results] == ["restored"] * len(paths)
    assert [result.path for result in results] == [path.absolute() for path in reversed(paths)]
    assert [read_genres(path).values for path in paths] == [()] * len(paths)
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    assert sorted(entry.name for entry in folder.iterdir()) == sorted(ODD_NAMES)


def test_a_symbolic_link_is_followed_and_stays_a_link(originals, tmp_path):
    target = tmp_path / "real.ogg"
    shutil.copy(original(originals, "vorbis.ogg"), target)
    link = tmp_path / "link.ogg"
    link.symlink_to(target.name)
    assert write_genres(link, ["Jazz"]).path == link
    assert link.is_symlink() and read_genres(target).values == ("Jazz",)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["link.ogg", "real.ogg"]


def test_undo_goes_back_through_two_runs_and_leaves_files_changed_since(originals, tmp_path):
    first, second, third = (tmp_path / f"{name}.mp3" for name in ("first", "second", "third"))
    for path in (first, second, third):
        shutil.copy(original(originals, "id3v2.3.mp3"), path)
    write_genres(second, ["Rock"])  # a genre of its own before any run
    log_path = tmp_path / "undo.jsonl"
    log = UndoLog(log_path)
    for path in (first, second, third):
        write_genres(path, ["Jazz"], before_replace=log.record)
    log.close()
    log = UndoLog(log_path)  # a second run, with --overwrite, adds to the log
    write_genres(first, ["Blues"], before_replace=log.record)
    log.close()
    write_genres(third, ["Metal"])  # changed by hand since
    assert sum(1 for line in log_path.read_text().splitlines() if "genreslice_undo_log" in line) == 2

    records, problems = read_undo_log(log_path)
    results = {result.path.name: result for result in undo_changes(records)}
    assert [name for name in results] == ["first.mp3", "third.mp3", "second.mp3"]  # most recently changed first
    assert (results["first.mp3"].outcome, results["first.mp3"].before, results["first.mp3"].after) == (
        "restored", ("Blues",), ())
    assert (results["second.mp3"].outcome, results["second.mp3"].after) == ("restored", ("Rock",))
    assert (results["third.mp3"].outcome, results["third.mp3"].detail) == ("changed", "'Jazz'")
    assert [read_genres(path).values for path in (first, second, third)] == [(), ("Rock",), ("Metal",)]
    again = {result.path.name: result.outcome for result in undo_changes(records)}
    assert again == {"first.mp3": "already", "third.mp3": "changed", "second.mp3": "already"}
    third.unlink()
    assert [result.detail for result in undo_changes(records) if result.outcome == "failed"] == ["no such file"]


def test_a_damaged_log_line_is_reported_and_skipped(originals, tmp_path):
    path, log_path = tmp_path / "song.flac", tmp_path / "undo.jsonl"
    shutil.copy(original(originals, "vorbis.flac"), path)
    log = UndoLog(log_path)
    write_genres(path, ["Jazz"], before_replace=log.record)
    log.close()
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write('["not", "a record"]\n{"path": "/music/x.mp3", "field": "TC')  # a killed run's last line
    UndoLog(log_path).close()  # appending starts a line of its own
    assert json.loads(log_path.read_text().splitlines()[4])["genreslice_undo_log"] == 1
    records, problems = read_undo_log(log_path)
    assert len(records) == 1 and len(problems) == 2
    assert problems[0].startswith(f"{log_path}: line 3 is damaged (not a change record")
    assert problems[1].startswith(f"{log_path}: line 4 is damaged (not JSON")
    assert [result.outcome for result in undo_changes(records)] == ["restored"]
    assert read_genres(path).values == ()


def test_an_undo_log_refuses_other_files_and_needs_a_header(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    with pytest.raises(UndoLogError, match="exists and is not a genreslice undo log"):
        UndoLog(other)
    assert other.read_text() == "my notes\n"
    with pytest.raises(UndoLogError, match="is not a genreslice undo log"):
        read_undo_log(other)
    with pytest.raises(UndoLogError, match="cannot read the undo log"):
        read_undo_log(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="its folder does not exist"):
        UndoLog(tmp_path / "no such folder" / "undo.jsonl")
    log = UndoLog(tmp_path / "unused.jsonl")
    assert log.close(remove_if_empty=True) is False and not (tmp_path / "unused.jsonl").exists()


def test_the_module_does_not_import_tensorflow():
    code = "import sys, genreslice.pipeline.library_tags; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parents[2])
    assert result.stdout.strip() == "False", result.stderr


def test_v23_frames_that_id3v24_renamed_are_kept(tmp_path, sox_info):
    """iTunes writes sort-order frames (TSOP, TSOA, TSOT) into v2.3 tags; translating the tag to v2.4 and back, as
    mutagen does by default, drops them."""
    from mutagen.id3 import TSOA, TSOP, TSOT, TYER

    path = synth(tmp_path / "itunes.mp3", 1.0, "sine", "440")
    tags = ID3()
    for frame in (TIT2(encoding=1, text=["The title"]), TPE1(encoding=1, text=["The Artist"]),
                  TSOP(encoding=1, text=["Artist, The"]), TSOA(encoding=1, text=["Album, An"]),
                  TSOT(encoding=1, text=["title, The"]), TYER(encoding=1, text=["1999"])):
        tags.add(frame)
    tags.save(path, v2_version=3, v23_sep=None)
    write_genres(path, ["Jazz"])
    written = ID3(path, translate=False)
    assert written.version[:2] == (2, 3)
    assert sorted(written.keys()) == ["TCON", "TIT2", "TPE1", "TSOA", "TSOP", "TSOT", "TYER"]
    assert written["TSOP"].text == ["Artist, The"] and written["TCON"].text == ["Jazz"]


def test_a_file_changed_while_it_is_tagged_is_left_as_the_other_program_wrote_it(originals, tmp_path):
    path = tmp_path / "song.mp3"
    shutil.copy(original(originals, "id3v2.4.mp3"), path)

    def another_program_writes(change):
        tags = ID3(path)
        tags.add(TIT2(encoding=1, text=["Renamed meanwhile"]))
        tags.save(path)

    with pytest.raises(library_tags.FileChangedError, match="another program changed it while it was being tagged"):
        write_genres(path, ["Jazz"], before_replace=another_program_writes)
    assert ID3(path)["TIT2"].text == ["Renamed meanwhile"] and "TCON" not in ID3(path)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["song.mp3"]


def test_a_file_whose_owner_cannot_be_kept_is_refused(originals, request):
    """A user who may write a folder but not own another's file in it would make the file theirs: refused."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a file owned by another user")
    folder = Path(tempfile.mkdtemp(prefix="shared-"))  # pytest's own folders are closed to other users
    folder.chmod(0o777)
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    path = folder / "theirs.mp3"
    shutil.copy(original(originals, "id3v2.4.mp3"), path)
    path.chmod(0o666)
    before = path.read_bytes()
    code = ("import sys\nfrom genreslice.pipeline.library_tags import TagWriteError, write_genres\n"
            "try:\n    write_genres(sys.argv[1], ['Jazz'])\nexcept TagWriteError as err:\n    print(err.reason)\n")
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                             sys.executable, "-c", code, str(path)],
                            capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    if result.returncode != 0 and "setpriv" in result.stderr:
        pytest.skip(f"cannot run as another user here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("it belongs to another user (user 0), and a tagged copy would be yours")
    assert path.read_bytes() == before and path.stat().st_uid == 0
    assert sorted(entry.name for entry in folder.iterdir()) == ["theirs.mp3"]


def test_a_file_no_one_may_write_is_refused_even_for_root(originals, tmp_path):
    path = tmp_path / "locked.mp3"
    shutil.copy(original(originals, "id3v2.4.mp3"), path)
    path.chmod(0o444)
    before = path.read_bytes()
    assert library_tags.write_problem(path) == "the file is read-only; make it writable (chmod u+w) to tag it"
    with pytest.raises(TagWriteError, match="the file is read-only"):
        write_genres(path, ["Jazz"])
    assert path.read_bytes() == before


def test_a_full_disk_while_logging_is_reported_as_the_logs_failure(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full to stand for a full disk")
    log = UndoLog(tmp_path / "undo.jsonl")
    log._handle.close()
    log._handle = open("/dev/full", "w", encoding="utf-8")  # every flush: No space left on device
    with pytest.raises(UndoLogError, match="No space left on device; no file was changed without its record"):
        log.record(GenreChange(tmp_path / "a.mp3", "TCON", (), ("Jazz",)))
    assert log.close() is True  # the record still buffered is not flushed again into a bare OSError

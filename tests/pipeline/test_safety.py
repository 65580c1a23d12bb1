"""A built data set survives the mistakes and accidents of real machines: an empty, mistyped or unreadable audio
folder, failures that pass, damaged slices, journal and settings files, odd files in the audio folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mutagen.id3 import TCON
from mutagen.wave import WAVE

from genreslice.pipeline import layout
from genreslice.pipeline.build import BuildConfig, build_dataset
from genreslice.pipeline.errors import AudioFolderError, BuildLockedError, MissingAudioError, OutputError
from genreslice.pipeline.sox import SoxInfo
from tests.helpers import (LABELS, LabelsFromStems, hold_lock, read_csv, stop, tag_id3, tagged_mp3, tree_digest,
                           unprivileged)

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory, sox_info):
    """An untroubled build of the corpus, which every repaired build must equal byte for byte."""
    out = tmp_path_factory.mktemp("reference") / "out"
    build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    return out


@pytest.fixture
def built(reference, tmp_path):
    """A copy of the reference build (its journal included) to damage."""
    out = tmp_path / "built"
    shutil.copytree(reference, out)
    return out


def state_digest(out: Path) -> dict[str, bytes]:
    """Every file of a build, the journal and settings included."""
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(out.rglob("*"))
            if path.is_file() and path.name != "lock"}


def cli_build(audio: Path, out: Path, *options: str, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "genreslice", "build", str(audio), str(out),
                           "--no-progress", "--workers", "1", *options],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


# An empty, mistyped or unmounted audio folder

def test_an_empty_audio_folder_is_an_error_and_changes_nothing(built, tmp_path, sox_info):
    before = state_digest(built)
    empty = tmp_path / "unmounted"
    empty.mkdir()
    (empty / "readme.txt").write_text("not audio")
    with pytest.raises(AudioFolderError, match="no audio files .* in '.*unmounted'.*Nothing was built or changed"):
        build_dataset(empty, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert state_digest(built) == before
    with pytest.raises(AudioFolderError, match="no audio files"):
        build_dataset(empty, tmp_path / "new", LABELS, BuildConfig(workers=1), sox=sox_info)
    assert not (tmp_path / "new").exists()


def test_an_empty_audio_folder_exits_1_from_the_command_line(built, tmp_path):
    (tmp_path / "empty").mkdir()
    before = state_digest(built)
    result = cli_build(tmp_path / "empty", built)
    assert result.returncode == 1 and "no audio files" in result.stderr and "Traceback" not in result.stderr
    assert state_digest(built) == before


def test_a_folder_missing_most_built_tracks_is_refused_unless_confirmed(built, corpus, tmp_path, sox_info):
    other = tmp_path / "another folder"
    tagged_mp3(other / "new song.mp3", 6.0, "Rock", "Newcomer", "sine", "640")
    before = state_digest(built)
    with pytest.raises(MissingAudioError, match=r"holds 7 built tracks, and 7 of them would be dropped: 7 have no "
                                                r"audio file in .*--prune-missing"):
        build_dataset(other, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert state_digest(built) == before
    summary = build_dataset(other, built, LABELS, BuildConfig(workers=1), sox=sox_info, prune_missing=True)
    assert summary.removed == 7 and summary.status_counts["ok"] == 1
    assert len(list((built / "slices").rglob("*.png"))) == summary.n_slices == 2


def test_dropping_a_few_tracks_needs_no_confirmation(built, corpus, tmp_path, sox_info):
    audio = tmp_path / "audio"
    shutil.copytree(corpus, audio)  # copytree keeps the modification times: nothing is rendered again
    (audio / "rock/a1 - one.mp3").unlink()
    (audio / "jazz/a3 - four.mp3").unlink()
    summary = build_dataset(audio, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (summary.removed, summary.processed, summary.status_counts["ok"]) == (2, 0, 5)


@pytest.mark.slow
@pytest.mark.parametrize("mode, reason", [(0, "cannot read folder jazz/: Permission denied"),
                                          (0o644, "cannot examine the file: Permission denied")],
                         ids=["unreadable", "listed but not entered (chmod -R 644)"])
def test_a_folder_that_cannot_be_read_fails_its_tracks_and_keeps_their_slices(reference, corpus, tmp_path, mode,
                                                                               reason):
    prefix = unprivileged()
    audio, out = tmp_path / "audio", tmp_path / "out"
    shutil.copytree(corpus, audio)
    shutil.copytree(reference, out)
    jazz = {row["path"]: row for row in read_csv(reference / "tracks.csv") if row["path"].startswith("jazz/")}
    pngs = {path: path.read_bytes() for row in jazz.values()
            for path in (out / layout.track_slice_dir(row["track_id"])).glob("*.png")}
    assert len(jazz) == 2 and pngs
    (audio / "jazz").chmod(mode)
    try:
        result = cli_build(audio, out, prefix=prefix)
    finally:
        (audio / "jazz").chmod(0o755)
    assert result.returncode == 0, result.stderr
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    for path, before in jazz.items():
        assert rows[path]["status"] == "failed" and reason in rows[path]["reason"]
        assert (rows[path]["track_id"], rows[path]["genre"]) == (before["track_id"], "Jazz")
    assert "2 built tracks cannot be read now" in result.stdout
    assert ("1 folder could not be read (e.g. 'jazz/': Permission denied)" in result.stdout) == (mode == 0)
    assert {path: path.read_bytes() for path in pngs} == pngs  # every slice kept, unchanged
    assert not {row["track_id"] for row in read_csv(out / "slices.csv")} & {row["track_id"] for row in jazz.values()}
    again = cli_build(audio, out)  # readable again: back to the very same data set, nothing rendered
    assert again.returncode == 0 and "No audio work was needed" in again.stdout
    assert tree_digest(out) == tree_digest(reference)


@pytest.mark.slow
def test_an_unreadable_audio_folder_is_an_error(reference, corpus, tmp_path):
    prefix = unprivileged()
    audio, out = tmp_path / "audio", tmp_path / "out"
    shutil.copytree(corpus, audio)
    shutil.copytree(reference, out)
    before = state_digest(out)
    audio.chmod(0)
    try:
        result = cli_build(audio, out, prefix=prefix)
    finally:
        audio.chmod(0o755)
    assert result.returncode == 1 and "cannot read audio folder" in result.stderr and "Permission denied" in result.stderr
    assert state_digest(out) == before


# Failures that pass

def test_failed_tracks_are_tried_again(reference, corpus, tmp_path, sox_info):
    out = tmp_path / "out"
    first = build_dataset(corpus, out, LABELS, BuildConfig(workers=1, timeout_s=0.001), sox=sox_info)
    assert first.status_counts["failed"] == 8  # every track with a genre timed out
    second = build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (second.retried, second.processed) == (8, 8)
    assert tree_digest(out) == tree_digest(reference)


def test_a_file_sox_rejects_is_tried_again_only_when_asked_or_changed(tmp_path, sox_info):
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "good.mp3", 3.0, "Rock", "A")
    garbage = audio / "garbage.mp3"
    garbage.write_bytes(np.random.default_rng(3).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    tag_id3(garbage, genre="Rock", artist="B")  # a label, but no audio SoX can read
    build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    again = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (again.processed, again.retried) == (0, 0)
    forced = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info, retry_failed=True)
    assert (forced.processed, forced.retried) == (1, 1)
    os.utime(garbage, ns=(0, 0))  # a changed file is always done again
    changed = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (changed.processed, changed.retried) == (1, 0)


@pytest.mark.slow
def test_a_file_that_could_not_be_read_is_tried_again(tmp_path, sox_info):
    prefix = unprivileged()
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "good.mp3", 3.0, "Rock", "A")
    locked = tagged_mp3(audio / "locked.mp3", 3.0, "Jazz", "B", "sine", "700")
    locked.chmod(0)
    result = cli_build(audio, out, prefix=prefix)
    assert result.returncode == 0, result.stderr
    row = {row["path"]: row for row in read_csv(out / "tracks.csv")}["locked.mp3"]
    assert (row["status"], row["reason"]) == ("failed", "cannot read the file: Permission denied")
    locked.chmod(0o644)  # a permission change leaves size and modification time as they were
    again = cli_build(audio, out, prefix=prefix)
    assert again.returncode == 0 and "This run: 1 track" in again.stdout
    assert {row["path"]: row["status"] for row in read_csv(out / "tracks.csv")} == {"good.mp3": "ok",
                                                                                    "locked.mp3": "ok"}


# Damaged files of an earlier run

@pytest.mark.parametrize("damage", ["empty", "cut", "grown", "deleted", "extra"])
def test_damaged_or_missing_slices_are_rendered_again(built, reference, corpus, sox_info, damage):
    victim = sorted((built / "slices").rglob("*.png"))[3]
    if damage == "empty":
        victim.write_bytes(b"")
    elif damage == "cut":
        victim.write_bytes(victim.read_bytes()[:-100])
    elif damage == "grown":
        victim.write_bytes(victim.read_bytes() + b"\0")
    elif damage == "deleted":
        victim.unlink()
    else:
        victim.with_name("stray.png").write_bytes(b"x")
    summary = build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (summary.processed, summary.repaired) == (1, 1)
    assert tree_digest(built) == tree_digest(reference)


@pytest.mark.parametrize("line", [
    '{"path": "PATH", "status": null, "track_id": "TRACK"}',
    '{"path": "PATH", "status": "ok", "n_slices": "eleven"}',
    '{"path": "PATH", "status": "ok"}',
    '["not", "an", "object"]',
    '\x00\x01 garbage',
])
def test_a_damaged_journal_line_counts_as_absent_never_as_a_deletion(built, reference, corpus, sox_info, line,
                                                                      caplog):
    row = next(row for row in read_csv(built / "tracks.csv") if row["status"] == "ok")
    folder = built / layout.track_slice_dir(row["track_id"])
    pngs = {path: path.read_bytes() for path in folder.glob("*.png")}
    journal = built / layout.STATE_DIR / "journal.jsonl"
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(line.replace("PATH", row["path"]).replace("TRACK", row["track_id"]) + "\n")
    # Rendering the track again fails (it times out): its slices must still be there, untouched.
    failing = build_dataset(corpus, built, LABELS, BuildConfig(workers=1, timeout_s=0.001), sox=sox_info)
    assert {path: path.read_bytes() for path in folder.glob("*.png")} == pngs
    assert "ignoring line 9 of" in caplog.text
    # A line naming the track makes it rendered again (its earlier record is not trusted); garbage changes nothing.
    assert failing.processed == (1 if "PATH" in line else 0)
    caplog.clear()  # the damaged line was reported once and is gone from the journal
    build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert "ignoring line" not in caplog.text and tree_digest(built) == tree_digest(reference)


def test_damaged_settings_are_recovered_from_dataset_json(built, reference, corpus, sox_info, caplog):
    settings = built / layout.STATE_DIR / "settings.json"
    expected = settings.read_bytes()
    settings.write_bytes(expected[:40])  # truncated by a crash or a full disk
    summary = build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert summary.processed == 0 and "recovered the build settings" in caplog.text
    assert settings.read_bytes() == expected and tree_digest(built) == tree_digest(reference)


def test_damaged_settings_and_dataset_json_are_a_clear_error(built, corpus, sox_info):
    (built / layout.STATE_DIR / "settings.json").write_text("{not json")
    (built / "dataset.json").write_text("")
    before = state_digest(built)
    with pytest.raises(OutputError, match=r"cannot read the settings of the earlier build .*settings.json.*"
                                          r"dataset.json.*delete .*settings.json and .*dataset.json"):
        build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert state_digest(built) == before


# Odd files in the audio folder

def test_every_odd_file_gets_a_row_with_its_true_reason(tmp_path, sox_info):
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "good.mp3", 3.0, "Rock", "A")
    one_sample = audio / "one sample.wav"
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "1", str(one_sample), "synth", "1s", "sine", "440"], check=True,
                   capture_output=True, timeout=60)
    os.mkfifo(audio / "pipe.mp3")
    os.mkfifo(audio / "raw pipe")
    os.symlink("raw pipe", audio / "link to a pipe.mp3")
    (audio / "random.mp3").write_bytes(np.random.default_rng(5).integers(0, 256, 5_000, dtype=np.uint8).tobytes())
    (audio / "text.ogg").write_text("not audio at all\n")
    devices = []
    try:
        os.mknod(audio / "device.wav", 0o600 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
        devices.append("device.wav")
    except (PermissionError, OSError):
        pass  # creating devices needs privileges; the pipes are checked either way
    wave = WAVE(one_sample)
    wave.add_tags()
    wave.tags.add(TCON(encoding=3, text=["Rock"]))
    wave.save()
    build_dataset(audio, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    rows = {row["path"]: (row["status"], row["reason"]) for row in read_csv(out / "tracks.csv")}
    assert rows["good.mp3"] == ("ok", "")
    assert rows["one sample.wav"] == ("too_short", "0 s of audio is shorter than one slice (2.55 s)")
    assert rows["pipe.mp3"] == ("failed", "a named pipe (FIFO), not a regular file")
    assert rows["link to a pipe.mp3"] == ("failed", "a symbolic link to a named pipe (FIFO)")
    for name in ("random.mp3", "text.ogg"):
        assert rows[name][0] == "failed" and rows[name][1].startswith("not readable as audio with tags"), name
    for name in devices:
        assert rows[name] == ("failed", "a character device, not a regular file")
    assert len(rows) == 6 + len(devices)


def test_a_build_is_refused_while_a_training_reads_the_data_set(built, corpus, sox_info):
    reader = hold_lock(built / layout.STATE_DIR / "lock", shared=True)
    try:
        before = state_digest(built)
        with pytest.raises(BuildLockedError, match=rf"a training or evaluation is reading the data set in .* "
                                                   rf"\(process {reader.pid}\).*Wait for it to finish"):
            build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
        assert state_digest(built) == before
    finally:
        stop(reader)


def test_folders_the_journal_does_not_know_are_kept_unless_asked(built, tmp_path, sox_info):
    """A journal damaged beyond use, then a build from another folder: nothing says the old folders are gone, so
    they stay; --prune-missing removes them."""
    journal = built / layout.STATE_DIR / "journal.jsonl"
    journal.write_bytes(b"\x00garbage\n" * len(journal.read_bytes().splitlines()))
    pngs = {path: path.read_bytes() for path in (built / "slices").rglob("*.png")}
    other = tmp_path / "other"
    tagged_mp3(other / "new.mp3", 3.0, "Rock", "Newcomer", "sine", "640")
    summary = build_dataset(other, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert summary.unowned == 7 and summary.processed == 1
    assert all(path.read_bytes() == data for path, data in pngs.items())
    pruned = build_dataset(other, built, LABELS, BuildConfig(workers=1), sox=sox_info, prune_missing=True)
    assert pruned.unowned == 0 and len(list((built / "slices").rglob("*.png"))) == 1


def test_no_audio_but_in_folders_that_cannot_be_read_is_an_error(tmp_path):
    prefix = unprivileged()
    audio = tmp_path / "audio"
    tagged_mp3(audio / "private/song.mp3", 3.0, "Rock", "A")
    (audio / "private").chmod(0)
    try:
        result = cli_build(audio, tmp_path / "out", prefix=prefix)
    finally:
        (audio / "private").chmod(0o755)
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert "that could be read (cannot read 1 folder: 'private/': Permission denied)" in result.stderr


@pytest.mark.slow
def test_a_file_the_audio_work_cannot_read_is_tried_again(tmp_path):
    prefix = unprivileged()
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "good.mp3", 3.0, None, None)
    locked = tagged_mp3(audio / "locked.mp3", 3.0, None, None, "sine", "700")
    code = ("import sys\n"
            "from genreslice.pipeline.build import BuildConfig, build_dataset\n"
            "from tests.helpers import LabelsFromNames\n"
            "summary = build_dataset(sys.argv[1], sys.argv[2], LabelsFromNames(), BuildConfig(workers=1))\n"
            "print(summary.processed, summary.retried)\n")
    run = [*prefix, sys.executable, "-c", code, str(audio), str(out)]
    locked.chmod(0)
    first = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    row = {row["path"]: row for row in read_csv(out / "tracks.csv")}["locked.mp3"]
    assert (row["status"], row["reason"]) == ("failed", "cannot read the file: Permission denied")
    locked.chmod(0o644)
    second = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    assert (first.stdout.split(), second.stdout.split()) == (["2", "0"], ["1", "1"])


def sox_that_dies_by(signal_name: str, folder: Path, sox_info) -> SoxInfo:
    """A SoX that kills itself with ``signal_name`` on a file named ``victim.mp3``."""
    folder.mkdir()
    wrapper = folder / "sox"
    wrapper.write_text(f"#!/bin/sh\ncase \"$*\" in *victim*) kill -{signal_name} $$;; esac\nexec {sox_info.path} \"$@\"\n")
    wrapper.chmod(0o755)
    return SoxInfo(path=os.fspath(wrapper), version=sox_info.version, formats=sox_info.formats)


@pytest.mark.parametrize("signal_name, transient", [("KILL", True), ("TERM", True), ("SEGV", False),
                                                    ("ABRT", False)])
def test_sox_killed_from_outside_is_tried_again_and_a_crash_is_not(tmp_path, sox_info, signal_name, transient):
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "good.mp3", 3.0, "Rock", "A")
    tagged_mp3(audio / "victim.mp3", 3.0, "Rock", "B", "sine", "600")
    sox = sox_that_dies_by(signal_name, tmp_path / "bin", sox_info)
    build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox)
    row = {row["path"]: row for row in read_csv(out / "tracks.csv")}["victim.mp3"]
    assert row["status"] == "failed" and row["reason"].startswith(f"SoX was killed by SIG{signal_name}")
    again = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox)
    assert (again.retried, again.not_retried) == ((1, 0) if transient else (0, 1))


def test_a_passing_failure_is_tried_three_times_in_all(tmp_path, sox_info):
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "victim.mp3", 3.0, "Rock", "B")
    sox = sox_that_dies_by("KILL", tmp_path / "bin", sox_info)
    runs = [build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox) for _ in range(4)]
    assert [(run.processed, run.retried, run.not_retried) for run in runs] == [(1, 0, 0), (1, 1, 0), (1, 1, 0),
                                                                               (0, 0, 1)]
    forced = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox, retry_failed=True)
    assert forced.retried == 1


def test_a_full_disk_while_writing_the_journal_names_it(built, corpus, tmp_path):
    """A real write failure: the file size limit (``RLIMIT_FSIZE``) stops the journal from growing, as a full
    disk would; the slices and tables stay under the limit."""
    import resource
    import signal as signals

    journal = built / layout.STATE_DIR / "journal.jsonl"
    old = json.loads(journal.read_bytes().splitlines()[0])
    with open(journal, "a", encoding="utf-8") as handle:  # records of files long gone: a journal larger than a slice
        for number in range(100):
            handle.write(json.dumps({**old, "path": f"gone {number}.mp3", "status": "failed", "n_slices": 0,
                                     "slice_bytes": []}) + "\n")
    limit = journal.stat().st_size + 200  # room for no more than half a line
    victim = next(row for row in read_csv(built / "tracks.csv") if row["status"] == "ok")
    shutil.rmtree(built / layout.track_slice_dir(victim["track_id"]))  # one track to render again

    def limited() -> None:
        signals.signal(signals.SIGXFSZ, signals.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "genreslice", "build", str(corpus), str(built), "--no-progress",
                             "--workers", "1"], capture_output=True, text=True, timeout=120, cwd=ROOT,
                            preexec_fn=limited)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write the build journal {journal}: File too large" in result.stderr
    assert cli_build(corpus, built).returncode == 0  # the limit lifted: the run resumes


@pytest.mark.parametrize("trouble", ["damaged slice", "changed file", "unreadable folder"])
def test_a_built_track_keeps_its_id_against_a_newcomer_whatever_befalls_it(tmp_path, sox_info, trouble):
    audio, out = tmp_path / "audio", tmp_path / "out"
    tagged_mp3(audio / "b/000002.mp3", 6.0, None, None, "sine", "500")
    for number in (10, 11):  # so that one track in trouble is not most of the data set
        tagged_mp3(audio / f"c/{number}.mp3", 3.0, None, None, "sine", f"{300 + number}")
    build_dataset(audio, out, LabelsFromStems(), BuildConfig(workers=1), sox=sox_info)
    folder = out / layout.track_slice_dir("2")
    pngs = {path.name: path.read_bytes() for path in folder.glob("*.png")}
    tagged_mp3(audio / "a/2.mp3", 3.0, None, None, "square", "900")  # sorts first, claims track 2 too
    if trouble == "damaged slice":
        next(iter(folder.glob("*.png"))).write_bytes(b"")
    elif trouble == "changed file":
        os.utime(audio / "b/000002.mp3", ns=(0, 0))
    if trouble == "unreadable folder":
        code = ("import sys\n"
                "from genreslice.pipeline.build import BuildConfig, build_dataset\n"
                "from tests.helpers import LabelsFromStems\n"
                "build_dataset(sys.argv[1], sys.argv[2], LabelsFromStems(), BuildConfig(workers=1))\n")
        (audio / "b").chmod(0o644)  # listed, not entered
        try:
            subprocess.run([*unprivileged(), sys.executable, "-c", code, str(audio), str(out)], capture_output=True,
                           text=True, timeout=120, cwd=ROOT, check=True)
        finally:
            (audio / "b").chmod(0o755)
    else:
        build_dataset(audio, out, LabelsFromStems(), BuildConfig(workers=1), sox=sox_info)
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert (rows["a/2.mp3"]["status"], rows["a/2.mp3"]["reason"]) == ("failed", "track id 2 is also used by b/000002.mp3")
    assert {path.name: path.read_bytes() for path in folder.glob("*.png")} == pngs  # never the newcomer's slices


@pytest.mark.slow
def test_files_gone_from_a_folder_left_empty_are_kept_as_on_an_unmounted_drive(reference, corpus, tmp_path,
                                                                               sox_info):
    audio, out = tmp_path / "audio", tmp_path / "out"
    shutil.copytree(corpus, audio)
    shutil.copytree(reference, out)
    for path in (audio / "jazz").iterdir():  # the drive mounted at jazz/ is gone: an empty mount point
        path.unlink()
    summary = build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert (summary.removed, summary.unreachable) == (0, 2)
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert rows["jazz/a3 - four.mp3"]["reason"] == "folder jazz/ is empty now (an unmounted drive?)"
    shutil.rmtree(audio / "jazz")
    shutil.copytree(corpus / "jazz", audio / "jazz")  # mounted again
    assert build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info).processed == 0
    assert tree_digest(out) == tree_digest(reference)

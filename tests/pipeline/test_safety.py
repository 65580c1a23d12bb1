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

from pipeline import layout
from pipeline.build import BuildConfig, build_dataset
from pipeline.errors import AudioFolderError, BuildLockedError, MissingAudioError, OutputError
from tests.audio import tag_id3, tagged_mp3
from tests.pipeline.test_build import LABELS, make_corpus, read_csv, tree_digest
from tests.processes import unprivileged

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sox_info):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


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
    return subprocess.run([*prefix, sys.executable, "-m", "scripts.cli", "build", str(audio), str(out),
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
def test_an_unreadable_folder_fails_its_tracks_and_keeps_their_slices(reference, corpus, tmp_path):
    prefix = unprivileged()
    audio, out = tmp_path / "audio", tmp_path / "out"
    shutil.copytree(corpus, audio)
    shutil.copytree(reference, out)
    jazz = {row["path"]: row for row in read_csv(reference / "tracks.csv") if row["path"].startswith("jazz/")}
    pngs = {path: path.read_bytes() for row in jazz.values()
            for path in (out / layout.track_slice_dir(row["track_id"])).glob("*.png")}
    assert len(jazz) == 2 and pngs
    (audio / "jazz").chmod(0)
    try:
        result = cli_build(audio, out, prefix=prefix)
    finally:
        (audio / "jazz").chmod(0o755)
    assert result.returncode == 0, result.stderr
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    for path, before in jazz.items():
        assert (rows[path]["status"], rows[path]["reason"]) == ("failed", "cannot read folder jazz/: Permission denied")
        assert (rows[path]["track_id"], rows[path]["genre"]) == (before["track_id"], "Jazz")
    assert "2 built tracks are in folders that could not be read" in result.stdout
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
    pngs = sorted((built / layout.track_slice_dir(row["track_id"])).glob("*.png"))
    journal = built / layout.STATE_DIR / "journal.jsonl"
    with open(journal, "a", encoding="utf-8") as handle:
        handle.write(line.replace("PATH", row["path"]).replace("TRACK", row["track_id"]) + "\n")
    summary = build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert tree_digest(built) == tree_digest(reference)  # the track's slices are all there
    assert all(png.stat().st_size for png in pngs)
    assert "ignoring line 9 of" in caplog.text
    # A line naming the track makes it rendered again (its earlier record is not trusted); garbage changes nothing.
    assert summary.processed == (1 if "PATH" in line else 0)


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
    code = ("import sys, time\n"
            "from pipeline import layout\n"
            "with layout.shared_lock(sys.argv[1]) as held:\n"
            "    print('held' if held else 'not held', flush=True)\n"
            "    time.sleep(120)\n")
    reader = subprocess.Popen([sys.executable, "-c", code, os.fspath(built / layout.STATE_DIR / "lock")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert reader.stdout.readline().strip() == "held"
        before = state_digest(built)
        with pytest.raises(BuildLockedError, match=rf"a training or evaluation is reading the data set in .* "
                                                   rf"\(process {reader.pid}\).*Wait for it to finish"):
            build_dataset(corpus, built, LABELS, BuildConfig(workers=1), sox=sox_info)
        assert state_digest(built) == before
    finally:
        reader.kill()
        reader.wait()

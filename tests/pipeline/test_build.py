"""End-to-end builds on generated audio: real files in, real files out."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genreslice.genre_getters import Id3LabelSource
from genreslice.pipeline import layout
from genreslice.pipeline.build import BuildConfig, build_dataset
from genreslice.pipeline.errors import BuildLockedError, OutputError, SettingsMismatchError
from genreslice.pipeline.journal import JournalRecord
from genreslice.pipeline.plan import GenreSelection
from genreslice.pipeline.sox import SoxInfo
from genreslice.pipeline.tracks import TRACK_COLUMNS, TrackRow
from tests.helpers import (LABELS, artist_in_split, hold_lock, music, near_copy, read_csv, synth, tag_id3,
                           tagged_mp3, tree_digest)


@pytest.fixture(scope="module")
def built(corpus, tmp_path_factory, sox_info):
    out = tmp_path_factory.mktemp("built") / "out"
    summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    return out, summary


def test_tracks_csv_has_a_row_per_file_with_status_and_reason(built):
    out, summary = built
    rows = read_csv(out / "tracks.csv")
    assert list(rows[0]) == list(layout.TRACK_COLUMNS)
    by_path = {row["path"]: row for row in rows}
    assert sorted(by_path) == [row["path"] for row in rows]  # deterministic order
    assert len(rows) == 9
    assert by_path["untagged.mp3"]["status"] == "skipped" and by_path["untagged.mp3"]["reason"] == "no genre tag"
    short = by_path["pop/short.mp3"]
    assert short["status"] == "too_short" and short["n_slices"] == "0"
    assert float(short["duration_s"]) == pytest.approx(1.5, abs=0.05) and "shorter than one slice" in short["reason"]
    rock = by_path["rock/a1 - two.mp3"]
    assert (rock["genre"], rock["artist"], rock["status"], rock["n_slices"]) == ("Rock", "artist one", "ok", "2")
    assert float(rock["duration_s"]) == pytest.approx(6.0, abs=0.05)
    assert summary.status_counts == {"ok": 7, "failed": 0, "skipped": 1, "too_short": 1}


def read_back(out: Path) -> tuple[list[TrackRow], list[JournalRecord]]:
    """``tracks.csv`` and the journal as the typed rows and records, checked to write the same bytes again."""
    rows = [TrackRow.from_csv_row(record) for record in read_csv(out / layout.TRACKS_CSV)]
    written = (out / layout.TRACKS_CSV).read_bytes().decode("utf-8")  # bytes: \r in names must stay \r
    assert layout.csv_text(TRACK_COLUMNS, [row.to_csv_row() for row in rows]) == written
    lines = (out / layout.STATE_DIR / "journal.jsonl").read_text(encoding="ascii").splitlines()
    records = [JournalRecord.from_json(json.loads(line)) for line in lines]
    assert [json.dumps(record.to_json(), sort_keys=True) for record in records] == lines
    return rows, records


def test_track_rows_and_journal_records_round_trip_the_files(built, corpus):
    out, _ = built
    rows, records = read_back(out)
    assert TRACK_COLUMNS == layout.TRACK_COLUMNS and len(rows) == 9
    # The journal holds the final row of every track with audio work, and what a later run checks.
    rendered = {row.path: row for row in rows if row.status in ("ok", "too_short")}
    assert {record.row.path: record.row for record in records} == rendered and len(rendered) == 8
    for record in records:
        status = (corpus / record.row.path).stat()
        assert (record.size, record.mtime_ns) == (status.st_size, status.st_mtime_ns)
        pngs = [out / layout.slice_path(record.row.track_id, index) for index in range(record.row.n_slices)]
        assert record.slice_bytes == tuple(png.stat().st_size for png in pngs)
        assert record.transient is False and record.attempts == 1


def test_slices_csv_and_pngs_match(built):
    out, summary = built
    tracks = {row["track_id"]: row for row in read_csv(out / "tracks.csv")}
    slices = read_csv(out / "slices.csv")
    slice_seconds = json.loads((out / "dataset.json").read_text())["spectrogram"]["slice_seconds"]
    assert slice_seconds == pytest.approx(128 / 50.1136, abs=1e-4)  # SoX's real column rate at 22050 Hz
    assert list(slices[0]) == list(layout.SLICE_COLUMNS)
    assert len(slices) == summary.n_slices == sum(int(t["n_slices"]) for t in tracks.values())
    for row in slices:
        track = tracks[row["track_id"]]
        assert (row["genre"], row["split"]) == (track["genre"], track["split"])
        assert float(row["start_s"]) == pytest.approx(int(row["index"]) * slice_seconds, abs=0.006)
        with Image.open(out / row["path"]) as image:
            assert image.mode == "L" and image.size == (128, 128)
            assert np.asarray(image).max() > 100  # real spectrogram content, not blank
    pngs = sorted(p.relative_to(out).as_posix() for p in (out / "slices").rglob("*.png"))
    assert pngs == sorted(row["path"] for row in slices)


def test_slice_pixels_are_the_spectrogram(built, corpus, sox_info):
    from genreslice.pipeline.slicing import slice_spectrogram
    from genreslice.pipeline.spectrogram import SpectrogramSpec, render_spectrogram

    out, _ = built
    track = next(row for row in read_csv(out / "tracks.csv") if row["path"] == "rock/a2 - three.mp3")
    expected = slice_spectrogram(render_spectrogram(corpus / track["path"], SpectrogramSpec()), 128)
    for index in range(int(track["n_slices"])):
        with Image.open(out / layout.slice_path(track["track_id"], index)) as image:
            assert np.array_equal(np.asarray(image), expected[index])


def test_dataset_json(built, sox_info):
    out, summary = built
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["format_version"] == 1
    assert dataset["classes"] == ["Jazz", "Pop", "Rock"] == summary.classes
    spectrogram = dataset["spectrogram"]
    # The sox block of every earlier version, no key added (mel blocks add features and mel), so data sets and
    # models stay compatible across versions.
    assert sorted(spectrogram) == ["columns_per_second", "format_version", "height_target", "pixels_per_second",
                                   "resample_quality", "sample_rate", "slice_seconds", "slice_size", "sox_effects",
                                   "sox_version"]
    assert spectrogram["format_version"] == 1
    assert (spectrogram["sample_rate"], spectrogram["pixels_per_second"], spectrogram["slice_size"]) == (22050, 50, 128)
    assert spectrogram["sox_version"] == sox_info.version and spectrogram["resample_quality"] == "high"
    tracks = read_csv(out / "tracks.csv")
    for split in ("train", "validation", "test"):
        for genre in dataset["classes"]:
            ok = [t for t in tracks if t["status"] == "ok" and t["split"] == split and t["genre"] == genre]
            assert dataset["counts"]["tracks"][split][genre] == len(ok)
            assert dataset["counts"]["slices"][split][genre] == sum(int(t["n_slices"]) for t in ok)
    assert dataset["totals"] == {"files": 9, "ok": 7, "failed": 0, "skipped": 1, "too_short": 1, "slices": 15}


def test_no_artist_in_two_splits(built):
    out, _ = built
    splits_by_artist: dict[str, set] = {}
    for row in read_csv(out / "tracks.csv"):
        if row["status"] == "ok" and row["artist"]:
            splits_by_artist.setdefault(row["artist"].casefold(), set()).add(row["split"])
    assert splits_by_artist and all(len(splits) == 1 for splits in splits_by_artist.values())


def test_same_output_whatever_the_worker_count(built, corpus, tmp_path, sox_info):
    out, _ = built
    single = tmp_path / "single"
    build_dataset(corpus, single, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert tree_digest(single) == tree_digest(out)


def test_rerun_of_finished_build_does_no_audio_work(built, corpus, sox_info):
    out, _ = built
    before = tree_digest(out)
    png_times = {p: p.stat().st_mtime_ns for p in (out / "slices").rglob("*.png")}
    summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    assert summary.processed == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "slices").rglob("*.png")} == png_times
    assert tree_digest(out) == before


def test_changed_and_deleted_files_are_redone_and_pruned(corpus, tmp_path, sox_info):
    audio = tmp_path / "audio"
    shutil.copytree(corpus, audio)
    out = tmp_path / "out"
    build_dataset(audio, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    gone = {row["path"]: row for row in read_csv(out / "tracks.csv")}["rock/a2 - three.mp3"]
    (audio / "rock/a2 - three.mp3").unlink()
    tagged_mp3(audio / "jazz/a4 - five.mp3", 11.0, "Jazz", "Artist Four", "sine", "800")  # replaced content
    summary = build_dataset(audio, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    assert summary.processed == 1
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert "rock/a2 - three.mp3" not in rows and rows["jazz/a4 - five.mp3"]["n_slices"] == "4"
    assert not (out / layout.track_slice_dir(gone["track_id"])).exists()
    fresh = tmp_path / "fresh"
    build_dataset(audio, fresh, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert tree_digest(fresh) == tree_digest(out)


HOSTILE_OK = [
    "with space.mp3", "it's \"quoted\".mp3", "$(touch PWNED).mp3", "-rf.mp3", "--help.mp3", "Ünïcødé 音楽.mp3",
    "[brackets]*?.mp3", "semi;colon&amp.MP3", "new\nline.mp3", "carriage\rreturn.mp3", "tab\there.mp3",
    "comma, then more.mp3", "both\r\nends.mp3",
]


def test_hostile_folder(tmp_path, sox_info):
    audio = tmp_path / "hostile"
    audio.mkdir()
    for index, name in enumerate(HOSTILE_OK):
        tagged_mp3(audio / name, 3.0, "Rock", f"Artist {index}", "sine", f"{400 + 50 * index}")
    (audio / "empty.mp3").write_bytes(b"")
    rng = np.random.default_rng(7)
    (audio / "random.mp3").write_bytes(rng.integers(0, 256, 80_000, dtype=np.uint8).tobytes())
    random_tagged = audio / "random tagged.mp3"
    random_tagged.write_bytes(rng.integers(0, 256, 80_000, dtype=np.uint8).tobytes())
    tag_id3(random_tagged, genre="Rock", artist="Noise")  # labels fine, audio is garbage
    (audio / "text.flac").write_text("this is not audio\n" * 100)
    full = tagged_mp3(audio / "full.mp3", 10.0, "Jazz", "Truncated Artist", "sine", "600")
    (audio / "truncated.mp3").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (audio / "random.wav").write_bytes(rng.integers(0, 256, 5_000, dtype=np.uint8).tobytes())
    (audio / "unknown genre.mp3").write_bytes(full.read_bytes())
    tag_id3(audio / "unknown genre.mp3", genre="(255)", artist="Somebody")
    (audio / "notes.txt").write_text("not discovered")
    os.symlink(audio / "vanished.mp3", audio / "dangling link.mp3")
    latin1 = os.fsdecode(b"caf\xe9 latin-1.mp3")  # not valid UTF-8, as old Windows rips are
    tagged_mp3(audio / latin1, 3.0, "Rock", "Latin", "sine", "350")
    out = tmp_path / "out"
    summary = build_dataset(audio, out, LABELS, BuildConfig(workers=2, timeout_s=60), sox=sox_info)
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert len(rows) == len(HOSTILE_OK) + 10 and "notes.txt" not in rows
    for name in HOSTILE_OK:
        assert (rows[name]["status"], rows[name]["n_slices"]) == ("ok", "1"), name
    assert rows["empty.mp3"]["status"] == "failed" and "empty file" in rows["empty.mp3"]["reason"]
    assert rows["random tagged.mp3"]["status"] == "failed" and "SoX" in rows["random tagged.mp3"]["reason"]
    for name in ["random.mp3", "random.wav", "text.flac"]:  # could not be processed, not merely unlabelled
        assert rows[name]["status"] == "failed" and rows[name]["reason"], name
    assert rows["unknown genre.mp3"]["status"] == "skipped" and "unknown genre" in rows["unknown genre.mp3"]["reason"]
    assert rows["truncated.mp3"]["status"] == "ok" and int(rows["truncated.mp3"]["n_slices"]) >= 1
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    assert rows["dangling link.mp3"]["status"] == "failed" and "broken symbolic link" in rows["dangling link.mp3"]["reason"]
    assert rows["caf\\xe9 latin-1.mp3"]["status"] == "ok"  # the CSV stays valid UTF-8, the odd byte escaped
    import pandas as pd
    # Every name round-trips through pandas too: a bare \r would split a row in two there.
    assert sorted(pd.read_csv(out / "tracks.csv", keep_default_na=False, dtype=str)["path"]) == sorted(rows)
    assert summary.status_counts["ok"] == len(HOSTILE_OK) + 3
    _, records = read_back(out)  # names with \r, \n, quotes and an odd byte; failures with their attempts
    failed = {record.row.path: record for record in records if record.row.status == "failed"}
    assert failed["random tagged.mp3"].attempts == 1 and failed["random tagged.mp3"].transient is False
    assert {record.row.path for record in records} >= {latin1, *HOSTILE_OK}


def test_lock_refuses_a_second_build(corpus, tmp_path, sox_info):
    out = tmp_path / "out"
    (out / layout.STATE_DIR).mkdir(parents=True)
    holder = hold_lock(out / layout.STATE_DIR / "lock")
    try:
        with pytest.raises(BuildLockedError, match="another build is running"):
            build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "tracks.csv").exists()
    build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)  # the holder is gone: builds
    assert (out / "tracks.csv").exists()


def test_different_settings_are_refused_and_nothing_changes(built, corpus, sox_info):
    from genreslice.pipeline.spectrogram import SpectrogramSpec

    out, _ = built
    before = tree_digest(out)
    with pytest.raises(SettingsMismatchError, match="pixels_per_second: built with 50, now 25"):
        build_dataset(corpus, out, LABELS, BuildConfig(spec=SpectrogramSpec(pixels_per_second=25)), sox=sox_info)
    mel = SpectrogramSpec(features="mel")
    with pytest.raises(SettingsMismatchError, match=r"\(spectrogram.features: built with 'sox', now 'mel'\)"):
        build_dataset(corpus, out, LABELS, BuildConfig(spec=mel), sox=sox_info)
    newer_sox = SoxInfo(path=sox_info.path, version="99.0", formats=sox_info.formats)
    with pytest.raises(SettingsMismatchError, match="sox_version"):
        build_dataset(corpus, out, LABELS, BuildConfig(), sox=newer_sox)
    assert tree_digest(out) == before


def test_labels_selection_and_ratios_may_change_without_audio_work(built, corpus, tmp_path, sox_info):
    """Slices depend on the audio and the spectrogram settings only: a re-run with other split ratios or another
    genre selection re-derives the tables, renders nothing, and keeps the slices of tracks it leaves out."""
    out = tmp_path / "copy"
    shutil.copytree(built[0], out)
    png_times = {p: p.stat().st_mtime_ns for p in (out / "slices").rglob("*.png")}
    only_jazz = build_dataset(corpus, out, LABELS, BuildConfig(split_ratios=(0.5, 0.25, 0.25)), sox=sox_info,
                              selection=GenreSelection(genres=("jazz",)))
    assert only_jazz.processed == 0 and only_jazz.classes == ["Jazz"]
    rows = read_csv(out / "tracks.csv")
    assert {row["genre"] for row in rows if row["status"] == "ok"} == {"Jazz"}
    assert {row["reason"] for row in rows if row["genre"] in ("Rock", "Pop") and row["status"] == "skipped"} \
        == {"genre Rock is not selected (--genres)", "genre Pop is not selected (--genres)"}
    assert {row["track_id"] for row in read_csv(out / "slices.csv")} == \
        {row["track_id"] for row in rows if row["status"] == "ok"}
    assert json.loads((out / "dataset.json").read_text())["splits"]["ratios"] == \
        {"train": 0.5, "validation": 0.25, "test": 0.25}
    assert {p: p.stat().st_mtime_ns for p in (out / "slices").rglob("*.png")} == png_times  # nothing pruned
    again = build_dataset(corpus, out, LABELS, BuildConfig(workers=2), sox=sox_info)
    assert again.processed == 0 and tree_digest(out) == tree_digest(built[0])


def test_foreign_or_unwritable_output_is_refused(corpus, tmp_path, sox_info):
    foreign = tmp_path / "my documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not empty"):
        build_dataset(corpus, foreign, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        build_dataset(corpus, a_file / "out", LABELS, BuildConfig(workers=1), sox=sox_info)


def test_track_that_kills_its_worker_is_recorded_and_the_build_completes(corpus, tmp_path, sox_info):
    # A SoX wrapper that kills the worker process calling it when the file name contains "killer".
    wrapper = tmp_path / "bin" / "sox"
    wrapper.parent.mkdir()
    wrapper.write_text(
        "#!/bin/sh\n"
        "for arg in \"$@\"; do case \"$arg\" in *killer*) kill -9 $PPID; exit 1;; esac; done\n"
        f"exec {sox_info.path} \"$@\"\n"
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    audio = tmp_path / "audio"
    shutil.copytree(corpus, audio)
    tagged_mp3(audio / "killer.mp3", 3.0, "Rock", "Bad Actor")
    out = tmp_path / "out"
    summary = build_dataset(audio, out, LABELS, BuildConfig(workers=2),
                            sox=SoxInfo(path=os.fspath(wrapper), version=sox_info.version, formats=sox_info.formats))
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert rows["killer.mp3"]["status"] == "failed" and "worker process died 2 times" in rows["killer.mp3"]["reason"]
    assert summary.status_counts["ok"] == 7


def test_deleted_slice_folder_is_rebuilt(corpus, tmp_path, sox_info):
    out = tmp_path / "out"
    build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    before = tree_digest(out)
    victim = next(row for row in read_csv(out / "tracks.csv") if row["status"] == "ok")
    shutil.rmtree(out / layout.track_slice_dir(victim["track_id"]))
    summary = build_dataset(corpus, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert summary.processed == 1 and tree_digest(out) == before


class LabelKillsItsWorker(Id3LabelSource):
    """Labels like id3, but a worker process that reads ``t03.mp3`` dies (the main process is spared)."""

    def __init__(self, main_pid: int) -> None:
        super().__init__()
        self.main_pid = main_pid

    def label(self, path, rel_path):
        if rel_path.endswith("t03.mp3") and os.getpid() != self.main_pid:
            os.kill(os.getpid(), 9)
        return LABELS.label(path, rel_path)


def test_worker_dying_while_reading_labels_loses_no_track(tmp_path, sox_info):
    audio = tmp_path / "audio"
    for index in range(10):
        tagged_mp3(audio / f"t{index:02d}.mp3", 3.0, "Rock", f"A{index}", "sine", f"{300 + 40 * index}")
    out = tmp_path / "out"
    summary = build_dataset(audio, out, LabelKillsItsWorker(os.getpid()), BuildConfig(workers=2), sox=sox_info)
    assert summary.status_counts["ok"] == 10
    reference = tmp_path / "reference"
    build_dataset(audio, reference, LABELS, BuildConfig(workers=1), sox=sox_info)
    assert tree_digest(out) == tree_digest(reference)


def test_duration_uses_the_column_rate_sox_really_renders(tmp_path, sox_info):
    # 60 s at 22050 Hz: SoX draws 3000 columns (60 s at the requested 50 per second) but steps 440 samples
    # (not 441) per column, so slice k starts at k * 128 / 50.1136 s and the slices end within the audio.
    audio = tmp_path / "audio"
    from mutagen.flac import FLAC

    flac = FLAC(synth(audio / "minute.flac", 60.0, "sine", "440", rate=22050, channels=1))  # lossless: exact length
    flac["genre"], flac["artist"] = "Rock", "Clock"
    flac.save()
    out = tmp_path / "out"
    build_dataset(audio, out, LABELS, BuildConfig(workers=1), sox=sox_info)
    (row,) = read_csv(out / "tracks.csv")
    assert row["status"] == "ok" and abs(float(row["duration_s"]) - 60.0) <= 0.03
    last = read_csv(out / "slices.csv")[-1]
    assert float(last["start_s"]) == pytest.approx(22 * 128 / 50.1136, abs=0.006)  # 56.19, not 56.32
    assert float(last["start_s"]) + 128 / 50.1136 <= 60.0


def test_a_small_collection_of_three_artists_per_genre_has_every_genre_in_every_split(tmp_path, sox_info):
    """The default artist-disjoint split is stratified by genre: with 3 artists of each genre (one 3-s song each),
    the 80/10/10 artist hash alone leaves genres out of validation or test."""
    genres = {"Rock": "sawtooth", "Jazz": "sine", "Folk": "triangle", "Classical": "square"}
    for genre, wave in genres.items():
        for artist in range(3):
            tagged_mp3(tmp_path / "music" / f"{genre} {artist}.mp3", 3.0, genre, f"The {genre} Band {artist}",
                       wave, str(220 + 40 * artist))
    summary = build_dataset(tmp_path / "music", tmp_path / "out", Id3LabelSource(),
                            BuildConfig(workers=1, split_ratios=(0.8, 0.1, 0.1)))
    rows = read_csv(tmp_path / "out" / layout.TRACKS_CSV)
    assert all(row["status"] == "ok" for row in rows) and len(rows) == 12
    assert {(row["genre"], row["split"]) for row in rows} == \
        {(genre, split) for genre in genres for split in ("train", "validation", "test")}
    dataset = json.loads((tmp_path / "out" / layout.DATASET_JSON).read_text())
    assert dataset["splits"]["moved_so_every_class_reaches_every_split"] > 0
    assert summary.plan.split_warnings() == [f"{genre} has only 1 track in the {split} split"
                                             for genre in sorted(genres) for split in ("train", "validation", "test")]


def test_a_leaky_collection_keeps_each_song_and_its_copies_in_one_split(tmp_path, sox_info):
    """The same recordings filed under other artists (as a compilation would) end in the split of the original,
    listed in duplicates.csv and counted in dataset.json; a dry run finds them too."""
    from genreslice.genre_getters import make_label_source

    music = tmp_path / "music"
    rows = ["path,label,artist"]
    for number in range(12):
        synth(music / f"album/{number:02d}.wav", 3.0, "sine", str(220 + 30 * number), channels=1, rate=22050)
        rows.append(f"album/{number:02d}.wav,{('rock', 'jazz')[number % 2]},band {number}")
    (music / "compilation").mkdir()
    for number in range(0, 12, 3):  # four songs copied onto a compilation, each under an artist of its own
        shutil.copyfile(music / f"album/{number:02d}.wav", music / f"compilation/{number:02d} copy.wav")
        rows.append(f"compilation/{number:02d} copy.wav,{('rock', 'jazz')[number % 2]},various {number}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    summary = build_dataset(music, tmp_path / "out", make_label_source("csv", metadata=tmp_path / "labels.csv"),
                            BuildConfig(workers=2, split_ratios=(0.4, 0.3, 0.3)))
    tracks = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    for number in range(0, 12, 3):
        original, copy = tracks[f"album/{number:02d}.wav"], tracks[f"compilation/{number:02d} copy.wav"]
        assert original["status"] == copy["status"] == "ok" and original["split"] == copy["split"]
    duplicates = read_csv(tmp_path / "out" / "duplicates.csv")
    assert len(duplicates) == 8 and {row["group"] for row in duplicates} == {"1", "2", "3", "4"}
    assert all(row["kind"] == "exact" and row["action"] == "group" for row in duplicates)
    assert {row["path"] for row in duplicates if row["group"] == "1"} == {"album/00.wav", "compilation/00 copy.wav"}
    counts = json.loads((tmp_path / "out" / "dataset.json").read_text())["splits"]["duplicates"]
    assert counts == {"policy": "auto", "largest_merged_unit_tracks": 2, "exact_groups": 4, "near_groups": 0,
                      "tracks_fingerprinted": 0, "files_in_groups": 8, "grouped": 4, "in_several_splits": 0,
                      "copies_dropped": 0}
    assert summary.plan.duplicate_counts() == counts


#: Near copies as a library holds them: (file name, SoX effects, MP3 bitrate or None).
PLANTED = [
    ("best of 0.mp3", ("rate", "16000", "gain", "-3"), 64),
    ("best of 1.mp3", ("rate", "48000", "channels", "2", "trim", "1.5"), 320),
    ("best of 2.wav", ("gain", "4", "pad", "1.2", "0"), None),
    ("best of 3.mp3", ("rate", "32000", "trim", "2", "gain", "-2"), 96),
]
COPY_RATIOS = (0.5, 0.0, 0.5)


@pytest.fixture(scope="module")
def leaky_library(tmp_path_factory, sox_info):
    """Six songs of one genre and tempo by artists the hash puts in train, and near copies of four of them (other
    encodings, levels and starts) on a compilation whose artists the hash puts in test; labelled by a CSV."""
    root = tmp_path_factory.mktemp("leaky")
    rows = ["path,label,artist"]
    for seed in range(6):
        music(root / "music" / "album" / f"song {seed}.wav", seed)
        rows.append(f"album/song {seed}.wav,rock,{artist_in_split('train', COPY_RATIOS, f'band {seed}')}")
    for index, (name, effects, bitrate) in enumerate(PLANTED):
        near_copy(root / "music" / "album" / f"song {index}.wav", root / "music" / "compilation" / name, *effects,
                  bitrate=bitrate)
        rows.append(f"compilation/{name},rock,{artist_in_split('test', COPY_RATIOS, f'various {index}')}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def build_leaky(library: Path, out: Path, **config) -> object:
    from genreslice.genre_getters import make_label_source

    return build_dataset(library / "music", out, make_label_source("csv", metadata=library / "labels.csv"),
                         BuildConfig(split_ratios=COPY_RATIOS, **{"workers": 2, **config}))


@pytest.mark.parametrize("policy", ["auto", "group", "keep", "drop-extra"])
def test_near_copies_are_found_and_handled_by_each_duplicates_choice(leaky_library, tmp_path, policy):
    """Re-encoded, resampled, louder, trimmed copies under other artists are found after the audio work; auto and
    group end each song and its copy in one split, drop-extra builds only the copy in the later split, keep only
    reports them. Distinct songs of the genre and tempo are never grouped."""
    summary = build_leaky(leaky_library, tmp_path / "out", duplicates=policy)
    tracks = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    groups: dict[str, set[str]] = {}
    duplicates = read_csv(tmp_path / "out" / "duplicates.csv")
    for row in duplicates:
        groups.setdefault(row["group"], set()).add(row["path"])
    assert sorted(groups.values(), key=sorted) == [{f"album/song {index}.wav", f"compilation/{name}"}
                                                   for index, (name, _, _) in enumerate(PLANTED)]
    action = "group" if policy == "auto" else policy
    assert all(row["kind"] == "near" and row["action"] == action and 0.63 <= float(row["similarity"]) <= 1.0
               and len(row["sha256"]) == 64 for row in duplicates)
    counts = json.loads((tmp_path / "out" / "dataset.json").read_text())["splits"]["duplicates"]
    assert counts["near_groups"] == 4 and counts["exact_groups"] == 0 and counts["tracks_fingerprinted"] == 10
    assert summary.plan.duplicate_counts() == counts
    for index, (name, _, _) in enumerate(PLANTED):
        original, copy = tracks[f"album/song {index}.wav"], tracks[f"compilation/{name}"]
        if policy in ("auto", "group"):
            assert original["status"] == copy["status"] == "ok" and original["split"] == copy["split"]
        elif policy == "keep":
            assert (original["status"], original["split"], copy["status"], copy["split"]) == ("ok", "train", "ok",
                                                                                              "test")
        else:
            assert (copy["status"], copy["split"], original["status"]) == ("ok", "test", "skipped")
            assert original["reason"] == (f"a copy of 'compilation/{name}' (the same recording, by its fingerprint) "
                                          "in the test split (--duplicates drop-extra)")
    assert counts["in_several_splits"] == (4 if policy == "keep" else 0)
    assert counts["copies_dropped"] == (4 if policy == "drop-extra" else 0)


def test_near_copies_give_the_same_data_set_whatever_the_workers_and_on_resume(leaky_library, tmp_path):
    """One worker or two, a run that finds the fingerprints in its journal, and a run over a journal of an older
    version (no fingerprints: computed again from the slices, no track rendered again) give the same files."""
    build_leaky(leaky_library, tmp_path / "two", workers=2)
    build_leaky(leaky_library, tmp_path / "one", workers=1)
    names = ("tracks.csv", "slices.csv", "duplicates.csv", "dataset.json")
    expected = {name: (tmp_path / "two" / name).read_bytes() for name in names}
    assert {name: (tmp_path / "one" / name).read_bytes() for name in names} == expected
    journal = tmp_path / "two" / layout.STATE_DIR / "journal.jsonl"
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert all("fingerprint" in line and len(line["sha256"]) == 64 for line in lines if line["status"] == "ok")
    journal.write_text("".join(json.dumps({key: value for key, value in line.items() if key != "fingerprint"}) + "\n"
                               for line in lines))
    (tmp_path / "two" / "duplicates.csv").unlink()
    summary = build_leaky(leaky_library, tmp_path / "two", workers=2)
    assert summary.processed == 0
    assert {name: (tmp_path / "two" / name).read_bytes() for name in names} == expected
    assert sum("fingerprint" in json.loads(line) for line in journal.read_text().splitlines()) == 10


def test_a_split_drawn_again_for_near_copies_builds_the_tracks_the_cap_now_chooses(leaky_library, tmp_path):
    """With one track per class and split (--max-tracks-per-genre 1), the copy in test is built first and two other
    songs in test are not; once the copy is found to be the train song's, it joins that song in train, and the
    test song the cap now chooses is rendered in the same run. A second run changes nothing."""
    import hashlib

    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.layout import track_id_for_path

    def rank(path: str) -> bytes:  # the cap keeps the tracks whose ids hash lowest
        return hashlib.sha256(track_id_for_path(path).encode()).digest()

    music = tmp_path / "music"
    original = shutil.copyfile(leaky_library / "music" / "album" / "song 0.wav", tmp_path / "song.wav")
    names = sorted((f"other {number}.wav" for number in range(40)), key=rank)
    copy_name = names[0]  # hashes below the two test songs: built on the first plan
    near_copy(original, music / copy_name, "gain", "-3", "trim", "1")
    shutil.copyfile(original, music / "a original.wav")
    rows = ["path,label,artist", f"a original.wav,rock,{artist_in_split('train', COPY_RATIOS, 'a band')}",
            f"{copy_name},rock,{artist_in_split('test', COPY_RATIOS, 'z various')}"]
    for seed, name in zip((1, 2), names[1:3]):
        shutil.copyfile(leaky_library / "music" / "album" / f"song {seed}.wav", music / name)
        rows.append(f"{name},rock,{artist_in_split('test', COPY_RATIOS, f'z band {seed}')}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    selection = GenreSelection(max_tracks_per_genre=1)
    source = make_label_source("csv", metadata=tmp_path / "labels.csv")
    summary = build_dataset(music, tmp_path / "out", source, BuildConfig(split_ratios=COPY_RATIOS, workers=2),
                            selection=selection)
    tracks = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    assert tracks["a original.wav"]["split"] == tracks[copy_name]["split"] == "train"
    assert sorted(row["status"] for path, row in tracks.items() if row["split"] == "train") == ["ok", "skipped"]
    built_in_test = [path for path, row in tracks.items() if row["split"] == "test" and row["status"] == "ok"]
    assert built_in_test == [names[1]] and tracks[names[2]]["status"] == "skipped"
    assert summary.processed == 3  # the original and the copy, then the test song the cap chose anew
    before = {name: (tmp_path / "out" / name).read_bytes() for name in ("tracks.csv", "duplicates.csv")}
    again = build_dataset(music, tmp_path / "out", source, BuildConfig(split_ratios=COPY_RATIOS, workers=1),
                          selection=selection)
    assert again.processed == 0
    assert {name: (tmp_path / "out" / name).read_bytes() for name in before} == before


def test_near_copies_are_found_in_a_mel_data_set_too(leaky_library, tmp_path):
    from genreslice.pipeline.spectrogram import SpectrogramSpec

    build_leaky(leaky_library, tmp_path / "out", spec=SpectrogramSpec(features="mel"))
    groups = {row["group"] for row in read_csv(tmp_path / "out" / "duplicates.csv") if row["kind"] == "near"}
    assert len(groups) == len(PLANTED)
    tracks = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    assert all(tracks[f"album/song {index}.wav"]["split"] == tracks[f"compilation/{name}"]["split"]
               for index, (name, _, _) in enumerate(PLANTED))


def test_fingerprints_journaled_and_computed_from_slices_find_the_same_copies(leaky_library, tmp_path):
    """A data set built without fingerprints (as by an older version), then with them once a copy is added, groups
    as a fresh build does, at a column rate whose frame rate has more than four decimals."""
    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.spectrogram import SpectrogramSpec

    music = tmp_path / "music"
    for seed in (0, 1):
        shutil.copyfile(leaky_library / "music" / "album" / f"song {seed}.wav", tmp_path / f"song {seed}.wav")
        shutil.copyfile(tmp_path / f"song {seed}.wav", music / f"song {seed}.wav") if music.is_dir() else \
            (music.mkdir(), shutil.copyfile(tmp_path / f"song {seed}.wav", music / f"song {seed}.wav"))
    rows = ["path,label,artist", "song 0.wav,rock,band a", "song 1.wav,rock,band b", "copy.mp3,rock,various"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    source = make_label_source("csv", metadata=tmp_path / "labels.csv")
    spec = SpectrogramSpec(pixels_per_second=100)
    build_dataset(music, tmp_path / "out", source, BuildConfig(spec=spec, workers=2, near_copies=False))
    near_copy(music / "song 0.wav", music / "copy.mp3", "gain", "-3", "trim", "1", bitrate=128)
    resumed = build_dataset(music, tmp_path / "out", source, BuildConfig(spec=spec, workers=2))
    fresh = build_dataset(music, tmp_path / "fresh", source, BuildConfig(spec=spec, workers=1))
    assert resumed.processed == 1 and resumed.plan.duplicate_counts()["near_groups"] == 1
    for name in ("tracks.csv", "duplicates.csv", "dataset.json"):
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    again = build_dataset(music, tmp_path / "out", source, BuildConfig(spec=spec, workers=2))
    assert again.processed == 0 and again.plan.duplicate_counts() == fresh.plan.duplicate_counts()

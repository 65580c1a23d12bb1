"""``genreslice build --labels fma|jamendo`` end to end, on generated audio laid out like the real data sets."""
from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import pytest

from genreslice.scripts.cli import main as genreslice
from tests.helpers import JAMENDO_SPLIT, read_csv, synth, write_fma_metadata

FMA_AUDIO = ["000/000002.mp3", "000/000003.mp3", "000/000005.mp3", "000/000010.mp3", "000/000020.mp3",
             "001/000134.mp3", "009/000999.mp3"]
JAMENDO_AUDIO = ["41/241.mp3", "42/242.mp3", "51/851.mp3", "91/1091.mp3", "73/773.mp3", "75/775.mp3",
                 "14/214.mp3", "16/3516.low.mp3", "11/121111.mp3", "99/99999.mp3"]


def make_audio(root: Path, rel_paths: list[str]) -> Path:
    for index, rel in enumerate(rel_paths):
        synth(root / rel, 3.0, "sine", str(300 + 150 * index))  # 3 s: one slice each, no tags at all
    return root


@pytest.fixture(scope="module")
def fma(tmp_path_factory, sox_info):
    root = tmp_path_factory.mktemp("fma")
    return make_audio(root / "fma_large", FMA_AUDIO), write_fma_metadata(root)


@pytest.fixture(scope="module")
def jamendo(tmp_path_factory, sox_info):
    return make_audio(tmp_path_factory.mktemp("jamendo") / "audio", JAMENDO_AUDIO), JAMENDO_SPLIT


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = genreslice(["build", *map(str, args), "--no-progress"])
    except SystemExit as exit_:  # usage errors leave through argparse, as on the command line
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_artists_in_one_split(rows: list[dict]) -> None:
    splits = collections.defaultdict(set)
    for row in rows:
        if row["split"]:
            splits[row["artist"] or row["track_id"]].add(row["split"])
    assert splits and all(len(names) == 1 for names in splits.values())


def test_fma_build_end_to_end(fma, tmp_path, capsys):
    audio, metadata = fma
    code, out, _ = run(capsys, audio, tmp_path / "out", "--labels", "fma", "--metadata", metadata, "--workers", "2")
    assert code == 0
    rows = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    expected = {"000/000002.mp3": ("2", "Hip-Hop", "train", "1", "ok"), "000/000010.mp3": ("10", "Pop", "validation",
                "6", "ok"), "001/000134.mp3": ("134", "Rock", "test", "52", "ok"),
                "000/000020.mp3": ("20", "", "", "4", "skipped"), "009/000999.mp3": ("999", "", "", "", "skipped")}
    for path, values in expected.items():
        row = rows[path]
        assert (row["track_id"], row["genre"], row["split"], row["artist"], row["status"]) == values
    assert "several top-level genres" in rows["000/000020.mp3"]["reason"]
    assert rows["009/000999.mp3"]["reason"] == "track 999 has no row in tracks.csv"
    assert_artists_in_one_split(list(rows.values()))
    slices = read_csv(tmp_path / "out" / "slices.csv")
    assert {row["track_id"] for row in slices} == {"2", "3", "5", "10", "134"}
    assert all((tmp_path / "out" / row["path"]).is_file() for row in slices)
    dataset = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert dataset["labels"]["source"] == "fma" and dataset["labels"]["metadata_without_audio"] == 1
    assert dataset["labels"]["audio_without_metadata"] == 1
    assert dataset["splits"]["method"] == "official"
    assert dataset["splits"]["split_sources"] == {"official": 5, "artist": 0, "artist_hash": 0}
    assert dataset["classes"] == ["Hip-Hop", "Pop", "Rock"]
    assert "audio files with no row in the metadata (skipped): 1" in out
    assert "metadata rows with no audio file: 1 (track ids 140)" in out


def test_fma_subset_and_cap(fma, tmp_path, capsys):
    audio, metadata = fma
    code, out, _ = run(capsys, audio, tmp_path / "out", "--labels", "fma", "--metadata", metadata / "tracks.csv",
                       "--subset", "small", "--max-tracks-per-genre", "1", "--workers", "1")
    assert code == 0
    rows = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    ok = [row for row in rows.values() if row["status"] == "ok"]
    # small: 2, 5, 10 (3 and 134 are medium); Hip-Hop/train holds 2 and 5, capped to one of them.
    assert sorted(row["genre"] for row in ok) == ["Hip-Hop", "Pop"]
    assert rows["001/000134.mp3"]["reason"] == "track 134 is not in the 'small' subset"
    capped = [row for row in rows.values() if "over --max-tracks-per-genre 1 (Hip-Hop, train)" in row["reason"]]
    assert len(capped) == 1 and capped[0]["track_id"] in ("2", "5")


def test_jamendo_build_end_to_end(jamendo, tmp_path, capsys):
    audio, metadata = jamendo
    code, out, _ = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", metadata)
    assert code == 0
    rows = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    expected = {"41/241.mp3": ("track_0000241", "Rock", "train"), "51/851.mp3": ("track_0000851", "Soul-RnB", "train"),
                "91/1091.mp3": ("track_0001091", "Pop", "train"), "73/773.mp3": ("track_0000773", "Electronic",
                "validation"), "75/775.mp3": ("track_0000775", "Easy Listening", "validation"),
                "14/214.mp3": ("track_0000214", "Rock", "test"), "16/3516.low.mp3": ("track_0003516", "Electronic",
                "test")}
    for path, values in expected.items():
        assert (rows[path]["track_id"], rows[path]["genre"], rows[path]["split"]) == values
        assert rows[path]["status"] == "ok"
    assert rows["11/121111.mp3"]["reason"] == "no genre tag maps to a genre (tags: atmospheric)"
    assert rows["99/99999.mp3"]["reason"] == f"not listed in {metadata}"
    assert_artists_in_one_split(list(rows.values()))
    dataset = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert dataset["splits"]["method"] == "official" and dataset["labels"]["metadata_without_audio"] == 16 - 9
    assert "metadata rows with no audio file: 7 (track ids track_0000215, " in out


def test_dry_run_prints_the_balance_and_writes_nothing(jamendo, tmp_path, capsys, monkeypatch):
    audio, metadata = jamendo
    monkeypatch.setenv("PATH", str(tmp_path / "no-sox-here"))  # no SoX needed: audio is never decoded
    code, out, err = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", metadata,
                         "--dry-run", "--exclude-genres", "soul-rnb")
    assert code == 0, err
    assert not (tmp_path / "out").exists()
    lines = out.splitlines()
    assert "10 audio files, 7 tracks would be built. Nothing was written." in lines[0]
    header = next(line for line in lines if line.startswith("genre"))
    assert header.split() == ["genre", "train", "validation", "test", "total"]
    table = {line[:len("Easy Listening")].strip(): line.split()[-4:] for line in lines
             if line.startswith(("Rock", "Pop", "Electronic", "Easy Listening", "total"))}
    assert table["Rock"] == ["2", "0", "1", "3"] and table["Electronic"] == ["0", "1", "1", "2"]
    assert table["Pop"] == ["1", "0", "0", "1"] and table["Easy Listening"] == ["0", "1", "0", "1"]
    assert table["total"] == ["3", "2", "2", "7"]
    assert "skipped: genre Soul-RnB is excluded (--exclude-genres)" in out
    assert "no genre tag maps to a genre (tags: atmospheric)" in out
    assert "audio files with no row in the metadata (skipped): 1" in out


def test_unknown_genre_is_a_usage_error_listing_the_valid_ones(jamendo, tmp_path, capsys):
    audio, metadata = jamendo
    code, _, err = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", metadata,
                       "--genres", "Rock,Schlager")
    assert code == 2 and "unknown genre 'Schlager'" in err and "valid genres: Blues, Classical" in err
    assert not (tmp_path / "out").exists()


def test_bad_metadata_is_a_clear_fatal_error(jamendo, tmp_path, capsys):
    audio, _ = jamendo
    bad = tmp_path / "autotagging_genre.tsv"
    bad.write_text("TRACK_ID;ARTIST_ID\r\n", encoding="utf-8")
    code, _, err = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", bad)
    assert code == 1 and f"{bad}: line 1: header must be TRACK_ID" in err
    code, _, err = run(capsys, audio, tmp_path / "out", "--labels", "fma")
    assert code == 2 and "--labels fma needs --metadata" in err
    code, _, err = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", bad, "--subset", "small")
    assert code == 2 and "--labels jamendo does not use --subset" in err
    assert not (tmp_path / "out").exists()


def test_odd_audio_folder_names_do_not_matter(fma, tmp_path, capsys):
    """The FMA id comes from the file name only; a hostile folder name is just a folder name."""
    audio, metadata = fma
    odd = tmp_path / "$(touch PWNED) 'quoted' -rf ünï"
    (odd / "000").mkdir(parents=True)
    os.link(audio / "000/000002.mp3", odd / "000/000002.mp3")
    code, _, _ = run(capsys, odd, tmp_path / "out", "--labels", "fma", "--metadata", metadata, "--workers", "1")
    assert code == 0 and not (Path.cwd() / "PWNED").exists()
    assert [row["status"] for row in read_csv(tmp_path / "out" / "tracks.csv")] == ["ok"]


def slice_bytes(out: Path, track_id: str) -> dict[str, bytes]:
    return {row["path"]: (out / row["path"]).read_bytes() for row in read_csv(out / "slices.csv")
            if row["track_id"] == track_id}


def test_a_new_file_claiming_a_built_track_id_never_replaces_its_slices(tmp_path, capsys, sox_info):
    """FMA's 000/000002.mp3 is built; then 0/2.mp3 and a low-quality copy 000/000002.low.mp3 appear (both sort
    first) and later go away. The built track keeps its id and its slices throughout."""
    audio, out = tmp_path / "audio", tmp_path / "out"
    synth(audio / "000/000002.mp3", 3.0, "sine", "440")
    metadata = write_fma_metadata(tmp_path)
    build = ("--labels", "fma", "--metadata", metadata, "--workers", "1")
    assert run(capsys, audio, out, *build)[0] == 0
    original = slice_bytes(out, "2")
    synth(audio / "000/000002.low.mp3", 3.0, "whitenoise")
    synth(audio / "0/2.mp3", 3.0, "pinknoise")
    code, printed, _ = run(capsys, audio, out, *build)
    assert code == 0 and "No audio work was needed" in printed
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    for newcomer in ("000/000002.low.mp3", "0/2.mp3"):
        assert rows[newcomer]["status"] == "failed"
        assert rows[newcomer]["reason"] == "track id 2 is also used by 000/000002.mp3"
    assert slice_bytes(out, "2") == original
    (audio / "000/000002.low.mp3").unlink()
    (audio / "0/2.mp3").unlink()
    assert run(capsys, audio, out, *build)[0] == 0 and slice_bytes(out, "2") == original
    # In a fresh build of both, the full-quality file gets the id.
    synth(audio / "000/000002.low.mp3", 3.0, "whitenoise")
    assert run(capsys, audio, tmp_path / "fresh", *build)[0] == 0
    assert slice_bytes(tmp_path / "fresh", "2") == original


def test_another_label_source_is_refused_and_nothing_changes(fma, tmp_path, capsys):
    audio, metadata = fma
    out = tmp_path / "out"
    assert run(capsys, audio, out, "--labels", "fma", "--metadata", metadata, "--workers", "1")[0] == 0
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    code, _, err = run(capsys, audio, out, "--workers", "1")  # --labels id3
    assert code == 1 and "labels.source: built with 'fma', now 'id3'" in err
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_a_change_of_genres_is_announced(fma, tmp_path, capsys):
    audio, metadata = fma
    out = tmp_path / "out"
    build = (audio, out, "--labels", "fma", "--metadata", metadata, "--workers", "1")
    assert run(capsys, *build)[0] == 0
    code, printed, _ = run(capsys, *build, "--exclude-genres", "pop")
    assert code == 0 and "The genres changed: this folder held Hip-Hop, Pop, Rock; now Hip-Hop, Rock." in printed
    code, printed, _ = run(capsys, *build, "--exclude-genres", "pop")
    assert code == 0 and "The genres changed" not in printed


def test_dry_run_of_a_jamendo_category_counts_tags_and_drops_rare_ones(tmp_path, capsys, monkeypatch):
    audio = tmp_path / "audio"
    for name in ("41/241.mp3", "42/242.mp3", "43/243.mp3", "44/244.mp3", "51/851.mp3", "46/946.mp3",
                 "11/121111.mp3"):
        (audio / name).parent.mkdir(parents=True, exist_ok=True)
        (audio / name).write_bytes(name.encode())  # never decoded by a dry run; no two alike
    monkeypatch.setenv("PATH", str(tmp_path / "no-sox-here"))
    code, out, err = run(capsys, audio, tmp_path / "out", "--labels", "jamendo", "--metadata", JAMENDO_SPLIT,
                         "--category", "top50", "--task", "multilabel", "--min-tracks-per-class", "2", "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    # The top-50 fixture rows of these files (train): rock x4; funk, pop; seven tags of 946; atmospheric. With at
    # least 2 tracks per tag: rock (4) alone stays; 946 and 121111 have no tag left, 851 keeps none either.
    assert "7 audio files, 4 tracks would be built. Nothing was written." in lines[0]
    header = next(line for line in lines if line.startswith("tag "))
    assert header.split() == ["tag", "train", "validation", "test", "total"]
    assert next(line for line in lines if line.startswith("genre---rock")).split()[1:] == ["4", "0", "0", "4"]
    assert next(line for line in lines if line.startswith("tracks")).split()[1:] == ["4", "0", "0", "4"]
    assert "10 classes with fewer than 2 tracks dropped (--min-tracks-per-class): genre---ambient (1)," in out
    assert "every tag has fewer than --min-tracks-per-class 2 tracks (genre---atmospheric (1))" in out
    assert not (tmp_path / "out").exists()


def test_dry_run_finds_identical_files_and_a_build_lists_them(tmp_path, capsys, monkeypatch):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name, content in (("a.mp3", b"one song"), ("b copy.mp3", b"one song"), ("c.mp3", b"two song")):
        (audio / name).write_bytes(content)  # a dry run reads files of equal size; it decodes nothing
    (tmp_path / "labels.csv").write_text("path,label,artist\na.mp3,rock,A\nb copy.mp3,rock,B\nc.mp3,jazz,C\n",
                                         encoding="utf-8")
    monkeypatch.setenv("PATH", str(tmp_path / "no-sox-here"))
    code, out, err = run(capsys, audio, tmp_path / "out", "--labels", "csv", "--metadata", tmp_path / "labels.csv",
                         "--dry-run")
    assert code == 0, err
    assert "1 group of identical files (2 files): 1 kept in one split with their artists." in out
    code, out, err = run(capsys, audio, tmp_path / "out", "--labels", "csv", "--metadata", tmp_path / "labels.csv",
                         "--dry-run", "--duplicates", "keep")
    assert code == 0 and "1 group of identical files (2 files)" in out and "kept in one split" not in out
    code, out, _ = run(capsys, audio, tmp_path / "out", "--labels", "csv", "--metadata", tmp_path / "labels.csv",
                       "--dry-run", "--duplicates", "copy")
    assert code == 2

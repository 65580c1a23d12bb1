"""``--labels folders``: a file's class is the name of the folder it lies in (GTZAN's layout), artist from its tags.

Real files in (SoX-synthesised WAVs and MP3s in class folders, hostile folder names), real data sets out.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from genreslice.errors import ParameterError
from genreslice.genre_getters import make_label_source
from genreslice.genre_getters.folders import FolderLabelSource
from genreslice.pipeline.build import BuildConfig, build_dataset
from tests.helpers import genreslice, read_csv, synth, tag_id3

CLASSES = ("$(rock) 'n' roll", "-blues", "hip hop", "jazz")  # sorted; odd but valid names


@pytest.fixture(scope="module")
def gtzan(tmp_path_factory, sox_info) -> Path:
    """A GTZAN-like folder: ``genres/<class>/<class>.0000N.au`` (GTZAN's own format), 5 songs per class, and one
    stray file."""
    root = tmp_path_factory.mktemp("gtzan layout") / "genres"
    for index, name in enumerate(CLASSES):
        for number in range(5):
            synth(root / name / f"{name}.{number:05d}.au", 3.0, "sine", f"{200 + 90 * index + 11 * number}",
                  channels=1, rate=22050)
    synth(root / "stray.wav", 3.0, channels=1, rate=22050)  # directly in the audio folder: no class
    return root


def test_a_gtzan_layout_builds_with_its_folder_names_as_classes(gtzan, tmp_path):
    out = tmp_path / "data set"
    result = genreslice("build", str(gtzan), str(out), "--labels", "folders", "--split-ratios", "0.6,0.2,0.2",
                        "--workers", "2", "--no-progress")
    assert result.returncode == 0, result.stderr
    dataset = json.loads((out / "dataset.json").read_text())
    assert dataset["classes"] == list(CLASSES)
    assert {key: dataset["labels"][key] for key in ("source", "taxonomy", "folder_depth")} == {
        "source": "folders", "taxonomy": "folders", "folder_depth": 1}
    rows = {row["path"]: row for row in read_csv(out / "tracks.csv")}
    assert len(rows) == 21
    for name in CLASSES:
        for number in range(5):
            row = rows[f"{name}/{name}.{number:05d}.au"]
            assert (row["genre"], row["status"], row["artist"]) == (name, "ok", "")  # no tags: split on its own
    assert rows["stray.wav"]["status"] == "skipped"
    assert rows["stray.wav"]["reason"] == (
        "not in a class folder: the class is the name of the folder 1 level below the audio folder "
        "(--folder-depth 1), and this file lies directly in the audio folder")
    assert {row["split"] for row in rows.values() if row["status"] == "ok"} == {"train", "validation", "test"}


def test_genres_select_among_the_folder_names(gtzan):
    result = genreslice("build", str(gtzan), "unused", "--labels", "folders", "--genres", "HIP-HOP,Jazz",
                        "--dry-run", "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = [line.split("  ")[0] for line in result.stdout.splitlines()]  # the table's rows begin with the class
    assert "hip hop" in rows and "jazz" in rows and "-blues" not in rows and "$(rock) 'n' roll" not in rows
    refused = genreslice("build", str(gtzan), "unused", "--labels", "folders", "--genres", "polka", "--dry-run")
    assert refused.returncode != 0
    assert f"unknown genre 'polka'; valid genres: {', '.join(CLASSES)}" in refused.stderr


def test_classes_whose_names_differ_only_in_case_are_selected_by_their_exact_names(tmp_path, sox_info):
    for name in ("Hip Hop", "hip-hop", "jazz"):
        synth(tmp_path / "audio" / name / "song.wav", 3.0, channels=1, rate=22050)
    for option, chosen in (("hip-hop", "hip-hop"), ("Hip Hop", "Hip Hop"), ("JAZZ", "jazz")):
        result = genreslice("build", str(tmp_path / "audio"), "unused", "--labels", "folders", "--genres", option,
                            "--dry-run", "--no-progress")
        assert result.returncode == 0, result.stderr
        assert [line.split("  ")[0] for line in result.stdout.splitlines()].count(chosen) == 1
        assert "1 tracks would be built" in result.stdout
    ambiguous = genreslice("build", str(tmp_path / "audio"), "unused", "--labels", "folders", "--exclude-genres",
                           "HIPHOP", "--dry-run")
    assert ambiguous.returncode != 0 and ("--exclude-genres: 'HIPHOP' matches 'Hip Hop', 'hip-hop'"
                                          in ambiguous.stderr)


def test_hidden_folders_links_and_a_folder_without_class_folders(tmp_path, sox_info):
    audio = tmp_path / "audio"
    for rel in ("ballroom/Waltz/a.wav", ".old/Polka/b.wav"):
        synth(audio / rel, 3.0, channels=1, rate=22050)
    (audio / "latin").mkdir()
    (audio / "latin" / "Salsa").symlink_to(audio / "ballroom" / "Waltz")  # a link is not a class of its own
    source = make_label_source("folders", audio_dir=audio, folder_depth=2)
    assert source.taxonomy.genres == ("Waltz",)
    assert source.label(audio / ".old/Polka/b.wav", ".old/Polka/b.wav").reason == "it lies in the hidden folder '.old'"
    late = source.label(audio / "x", "ballroom/Tango/c.wav")
    assert late.genre is None and late.reason == ("its class folder 'Tango' was not there when the build started; "
                                                  "run it again")
    for loop in ("x", "y"):  # links back to the top are not followed: no endless (or exponential) walk
        (audio / loop).symlink_to(audio)
    with pytest.raises(ParameterError, match="no class folders 32 levels down.*or lower --folder-depth"):
        make_label_source("folders", audio_dir=audio, folder_depth=32)
    with pytest.raises(ParameterError, match="no class folders 1 level down: with --labels folders each file lies"):
        make_label_source("folders", audio_dir=audio / "ballroom" / "Waltz")
    refused = genreslice("build", str(audio / "ballroom" / "Waltz"), str(tmp_path / "out"), "--labels", "folders")
    assert refused.returncode != 0 and "no class folders 1 level down" in refused.stderr
    only_bad = tmp_path / "only bad names"
    synth(only_bad / os.fsdecode(b"caf\xe9") / "song.wav", 1.0)
    with pytest.raises(ParameterError, match=r"no folder 1 level down can be a class; for example, the class folder "
                                             r"name 'caf\\udce9' is not UTF-8 text; rename the folder"):
        make_label_source("folders", audio_dir=only_bad)


def test_folder_depth_picks_the_level_of_a_nested_layout(tmp_path):
    for rel in ("ballroom/Waltz/a.wav", "ballroom/Tango/b.wav", "latin/Salsa/deeper/c.wav", "ballroom/d.wav"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    source = make_label_source("folders", audio_dir=tmp_path, folder_depth=2)
    assert source.taxonomy.genres == ("Salsa", "Tango", "Waltz")
    assert source.label(tmp_path / "x", "ballroom/Waltz/a.wav").genre == "Waltz"
    assert source.label(tmp_path / "x", "latin/Salsa/deeper/c.wav").genre == "Salsa"  # below its class folder
    shallow = source.label(tmp_path / "x", "ballroom/d.wav")
    assert shallow.genre is None and shallow.reason.endswith(
        "2 levels below the audio folder (--folder-depth 2), and this file lies 1 folder deep")
    for escaping in ("../Waltz/a.wav", "/ballroom/Waltz/a.wav"):
        assert "is not a path inside the audio folder" in source.label(tmp_path / "x", escaping).reason
    assert make_label_source("folders", audio_dir=tmp_path).taxonomy.genres == ("ballroom", "latin")
    for depth in (0, 33, True, 1.5):
        with pytest.raises(ParameterError, match="folder_depth=.* must be a whole number from 1 to 32"):
            FolderLabelSource(tmp_path, folder_depth=depth)


def test_the_artist_comes_from_the_tags_and_damaged_tags_do_not_lose_the_class(tmp_path, sox_info):
    tagged = tag_id3(synth(tmp_path / "jazz" / "tagged.mp3", 1.0), genre="Rock", artist="  Miles   D ")
    damaged = tmp_path / "jazz" / "random bytes.mp3"
    damaged.write_bytes(os.urandom(5000))
    source = make_label_source("folders", audio_dir=tmp_path)
    assert (source.label(tagged, "jazz/tagged.mp3").genre, source.label(tagged, "jazz/tagged.mp3").artist) == (
        "jazz", "Miles D")  # the folder, not the tag's genre
    label = source.label(damaged, "jazz/random bytes.mp3")
    assert (label.genre, label.artist, label.failed) == ("jazz", None, False)  # SoX decides about the audio


def test_folder_names_that_cannot_be_classes_are_skipped_by_name(tmp_path, sox_info):
    audio = tmp_path / "audio"
    names = {"good": "good", "newline": "two\nlines", "hidden": ".cache", "bytes": os.fsdecode(b"caf\xe9")}
    for name in names.values():
        synth(audio / name / "song.wav", 3.0, channels=1, rate=22050)
    source = make_label_source("folders", audio_dir=audio)
    assert source.taxonomy.genres == ("good",)
    summary = build_dataset(audio, tmp_path / "out", source, BuildConfig(workers=1))
    rows = {row["path"]: row for row in read_csv(tmp_path / "out" / "tracks.csv")}
    assert rows["good/song.wav"]["status"] == "ok" and summary.classes == ["good"]
    reasons = {row["reason"] for row in rows.values() if row["status"] == "skipped"}
    assert reasons == {"its class folder name 'two\\nlines' holds control characters; rename the folder",
                       "its class folder name 'caf\\udce9' is not UTF-8 text; rename the folder",
                       "its class folder '.cache' is hidden (its name starts with a dot); rename the folder"}


def test_folder_depth_is_refused_where_it_means_nothing(tmp_path):
    (tmp_path / "audio").mkdir()
    other = genreslice("build", str(tmp_path / "audio"), str(tmp_path / "out"), "--folder-depth", "2", "--dry-run")
    assert other.returncode != 0 and "--labels id3 does not use --folder-depth" in other.stderr
    zero = genreslice("build", str(tmp_path / "audio"), str(tmp_path / "out"), "--labels", "folders",
                      "--folder-depth", "0")
    assert zero.returncode == 2 and "argument --folder-depth: 0 must be 1 or more" in zero.stderr

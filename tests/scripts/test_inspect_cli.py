"""``genreslice inspect``: a data set's state in text and pictures, read from its real files."""
from __future__ import annotations

import base64
import io
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from genreslice.pipeline import layout
from tests.helpers import artist_in_split, genreslice, help_of, synth

RATIOS = (0.5, 0.25, 0.25)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, sox_info):
    """A built data set with what inspect must show: rock and jazz in every split, folk only in train (one
    artist), a copy of a rock song filed under a test artist and kept (--duplicates keep: a leak), a file of
    random bytes (failed), a file too short for a slice, and a file without a label (skipped)."""
    root = tmp_path_factory.mktemp("inspect")
    music = root / "music"
    rows = ["path,label,artist"]
    number = 0
    for genre in ("rock", "jazz"):
        for split in ("train", "train", "validation", "test"):
            synth(music / f"{genre} {number}.wav", 6.0, "sine", str(200 + 40 * number), channels=1, rate=22050)
            rows.append(f"{genre} {number}.wav,{genre},{artist_in_split(split, RATIOS, f'{genre} band {number}')}")
            number += 1
    synth(music / "folk.wav", 6.0, "sine", "1000", channels=1, rate=22050)
    rows.append(f"folk.wav,folk,{artist_in_split('train', RATIOS, 'folk band')}")
    shutil.copyfile(music / "rock 0.wav", music / "compilation copy.wav")
    rows.append(f"compilation copy.wav,rock,{artist_in_split('test', RATIOS, 'various')}")
    (music / "noise.mp3").write_bytes(bytes(range(256)) * 40)
    rows.append("noise.mp3,jazz,someone")
    synth(music / "short.wav", 1.0, "sine", "300", channels=1, rate=22050)
    rows.append("short.wav,jazz,someone else")
    synth(music / "unlabelled.wav", 6.0, "sine", "500", channels=1, rate=22050)
    (root / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    result = genreslice("build", str(music), str(root / "data"), "--labels", "csv", "--metadata",
                        str(root / "labels.csv"), "--split-ratios", ",".join(map(str, RATIOS)), "--duplicates",
                        "keep", "--no-progress")
    assert result.returncode in (0, 3), result.stderr
    return root / "data"


def test_inspect_reports_classes_splits_failures_durations_and_copies(dataset):
    result = genreslice("inspect", str(dataset), "--no-pictures")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "label source: csv" in text and "a hash of the artist" in text and "ratios 0.5/0.25/0.25" in text
    table = {line.split()[0]: [int(value) for value in line.split()[1:]] for line in text.splitlines()
             if re.fullmatch(r"  (rock|jazz|folk|total)( +\d+){9}", line)}
    # tracks, artists, slices in train, validation, test; 6 s of audio is 2 slices
    assert table["rock"] == [2, 2, 4, 1, 1, 2, 2, 2, 4]  # the copy is built in test (kept)
    assert table["jazz"] == [2, 2, 4, 1, 1, 2, 1, 1, 2]
    assert table["folk"] == [1, 1, 2, 0, 0, 0, 0, 0, 0]
    assert table["total"] == [5, 5, 10, 2, 2, 4, 3, 3, 6]
    assert "folk has no tracks in the validation split" in text and "folk has no tracks in the test split" in text
    assert "1 failed" in text and "1 too short" in text and "1 skipped" in text
    assert re.search(r"1  failed: .*\(e\.g\. noise\.mp3\)", text)
    assert re.search(r"1  too short: 1 s of audio is shorter than one slice .*\(e\.g\. short\.wav\)", text)
    assert "train      5 tracks: min 6.0 s" in text and "test       3 tracks" in text
    assert "1 exact group (identical files): left where they fall (--duplicates keep)" in text
    assert "Warning: 1 group of copies built in more than one split" in text and "group 1 in train+test" in text
    assert not (dataset / "inspect").exists()


def test_inspect_draws_charts_examples_and_one_self_contained_page(dataset, tmp_path):
    out = tmp_path / "pictures"
    result = genreslice("inspect", str(dataset), "--out", str(out), "--examples", "3", "--seed", "4")
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["class-balance.png", "durations.png", "examples.png",
                                                            "report.html"]
    examples = Image.open(out / "examples.png").convert("L")
    # Three classes, three slices each: every tile holds a spectrogram (not the blank page, not the red frame).
    assert examples.size[1] > 3 * 96
    tiles = [examples.crop((left, top, left + 96, top + 96)) for top in (44, 44 + 104, 44 + 208)
             for left in range(examples.size[0] - 3 * 102 - 4, examples.size[0] - 10, 102)]
    assert len(tiles) == 9 and all(tile.getextrema()[0] < 60 for tile in tiles)
    page = (out / "report.html").read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3 and "src=\"http" not in page
    for data, name in zip(images, ("class-balance.png", "durations.png", "examples.png")):
        assert Image.open(io.BytesIO(base64.b64decode(data))).size == Image.open(out / name).size
    assert "folk has no tracks in the test split" in page
    again = genreslice("inspect", str(dataset), "--out", str(tmp_path / "again"), "--examples", "3", "--seed", "4")
    assert again.returncode == 0 and (tmp_path / "again" / "examples.png").read_bytes() == \
        (out / "examples.png").read_bytes()


def test_inspect_says_what_is_wrong_with_a_folder_that_is_not_a_data_set(dataset, tmp_path):
    result = genreslice("inspect", str(tmp_path / "nothing"))
    assert result.returncode == 1 and "no such data set folder" in result.stderr
    damaged = tmp_path / "damaged"
    shutil.copytree(dataset, damaged, ignore=shutil.ignore_patterns("slices"))
    (damaged / layout.DATASET_JSON).write_text("{not json", encoding="utf-8")
    result = genreslice("inspect", str(damaged), "--no-pictures")
    assert result.returncode == 1 and "dataset.json: cannot be read as JSON" in result.stderr
    (damaged / layout.DATASET_JSON).write_bytes((dataset / layout.DATASET_JSON).read_bytes())
    (damaged / layout.DUPLICATES_CSV).unlink()
    result = genreslice("inspect", str(damaged), "--examples", "2")
    assert result.returncode == 0, result.stderr
    assert "no duplicates.csv: the data set was built by an older genreslice" in result.stdout
    # Slices gone: the grid marks every tile with a red frame, the report stands.
    grid = np.asarray(Image.open(damaged / "inspect" / "examples.png").convert("RGB"))
    assert (grid == (200, 30, 30)).all(axis=2).sum() > 3 * 2 * 4 * 90


def test_inspect_shows_a_damaged_data_set_as_far_as_it_can_be_read(dataset, tmp_path):
    """Rows cut short, values of the wrong type: a report, not a traceback."""
    import json

    damaged = tmp_path / "damaged"
    shutil.copytree(dataset, damaged)
    lines = (damaged / layout.TRACKS_CSV).read_text(encoding="utf-8").splitlines()
    cut = next(line for line in lines if ",failed," in line).split(",failed,")[0] + ",failed"
    (damaged / layout.TRACKS_CSV).write_text("\n".join([*lines, cut, "x,y,z,rock,test,ok,,lots,many,extra,,"]) + "\n",
                                             encoding="utf-8")
    record = json.loads((damaged / layout.DATASET_JSON).read_text(encoding="utf-8"))
    record.update(splits={"method": "artist_hash", "ratios": {"train": "abc"}}, labels="csv",
                  spectrogram={"slice_seconds": "x"})
    (damaged / layout.DATASET_JSON).write_text(json.dumps(record), encoding="utf-8")
    result = genreslice("inspect", str(damaged), "--examples", "1")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "label source: unknown" in result.stdout
    assert "1  failed: (no reason recorded) (e.g. noise.mp3)" in result.stdout  # the row cut short
    # A table without its first line is not read as if its first row were the header.
    (damaged / layout.TRACKS_CSV).write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    result = genreslice("inspect", str(damaged), "--no-pictures")
    assert result.returncode == 1 and "tracks.csv: no path, status, split columns in its first line" in result.stderr


def test_inspect_help_explains_every_option():
    text = help_of("inspect", 4)
    assert "self-contained HTML" in text

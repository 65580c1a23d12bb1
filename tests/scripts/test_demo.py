"""``genreslice demo``, reduced (fewer and shorter songs), end to end as a user runs it; and its corpus."""
from __future__ import annotations

import collections
import csv
import json

import numpy as np
import pytest
from mutagen.id3 import ID3

from genreslice.pipeline.splits import assign_split, split_key
from genreslice.scripts.demo_corpus import GENRES, HARD_GENRES, synthesize_song, write_demo_corpus
from tests.helpers import genreslice, help_of


def test_the_corpus_is_tagged_laid_out_and_seeded(tmp_path, sox_info):
    songs = write_demo_corpus(tmp_path / "music", songs_per_genre=5, seconds=4.0, seed=3)
    assert collections.Counter(song.genre for song in songs) == {genre: 5 for genre in GENRES}
    artists = collections.defaultdict(set)
    for song in songs:
        assert song.path.relative_to(tmp_path / "music").parts[0] == song.artist  # ARTIST/ALBUM/NN TITLE.mp3
        assert song.path.read_bytes()[:3] == b"ID3" and song.path.stat().st_size > 10_000
        tags = ID3(song.path)
        assert tags["TCON"].text == [song.genre] and tags["TPE1"].text == [song.artist]
        artists[song.artist].add(song.genre)
    assert all(len(genres) == 1 for genres in artists.values())  # no artist in two genres
    for genre in GENRES:  # artist names chosen so that every genre reaches every split
        splits = {assign_split(split_key(song.artist, ""), (0.6, 0.2, 0.2)) for song in songs if song.genre == genre}
        assert splits == {"train", "validation", "test"}
    again = write_demo_corpus(tmp_path / "again", songs_per_genre=5, seconds=4.0, seed=3)
    assert [song.path.read_bytes() for song in again] == [song.path.read_bytes() for song in songs]


def test_genres_differ_and_songs_vary():
    """Cymbals and hats put energy above 5.5 kHz: most in Electronic (open hats), none to speak of in drum-less
    Folk. Jazz and Rock overlap there and differ in rhythm and harmony instead. Songs of a genre vary."""
    def high_share(audio):
        frames = audio[: len(audio) // 512 * 512].reshape(-1, 512)
        spectrum = np.abs(np.fft.rfft(frames, axis=1))
        return float((spectrum[:, 128:].sum(axis=1) / spectrum.sum(axis=1)).mean())

    rng = np.random.default_rng(0)
    shares = {genre: [high_share(synthesize_song(genre, rng, 10.0)) for _ in range(4)] for genre in GENRES}
    assert max(shares["Folk"]) < 0.15 < min(shares["Jazz"] + shares["Rock"])
    assert min(shares["Electronic"]) > max(shares["Jazz"] + shares["Rock"])
    for genre in GENRES:
        audio = [synthesize_song(genre, np.random.default_rng(seed), 5.0) for seed in (1, 2)]
        assert not np.allclose(audio[0], audio[1])
        np.testing.assert_array_equal(synthesize_song(genre, np.random.default_rng(1), 5.0), audio[0])
    with pytest.raises(ValueError, match="genre='Polka'"):
        synthesize_song("Polka", rng)


def test_the_hard_corpus_adds_genres_and_mixes_each_song_with_another_genre(tmp_path, sox_info):
    """make bench-models's corpus: six genres, seeded; each song carries a quieter arrangement of another genre,
    so its spectrum is closer to the other genres' than the same song's plain version is."""
    assert set(HARD_GENRES) == set(GENRES) | {"Blues", "Hip-Hop"}
    songs = write_demo_corpus(tmp_path / "music", songs_per_genre=3, seconds=3.0, seed=5, hard=True)
    assert collections.Counter(song.genre for song in songs) == {genre: 3 for genre in HARD_GENRES}
    assert all(ID3(song.path)["TCON"].text == [song.genre] for song in songs)

    def spectrum(audio):
        frames = audio[: len(audio) // 1024 * 1024].reshape(-1, 1024)
        power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
        return power / power.sum()

    def distance_to_other_genres(genre, hard):
        own = spectrum(synthesize_song(genre, np.random.default_rng(11), 8.0, hard=hard))
        others = [spectrum(synthesize_song(other, np.random.default_rng(12), 8.0)) for other in GENRES
                  if other != genre]
        return float(np.mean([np.abs(own - other).sum() for other in others]))

    closer = [distance_to_other_genres(genre, True) < distance_to_other_genres(genre, False) for genre in GENRES]
    assert sum(closer) >= 3, closer
    hard = synthesize_song("Hip-Hop", np.random.default_rng(1), 4.0, hard=True)
    np.testing.assert_array_equal(synthesize_song("Hip-Hop", np.random.default_rng(1), 4.0, hard=True), hard)
    with pytest.raises(ValueError, match="genre='Blues'"):
        synthesize_song("Blues", np.random.default_rng(1), 4.0)  # not in the demo's corpus


@pytest.mark.slow
def test_the_demo_runs_end_to_end_at_the_smallest_values_its_help_allows(tmp_path):
    """The whole demo, at the smallest corpus its help allows: --songs-per-genre 4 --seconds 3. At these values two
    songs per artist once left a split without artists (before: "the train split has no slices"): every genre must
    reach every split."""
    out = tmp_path / "my demo"
    result = genreslice("demo", "--out", str(out), "--songs-per-genre", "4", "--seconds", "3", "--no-progress",
                        "--workers", "2")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for step in ("== genreslice build", "== genreslice train", "== genreslice evaluate", "== genreslice predict",
                 "== genreslice export", "== Demo report"):
        assert step in text
    assert "corpus      16 songs of 4 genres (Electronic, Folk, Jazz, Rock)" in text
    assert "caution     a toy: it knows 4 synthetic genres" in text
    with open(out / "dataset" / "tracks.csv", newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row["status"] == "ok"]
    per_split = collections.Counter((row["genre"], row["split"]) for row in rows)
    assert {(genre, split) for genre in GENRES for split in ("train", "validation", "test")} <= set(per_split)
    # The demo builds log-mel slices and trains the default model, the CRNN, with the commands it shows.
    assert f"== genreslice build {out / 'music'} {out / 'dataset'} --features mel " in text
    assert f"== genreslice train {out / 'dataset'} {out / 'model'} --seed 0 --no-progress\n" in text
    assert json.loads((out / "dataset" / "dataset.json").read_text())["spectrogram"]["features"] == "mel"
    assert json.loads((out / "model" / "model.json").read_text())["training"]["model"] == "crnn"
    assert "training    crnn model, " in text
    metrics = json.loads((out / "model" / "eval" / "test" / "metrics.json").read_text())
    assert metrics["n_songs"] == 4 and metrics["classes"] == list(GENRES)
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(record["status"] == "ok" for record in records)
    tags = {str(out / "music" / row["path"]): row["genre"] for row in rows if row["split"] == "test"}
    assert sorted(record["path"] for record in records) == sorted(tags)
    right = sum(record["genre"] == tags[record["path"]] for record in records)
    assert f"predict     {right} of 4 held-out songs classified as their tag says" in text
    assert f"song accuracy {metrics['song_accuracy_majority']:.3f} (majority vote)" in text
    assert (out / "model" / "curves.png").is_file() and (out / "model" / "eval" / "test" / "confusion.png").is_file()
    # The model exported, checked, and its card and script beside it.
    assert "Check: " in text and "passed." in text and f"export      {out / 'exported'}: " in text
    card = json.loads((out / "exported" / "genreslice-model.json").read_text())
    assert card["classes"] == list(GENRES) and card["export"]["format"] == "onnx"
    assert (out / "exported" / "model.onnx").stat().st_size > 10_000 and (out / "exported" / "classify.py").is_file()

    again = genreslice("demo", "--out", str(out), "--songs-per-genre", "4", "--seconds", "3", "--no-progress")
    assert again.returncode == 0 and "Making" not in again.stdout and "is already trained" in again.stdout
    other = genreslice("demo", "--out", str(out), "--seed", "1", "--no-progress")
    assert other.returncode == 1 and "holds a demo of another corpus" in other.stderr


def test_help_explains_every_option():
    assert "--songs-per-genre" in help_of("demo", 6)


@pytest.fixture
def earlier_demo(tmp_path):
    """A folder that holds a demo's settings and corpus folder, so the demo goes straight to its commands."""
    out = tmp_path / "earlier demo"
    (out / "music").mkdir(parents=True)
    (out / "demo.json").write_text(json.dumps({"seed": 0, "songs_per_genre": 4, "seconds": 3.0}))
    return out


def test_a_failing_step_is_reported_as_its_command_reports_it(earlier_demo, monkeypatch, capsys):
    from genreslice.errors import GenresliceError
    from genreslice.scripts.cli import main
    from genreslice.scripts.commands import build

    def no_audio(*args, **options):
        raise GenresliceError(f"{args[0]}: no audio files")

    monkeypatch.setattr(build, "build", no_audio)
    assert main(["demo", "--out", str(earlier_demo), "--songs-per-genre", "4", "--seconds", "3", "--no-progress",
                 "--workers", "1"]) == 1
    output = capsys.readouterr()
    music, dataset = earlier_demo / "music", earlier_demo / "dataset"
    assert output.out == (f"\n== genreslice build {music} {dataset} --features mel --split-ratios 0.6,0.2,0.2 "
                          "--workers 1 --no-progress\n")
    assert output.err == (f"genreslice build: error: {music}: no audio files\n"
                          "genreslice demo: error: 'genreslice build' failed with exit status 1; see its message "
                          "above\n")


@pytest.mark.parametrize("recorded, features", [
    ({"spectrogram": {"sample_rate": 22050, "slice_size": 128}}, "sox"),  # an earlier version's demo: SoX's slices
    ({"spectrogram": {"features": "mel", "sample_rate": 22050}}, "mel"),
    (None, "mel"),  # no data set yet
    ("{ damaged", "mel"),  # the build says what it finds
])
def test_a_rerun_builds_the_representation_of_the_folders_data_set(earlier_demo, monkeypatch, capsys, recorded,
                                                                     features):
    from genreslice.errors import GenresliceError
    from genreslice.scripts.cli import main
    from genreslice.scripts.commands import build

    if recorded is not None:
        (earlier_demo / "dataset").mkdir()
        (earlier_demo / "dataset" / "dataset.json").write_text(
            recorded if isinstance(recorded, str) else json.dumps(recorded))
    built = []

    def stop(music, dataset, labels, config, **options):
        built.append(config.spec.features)
        raise GenresliceError("stopped by the test")

    monkeypatch.setattr(build, "build", stop)
    assert main(["demo", "--out", str(earlier_demo), "--songs-per-genre", "4", "--seconds", "3", "--no-progress",
                 "--workers", "1"]) == 1
    assert built == [features]
    assert f" --features {features} --split-ratios " in capsys.readouterr().out


def test_ctrl_c_in_a_step_is_reported_once_by_the_demo(earlier_demo, monkeypatch, capsys):
    from genreslice.scripts.cli import main
    from genreslice.scripts.commands import build

    def interrupted(*args, **options):
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "build", interrupted)
    assert main(["demo", "--out", str(earlier_demo), "--songs-per-genre", "4", "--seconds", "3",
                 "--no-progress"]) == 130
    assert capsys.readouterr().err == "\ngenreslice demo: interrupted; run the same command again to resume.\n"

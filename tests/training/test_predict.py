"""Classifying audio files straight from audio: the same slices as the build, new songs, bad files, batching."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from genreslice.pipeline.layout import SLICES_CSV
from tests.helpers import synth, toy_song, unprivileged
from genreslice.training.data_source import load_gray, load_slices
from genreslice.training.dataset import load_dataset_info
from genreslice.training.errors import ModelDirError
from genreslice.training.predict import Classifier, classify, collect_audio


@pytest.fixture(scope="module")
def classifier(toy_model):
    return Classifier(toy_model / "model")


@pytest.fixture(scope="module")
def new_songs(tmp_path_factory):
    """30-second songs of each toy genre at pitches the model never heard, under odd names, in nested folders."""
    root = tmp_path_factory.mktemp("new songs")
    songs = {
        root / "albums" / "jazz" / "it's a \"sine\" (take 2).mp3": ("Jazz", 333),
        root / "albums" / "-leading dash $(touch pwned).mp3": ("Electronic", 444),
        root / "albums" / "électronique" / "音楽 square.mp3": ("Electronic", 555),
        root / "albums" / "noise; rm -rf ~.mp3": ("Rock", 666),
        root / "single [1] *.mp3": ("Jazz", 777),
    }
    for path, (genre, pitch) in songs.items():
        toy_song(path, genre, pitch, seconds=30.0)
    return root, {path: genre for path, (genre, _) in songs.items()}


def test_in_memory_slices_are_the_builds_slices(toy_model, classifier):
    """A built track classified from its audio gets the probabilities its PNG slices get."""
    info = load_dataset_info(toy_model / "dataset")
    tracks = {row.split(",")[0]: row for row in (toy_model / "dataset" / "tracks.csv").read_text().splitlines()[1:]}
    track_id, row = next(iter(tracks.items()))
    slices = [line.split(",")[0] for line in (toy_model / "dataset" / SLICES_CSV).read_text().splitlines()[1:]
              if line.split(",")[1] == track_id]
    model = keras.models.load_model(toy_model / "model" / "model.keras")
    from_pngs = model.predict(load_slices([str(info.root / path) for path in slices]), verbose=0)
    audio = toy_model / "music" / row.split(",")[1]
    from genreslice.pipeline.spectrogram import render_slices

    in_memory = render_slices(audio, classifier.spec).slices
    assert in_memory.shape == (len(slices), 128, 128) == (4, 128, 128)
    np.testing.assert_allclose(classifier.predict_slices(in_memory), from_pngs, atol=1e-5)
    [song] = classifier.classify(audio)
    assert song.ok and song.n_slices == 4
    np.testing.assert_allclose(list(song.mean_probability.values()), from_pngs.mean(axis=0), atol=1e-4)
    # Nothing was written next to the audio or in the model folder.
    assert sorted(os.listdir(audio.parent)) == sorted(name for name in os.listdir(audio.parent) if name.endswith(".mp3"))


def test_new_songs_are_classified_by_genre(classifier, new_songs):
    root, truth = new_songs
    songs = classifier.classify([root])
    assert [song.path for song in songs] == sorted(str(path) for path in truth)  # recursive, sorted by path
    for song in songs:
        assert song.ok and song.status == "ok" and song.reason == ""
        assert song.genre == truth[Path(song.path)], song
        assert song.n_slices == 11 and song.duration_s == pytest.approx(30.0, abs=0.1)
        assert set(song.votes) == set(song.mean_probability) == {"Electronic", "Jazz", "Rock"}
        assert sum(song.votes.values()) == song.n_slices
        assert song.vote_share == pytest.approx(song.votes[song.genre] / song.n_slices, abs=1e-4)
        assert song.vote_share > 0.5 and song.top(1)[0][0] == song.genre
        assert sum(song.mean_probability.values()) == pytest.approx(1.0, abs=1e-3)
    assert not (root / "albums" / "pwned").exists() and not any(root.glob("**/pwned"))


def test_bad_inputs_are_reported_and_the_rest_go_on(classifier, new_songs, tmp_path):
    root, truth = new_songs
    good = sorted(truth)[0]
    empty = tmp_path / "empty.mp3"
    empty.touch()
    random_bytes = tmp_path / "random.wav"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(good.read_bytes()[:3000])
    short = synth(tmp_path / "short.flac", 1.5)
    one_sample = synth(tmp_path / "one sample.wav", "1s")  # SoX: "1s" is one sample, less than one column
    empty_folder = tmp_path / "no audio here"
    empty_folder.mkdir()
    (empty_folder / "notes.txt").write_text("not audio")
    inputs = [empty, random_bytes, good, truncated, short, tmp_path / "missing.mp3", empty_folder, one_sample,
              good]
    songs = classifier.classify(inputs, workers=2)
    by_path = {song.path: song for song in songs}
    assert [song.path for song in songs] == [str(path) for path in inputs[:-1]]  # in order; the repeat once
    assert by_path[str(good)].ok and by_path[str(good)].genre == truth[good]
    for path in (empty, random_bytes):
        song = by_path[str(path)]
        assert song.status == "failed" and "SoX exited with status" in song.reason and song.genre is None
    truncated_song = by_path[str(truncated)]
    assert truncated_song.status in ("failed", "too_short") or truncated_song.reason.startswith("padded: ")
    assert by_path[str(short)].ok and by_path[str(short)].n_slices == 1  # padded to one slice
    assert by_path[str(short)].reason == ("padded: 1.5 s of audio is shorter than one slice (2.55 s); repeated to "
                                          "fill one slice")
    assert by_path[str(one_sample)].status == "too_short"
    assert by_path[str(one_sample)].reason == "0 s of audio is shorter than one slice (2.55 s)"
    assert by_path[str(tmp_path / "missing.mp3")].reason == "no such file or folder"
    assert by_path[str(empty_folder)].status == "failed"
    assert by_path[str(empty_folder)].reason.startswith("no audio files (")
    assert all(not song.votes and song.vote_share is None for song in songs if not song.ok)


def test_slices_of_many_songs_share_model_calls(classifier, new_songs):
    root, _ = new_songs
    calls = []

    class CountingModel:
        def predict_on_batch(self, batch):
            calls.append(len(batch))
            return classifier.trained.model.predict_on_batch(batch)

    counting = Classifier.__new__(Classifier)
    counting.__dict__.update(classifier.__dict__)
    counting.trained = dataclasses.replace(classifier.trained, model=CountingModel())
    reference = classifier.classify(root)
    assert [song.to_dict() for song in counting.classify(root, workers=2)] == [song.to_dict() for song in reference]
    assert calls == [55]  # five songs of 11 slices, one call
    calls.clear()
    counting.batch_size = 16
    small_batches = counting.classify(root)
    assert calls and max(calls) <= 16 and sum(calls) == 55
    for song, expected in zip(small_batches, reference):
        assert song.genre == expected.genre and song.votes == expected.votes
        for name, probability in song.mean_probability.items():
            assert probability == pytest.approx(expected.mean_probability[name], abs=2e-4)


def test_mean_vote_and_the_function_api(toy_model, new_songs):
    root, truth = new_songs
    songs = classify([root], toy_model / "model", vote="mean", workers=2)
    assert [song.genre for song in songs] == [truth[path] for path in sorted(truth)]
    assert all(song.vote == "mean" for song in songs)
    with pytest.raises(ValueError, match="vote='best'"):
        classify([root], toy_model / "model", vote="best")


def test_a_model_folder_without_usable_settings(toy_model, tmp_path):
    import json

    model = tmp_path / "model"
    shutil.copytree(toy_model / "model", model, ignore=shutil.ignore_patterns("checkpoint", "logs", "eval"))
    record = json.loads((model / "model.json").read_text())
    del record["spectrogram"]["sample_rate"]
    (model / "model.json").write_text(json.dumps(record))
    with pytest.raises(ModelDirError, match="spectrogram settings lack sample_rate"):
        Classifier(model)
    with pytest.raises(ModelDirError, match="no model.json"):
        Classifier(tmp_path)


def test_collect_audio_lists_folders_recursively_and_once(new_songs):
    root, truth = new_songs
    inputs = collect_audio([root / "albums", root, sorted(truth)[0]])
    assert [item.path for item in inputs] == sorted(path for path in truth if "albums" in path.parts) + [
        root / "single [1] *.mp3"]
    assert all(item.problem == "" for item in inputs)


def test_a_file_name_that_is_not_utf8(classifier, new_songs, tmp_path):
    import json

    root, truth = new_songs
    good = sorted(truth)[0]
    odd = tmp_path / os.fsdecode(b"caf\xe9 song.mp3")  # Latin-1 bytes from an old file system
    shutil.copy(good, odd)
    [song] = classifier.classify([tmp_path])
    assert song.ok and song.genre == truth[good]
    assert song.path == f"{tmp_path}/caf\\xe9 song.mp3"
    assert json.loads(json.dumps(song.to_dict(), ensure_ascii=False).encode("utf-8"))["path"] == song.path


def test_results_stream_out_before_the_last_file_is_read(classifier, tmp_path):
    """Files without a slice are reported at once, not held until a batch of slices fills up."""
    shorts = [synth(tmp_path / f"short {index:02d}.wav", "1s") for index in range(30)]  # one sample: no audio
    submitted = []

    class Counting(Classifier):
        def _render(self, item, vote, processes):
            submitted.append(item.path)
            return super()._render(item, vote, processes)

    counting = Counting.__new__(Counting)
    counting.__dict__.update(classifier.__dict__)
    songs = counting.iter_classify(shorts, workers=1)
    first = next(songs)
    assert first.status == "too_short" and first.path == str(shorts[0])
    assert len(submitted) < 15  # the decoder is only a few files ahead
    rest = list(songs)
    assert [song.path for song in rest] == [str(path) for path in shorts[1:]] and len(submitted) == 30


class ScriptedModel:
    """Stands in for the network: returns the given probability rows in order, one per slice it is shown."""

    def __init__(self, rows):
        self.rows = np.asarray(rows, dtype=np.float32)
        self.used = 0

    def predict_on_batch(self, batch):
        rows = self.rows[self.used : self.used + len(batch)]
        self.used += len(batch)
        return rows


def scripted(classifier, rows) -> Classifier:
    copy = Classifier.__new__(Classifier)
    copy.__dict__.update(classifier.__dict__)
    copy.trained = dataclasses.replace(classifier.trained, model=ScriptedModel(rows))
    return copy


def test_the_vote_decides_the_genre_and_its_share(classifier, new_songs):
    """Eleven slices: six weakly Rock, five strongly Jazz. Majority says Rock (6/11), the mean says Jazz (5/11)."""
    root, truth = new_songs
    song = sorted(truth)[0]  # 30 s: 11 slices; classes Electronic, Jazz, Rock
    rows = [[0.30, 0.30, 0.40]] * 6 + [[0.00, 0.95, 0.05]] * 5
    [majority] = scripted(classifier, rows).classify(song, vote="majority")
    [mean] = scripted(classifier, rows).classify(song, vote="mean")
    assert majority.genre == "Rock" and majority.vote == "majority"
    assert majority.vote_share == pytest.approx(6 / 11, abs=1e-4)
    assert mean.genre == "Jazz" and mean.vote == "mean" and mean.vote_share == pytest.approx(5 / 11, abs=1e-4)
    for record in (majority, mean):
        assert record.votes == {"Electronic": 0, "Jazz": 5, "Rock": 6}
        assert record.mean_probability == pytest.approx({"Electronic": 1.8 / 11, "Jazz": 6.55 / 11,
                                                         "Rock": 2.65 / 11}, abs=1e-4)
    # The ranking follows the vote, with the vote's score: the winner first, never a contradiction.
    assert majority.top(3) == [("Rock", round(6 / 11, 4)), ("Jazz", round(5 / 11, 4)), ("Electronic", 0.0)]
    assert mean.top(2) == [("Jazz", mean.mean_probability["Jazz"]), ("Rock", mean.mean_probability["Rock"])]
    assert majority.score == majority.vote_share and mean.score == mean.mean_probability["Jazz"]


def test_a_tie_in_votes_is_ranked_by_mean_probability(classifier, new_songs):
    """Rock and Jazz 4 votes each, Electronic 3 sure ones: by votes Rock (more mean probability), Jazz, Electronic;
    by mean probability Rock, Electronic, Jazz."""
    root, truth = new_songs
    rows = [[0.1, 0.3, 0.6]] * 4 + [[0.1, 0.55, 0.35]] * 4 + [[0.98, 0.01, 0.01]] * 3
    [majority] = scripted(classifier, rows).classify(sorted(truth)[0])
    [mean] = scripted(classifier, rows).classify(sorted(truth)[0], vote="mean")
    assert majority.votes == {"Electronic": 3, "Jazz": 4, "Rock": 4} and majority.genre == mean.genre == "Rock"
    assert majority.top(3) == [("Rock", round(4 / 11, 4)), ("Jazz", round(4 / 11, 4)), ("Electronic", round(3 / 11, 4))]
    assert [name for name, _ in mean.top(3)] == ["Rock", "Electronic", "Jazz"]
    assert mean.top(1) == [("Rock", pytest.approx(3.83 / 11, abs=1e-4))]


def test_below_min_share_the_answer_is_unsure_and_the_scores_stay(classifier, new_songs):
    """Six weakly Rock slices of eleven: a 0.545 majority, a 0.595 mean probability for Jazz."""
    root, truth = new_songs
    song = sorted(truth)[0]
    rows = [[0.30, 0.30, 0.40]] * 6 + [[0.00, 0.95, 0.05]] * 5
    [default] = scripted(classifier, rows).classify(song)
    [sure] = scripted(classifier, rows).classify(song, min_share=0.5)
    [unsure] = scripted(classifier, rows).classify(song, min_share=0.6)
    [mean_unsure] = scripted(classifier, rows).classify(song, vote="mean", min_share=0.6)
    [mean_sure] = scripted(classifier, rows).classify(song, vote="mean", min_share=0.59)
    assert not default.unsure and default.genre == "Rock"
    assert list(default.to_dict()) == ["path", "status", "reason", "genre", "vote", "vote_share", "n_slices",
                                       "duration_s", "votes", "mean_probability"]  # unchanged without a threshold
    assert not sure.unsure and sure.genre == "Rock" and sure.to_dict()["unsure"] is False
    assert unsure.ok and unsure.unsure and unsure.genre is None and unsure.best_guess == "Rock"
    assert unsure.votes == default.votes and unsure.mean_probability == default.mean_probability
    record = unsure.to_dict()
    assert (record["status"], record["genre"], record["unsure"], record["best_guess"], record["min_share"]) == (
        "ok", None, True, "Rock", 0.6)
    assert mean_unsure.unsure and mean_unsure.best_guess == "Jazz" and mean_unsure.genre is None
    assert not mean_sure.unsure and mean_sure.genre == "Jazz"
    for bad in (-0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="min_share="):
            classifier.classify(song, min_share=bad)


def test_a_clip_shorter_than_one_slice_is_repeated_to_fill_one(classifier, tmp_path):
    clip = toy_song(tmp_path / "one second of jazz.mp3", "Jazz", 333, seconds=1.0)
    seen = []

    class Watching:
        def predict_on_batch(self, batch):
            seen.append(np.asarray(batch))
            return classifier.trained.model.predict_on_batch(batch)

    watching = Classifier.__new__(Classifier)
    watching.__dict__.update(classifier.__dict__)
    watching.trained = dataclasses.replace(classifier.trained, model=Watching())
    [song] = watching.classify(clip)
    assert song.ok and song.n_slices == 1 and song.genre == "Jazz"
    assert song.duration_s == pytest.approx(1.0, abs=0.05)
    assert song.reason == (f"padded: {song.duration_s:g} s of audio is shorter than one slice (2.55 s); repeated "
                           "to fill one slice")
    [batch] = seen
    image = batch[0, :, :, 0]
    columns = round(song.duration_s * classifier.spec.pixels_per_second)
    assert 0 < columns < image.shape[1]
    # Every column repeats the clip's: the clip tiled, not padded with silence.
    np.testing.assert_array_equal(image, image[:, np.arange(image.shape[1]) % columns])
    assert image[:, columns:].max() > 0


def test_stopping_early_kills_running_sox(classifier, tmp_path):
    """Closing the generator (as Ctrl-C does) must not wait for SoX, which runs out of the terminal's reach."""
    import time

    from genreslice.pipeline.sox import SoxInfo

    slow_sox = tmp_path / "slow sox"
    slow_sox.write_text("#!/bin/sh\nexec sleep 60\n")
    slow_sox.chmod(0o755)
    slow = Classifier.__new__(Classifier)
    slow.__dict__.update(classifier.__dict__)
    slow.sox = SoxInfo(path=str(slow_sox), version=classifier.sox.version, formats=classifier.sox.formats)
    audio = synth(tmp_path / "any.wav", 3.0)
    songs = slow.iter_classify([tmp_path / "missing.mp3", audio, audio.with_name("other.wav")], workers=2)
    assert next(songs).reason == "no such file or folder"  # by now the slow SoX runs for the next file
    started = time.monotonic()
    songs.close()
    assert time.monotonic() - started < 10


def test_a_path_that_cannot_be_examined_fails_alone(classifier, new_songs):
    root, truth = new_songs
    good = sorted(truth)[0]
    too_long = "x" * 300 + ".mp3"
    songs = classifier.classify([too_long, good])
    assert songs[0].status == "failed" and songs[0].reason == "cannot be examined: File name too long"
    assert songs[1].ok and songs[1].genre == truth[good]


@pytest.mark.parametrize("key, value", [
    ("columns_per_second", 0), ("columns_per_second", -50.1), ("columns_per_second", "50"),
    ("slice_seconds", 0.0), ("slice_seconds", float("nan")), ("slice_seconds", float("inf")),
    ("slice_seconds", True),
])
def test_unusable_slice_timing_in_model_json_is_refused(toy_model, tmp_path, key, value):
    import json

    model = tmp_path / "model"
    shutil.copytree(toy_model / "model", model, ignore=shutil.ignore_patterns("checkpoint", "logs", "eval"))
    record = json.loads((model / "model.json").read_text())
    assert record["spectrogram"][key] > 0  # what the build measured
    record["spectrogram"][key] = value
    (model / "model.json").write_text(json.dumps(record))
    with pytest.raises(ModelDirError) as caught:
        Classifier(model)
    assert str(caught.value) == (f"{model / 'model.json'}: spectrogram.{key}={value!r} must be a number above 0. "
                                 "Restore the file from a backup, or copy the value from the 'spectrogram' block of "
                                 "the data set's dataset.json")


def test_folders_that_cannot_be_read_are_reported_as_failed_inputs(tmp_path):
    root = tmp_path / "music"
    synth(root / "open/a.wav", 3.0)
    synth(root / "locked/b.wav", 3.0)
    code = ("import json, sys\n"
            "from genreslice.training.predict import collect_audio\n"
            "print(json.dumps([[[item.shown, item.problem] for item in collect_audio([path])] for path in sys.argv[1:]]))\n")
    (root / "locked").chmod(0)
    try:
        run = subprocess.run([*unprivileged(), sys.executable, "-c", code, str(root), str(root / "locked")],
                             capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2], check=True)
    finally:
        (root / "locked").chmod(0o755)
    assert json.loads(run.stdout) == [
        [[f"{root}/locked", "cannot read this folder: Permission denied"], [f"{root}/open/a.wav", ""]],  # in a folder
        [[f"{root}/locked", "cannot read this folder: Permission denied"]],  # given itself
    ]


@pytest.fixture(scope="module")
def mel_toy(toy_model, tmp_path_factory, sox_info):
    """The toy songs built again with ``--features mel``, and a copy of the toy model folder whose model.json
    records that data set's spectrogram block (the sox-trained network stands in for a mel model: only the
    slicing is under test)."""
    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.build import BuildConfig, build_dataset
    from genreslice.pipeline.spectrogram import SpectrogramSpec
    from tests.helpers import TOY_SPLIT_RATIOS

    root = tmp_path_factory.mktemp("mel toy")
    build_dataset(toy_model / "music", root / "dataset", make_label_source("id3"),
                  BuildConfig(spec=SpectrogramSpec(features="mel"), split_ratios=TOY_SPLIT_RATIOS, workers=2),
                  sox=sox_info)
    model = root / "model"
    shutil.copytree(toy_model / "model", model, ignore=shutil.ignore_patterns("logs", "eval"))
    record = json.loads((model / "model.json").read_text())
    record["spectrogram"] = load_dataset_info(root / "dataset").spectrogram
    (model / "model.json").write_text(json.dumps(record, indent=2))
    return root


def test_in_memory_mel_slices_are_the_builds_pngs(toy_model, mel_toy):
    """predict renders a mel model's songs with the settings of its model.json, pixel for pixel as the build."""
    mel_classifier = Classifier(mel_toy / "model")
    assert mel_classifier.spec.features == "mel" and mel_classifier.slice_seconds == 2.56
    info = load_dataset_info(mel_toy / "dataset")
    rows = [line.split(",") for line in (mel_toy / "dataset" / "tracks.csv").read_text().splitlines()[1:]][:3]
    model = keras.models.load_model(toy_model / "model" / "model.keras")
    from genreslice.pipeline.spectrogram import render_slices

    for row in rows:
        track_id, audio = row[0], toy_model / "music" / row[1]
        paths = [str(info.root / line.split(",")[0])
                 for line in (mel_toy / "dataset" / SLICES_CSV).read_text().splitlines()[1:]
                 if line.split(",")[1] == track_id]
        in_memory = render_slices(audio, mel_classifier.spec).slices
        assert in_memory.shape == (len(paths), 128, 128) == (4, 128, 128)
        assert np.array_equal(in_memory, load_gray(paths))
        [song] = mel_classifier.classify(audio)  # the Classifier's own path: same probabilities as the PNGs'
        assert song.ok and song.n_slices == 4
        np.testing.assert_allclose(list(song.mean_probability.values()),
                                   model.predict(load_slices(paths), verbose=0).mean(axis=0), atol=1e-4)


def test_one_representation_refuses_a_model_or_a_run_of_the_other(toy_model, mel_toy, tmp_path):
    from genreslice.training.evaluate import evaluate_model
    from genreslice.training.model_dir import check_compatible, read_model_json
    from genreslice.training.settings import TrainConfig
    from genreslice.training.train import train_model

    sox_model, mel_model = toy_model / "model", mel_toy / "model"
    mel_data, sox_data = load_dataset_info(mel_toy / "dataset"), load_dataset_info(toy_model / "dataset")
    assert (mel_data.features, sox_data.features) == ("mel", "sox")
    with pytest.raises(ModelDirError, match=r"\(spectrogram.features: model 'sox', data set 'mel'\)"):
        check_compatible(read_model_json(sox_model), mel_data, where=str(sox_model))
    with pytest.raises(ModelDirError, match=r"\(spectrogram.features: model 'mel', data set 'sox'\)"):
        evaluate_model(toy_model / "dataset", mel_model)
    with pytest.raises(ModelDirError, match=r"\(spectrogram.features: model 'sox', data set 'mel'\)"):
        evaluate_model(mel_toy / "dataset", sox_model)
    run = tmp_path / "run"  # a sox run to resume, with its state
    shutil.copytree(sox_model, run, ignore=shutil.ignore_patterns("logs", "eval"))
    with pytest.raises(ModelDirError, match=r"\(spectrogram.features: model 'sox', data set 'mel'\)"):
        train_model(mel_toy / "dataset", run, TrainConfig(epochs=1))

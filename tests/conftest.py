from __future__ import annotations

import shutil

import pytest

from genreslice.pipeline.sox import find_sox


@pytest.fixture(scope="session")
def sox_info():
    """The checked SoX; the whole suite needs SoX with MP3 support (``make test`` installs it)."""
    if shutil.which("sox") is None:
        pytest.fail("SoX is not installed: run `make test`, which installs sox and libsox-fmt-mp3")
    return find_sox()


#: Three "genres" a small CNN tells apart after a few seconds of training: pure tones, rich tones, noise.
TOY_GENRES = {"Jazz": "sine", "Electronic": "square", "Rock": "pinknoise"}
TOY_SPLIT_RATIOS = (0.6, 0.2, 0.2)
TOY_TRACKS = {"train": 4, "validation": 1, "test": 2}


def artist_in_split(split: str, ratios: tuple[float, float, float], prefix: str) -> str:
    """An artist name that the build's artist hash puts in ``split``: fixes each track's split in a test."""
    from genreslice.pipeline.splits import assign_split, split_key

    return next(name for name in (f"{prefix}-{n}" for n in range(10_000))
                if assign_split(split_key(name, ""), ratios) == split)


def toy_song(path, genre: str, pitch: float, seconds: float = 12.0, artist: str | None = None):
    """A tagged MP3 of one toy genre at ``pitch`` Hz (pitches 150 to 900 are what the toy model was trained on)."""
    from tests.audio import tagged_mp3

    return tagged_mp3(path, seconds, genre, artist, TOY_GENRES[genre], f"{pitch:g}")


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory, sox_info):
    """A data set built by ``build_dataset`` from 21 synthetic songs of 3 toy genres (4/1/2 tracks per genre in
    train/validation/test, 4 slices each), and a ``compact`` model trained on it until it tells them apart.

    Returns the folder holding ``music/``, ``dataset/`` and ``model/``.
    """
    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.build import BuildConfig, build_dataset
    from genreslice.training.settings import TrainConfig
    from genreslice.training.train import train_model

    root = tmp_path_factory.mktemp("toy")
    index = 0
    for genre in TOY_GENRES:
        for split, count in TOY_TRACKS.items():
            for _ in range(count):
                toy_song(root / "music" / genre / f"song {index:02d}.mp3", genre, 150 + 37 * index,
                         artist=artist_in_split(split, TOY_SPLIT_RATIOS, f"artist {index}"))
                index += 1
    build_dataset(root / "music", root / "dataset", make_label_source("id3"),
                  BuildConfig(split_ratios=TOY_SPLIT_RATIOS, workers=2))
    result = train_model(root / "dataset", root / "model",
                         TrainConfig(epochs=40, batch_size=16, seed=0, target_accuracy=1.0, target_loss=0.1,
                                     patience=0))
    assert result.metrics["val_accuracy"] == 1.0, result.metrics
    return root

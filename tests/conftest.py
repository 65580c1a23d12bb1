from __future__ import annotations

import shutil

import pytest

from genreslice.pipeline.sox import find_sox
from tests.helpers import TOY_GENRES, TOY_SPLIT_RATIOS, TOY_TRACKS, artist_in_split, toy_song


@pytest.fixture(scope="session")
def sox_info():
    """The checked SoX; the whole suite needs SoX with MP3 support (``make test`` installs it)."""
    if shutil.which("sox") is None:
        pytest.fail("SoX is not installed: run `make test`, which installs sox and libsox-fmt-mp3")
    return find_sox()


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
                         TrainConfig(model="compact", epochs=40, batch_size=8, seed=0, target_accuracy=1.0,
                                     target_loss=0.1, patience=0))
    assert result.metrics["val_accuracy"] == 1.0, result.metrics
    return root

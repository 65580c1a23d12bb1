"""Each preset added after ``compact`` and ``despoisj`` learns the demo corpus in a few epochs.

Batch normalization was dropped from ``compact`` because its statistics lagged on tiny data sets; the new presets
that use it must still learn there (see ``BN_MOMENTUM`` in ``genreslice.training.models``: with Keras's defaults
the dance and CRNN networks stayed at chance on this corpus). One small demo corpus (the synthesiser of
``genreslice demo``: 4 genres, 8 songs of 15 s each, split by artist) is built once for the module; each preset
trains with its own optimizer and learning rate until its validation accuracy reaches 0.6 (chance is 0.25),
at most 8 epochs. Batch 8 gives the 80 training slices 10 steps per epoch, about as many as the presets' own
batch sizes give the demo's default corpus (16 songs of 30 s per genre).
"""
from __future__ import annotations

import pytest

from genreslice.training.settings import TrainConfig
from genreslice.training.train import train_model

pytestmark = pytest.mark.slow

SPLIT_RATIOS = (0.6, 0.2, 0.2)
CHANCE = 0.25
CLEARLY_ABOVE_CHANCE = 0.6


@pytest.fixture(scope="module")
def demo_dataset(tmp_path_factory, sox_info):
    from genreslice.genre_getters import make_label_source
    from genreslice.pipeline.build import BuildConfig, build_dataset
    from genreslice.scripts.demo_corpus import write_demo_corpus

    root = tmp_path_factory.mktemp("demo corpus")
    write_demo_corpus(root / "music", songs_per_genre=8, seconds=15.0, seed=0, split_ratios=SPLIT_RATIOS)
    build_dataset(root / "music", root / "dataset", make_label_source("id3"),
                  BuildConfig(split_ratios=SPLIT_RATIOS, workers=2), sox=sox_info)
    return root / "dataset"


@pytest.mark.parametrize("name", ["crnn", "dance", "mfcc_cnn", "mfcc_lstm", "shortres"])
def test_each_new_preset_beats_chance_clearly_on_the_demo_corpus(name, demo_dataset, tmp_path):
    config = TrainConfig(model=name, epochs=8, batch_size=8, seed=0, target_accuracy=CLEARLY_ABOVE_CHANCE,
                         target_loss=None, patience=0, monitor="val_accuracy", loader_workers=2)
    result = train_model(demo_dataset, tmp_path / "model", config)
    accuracies = [row["val_accuracy"] for row in result.history]
    assert result.stop_reason == "target", f"{name}: validation accuracy per epoch {accuracies}"
    assert result.metrics["val_accuracy"] >= CLEARLY_ABOVE_CHANCE > CHANCE

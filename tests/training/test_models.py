"""The model presets: the contract every entry keeps, the lineage's architecture layer by layer, and the compact
one's size and behaviour."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from genreslice.errors import ParameterError
from genreslice.training.dataset import load_dataset_info
from genreslice.training.models import OPTIMIZERS, PRESETS, ModelPreset, build_model
from genreslice.training.settings import TrainConfig


def test_despoisj_is_the_lineage_architecture():
    model = build_model("despoisj", 5)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [layer.filters for layer in convs] == [64, 128, 256, 512]
    assert all(layer.kernel_size == (2, 2) and layer.activation.__name__ == "elu" for layer in convs)
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pools) == 4 and all(layer.pool_size == (2, 2) for layer in pools)
    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    assert flatten.output.shape[-1] == 32768
    dense, output = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense.units == 1024 and dense.activation.__name__ == "elu"
    assert next(layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)).rate == 0.5
    assert output.units == 5 and output.activation.__name__ == "softmax"
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    convs_params = sum(4 * fan_in * filters + filters for fan_in, filters in [(1, 64), (64, 128), (128, 256), (256, 512)])
    assert model.count_params() == convs_params + (32768 * 1024 + 1024) + (1024 * 5 + 5)


def test_compact_is_small_and_uses_global_pooling():
    model = build_model("compact", 4, learning_rate=0.01)
    assert model.count_params() < 200_000
    assert any(isinstance(layer, keras.layers.GlobalAveragePooling2D) for layer in model.layers)
    assert not any(isinstance(layer, keras.layers.Flatten) for layer in model.layers)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    probabilities = model.predict(np.random.default_rng(0).random((3, 128, 128, 1), dtype=np.float32), verbose=0)
    assert probabilities.shape == (3, 4) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_compact_learns_a_separable_problem():
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    labels = rng.integers(0, 2, 128)
    x = rng.random((128, 128, 128, 1), dtype=np.float32) * 0.2
    x[labels == 1, 40:60] += 0.7  # a bright band of rows for class 1
    model = build_model("compact", 2)
    history = model.fit(x, labels, epochs=8, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] > 0.9


def test_unknown_model_and_too_few_classes_are_refused():
    with pytest.raises(ValueError, match="model='vgg' is not one of compact, despoisj"):
        build_model("vgg", 3)
    with pytest.raises(ValueError, match="n_classes=1 must be at least 2"):
        build_model("compact", 1)


# The contract every preset keeps, run over every entry of the registry (as mirdata's test_loaders runs over every
# data set): adding a preset is adding an entry, and this test is what checks it. One step on a batch of 2 keeps
# despoisj's (34 M parameters) under 10 s on a CPU.
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_trains_a_step_and_saves(name, small_dataset, tmp_path):
    preset = PRESETS[name]
    info = load_dataset_info(small_dataset)
    size, n_classes = info.slice_size, len(info.classes)
    keras.utils.set_random_seed(0)
    model = build_model(name, n_classes, slice_size=size)
    assert preset.name == name
    assert model.input_shape == (None, size, size, 1) and model.output_shape == (None, n_classes)
    assert type(model.optimizer).__name__ == OPTIMIZERS[preset.optimizer]
    assert float(model.optimizer.learning_rate) == pytest.approx(preset.learning_rate)
    assert TrainConfig(model=name).resolved().batch_size == preset.batch_size
    assert TrainConfig(model=name).resolved().learning_rate == preset.learning_rate

    rng = np.random.default_rng(0)
    x, y = rng.random((2, size, size, 1), dtype=np.float32), np.array([0, n_classes - 1])
    before = model.get_weights()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    assert int(model.optimizer.iterations) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert int(loaded.optimizer.iterations) == 1  # the optimizer state travels with it: a resumed run continues
    probabilities = loaded.predict_on_batch(x)
    np.testing.assert_array_equal(probabilities, model.predict_on_batch(x))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_preset_with_an_unknown_optimizer_is_refused():
    with pytest.raises(ParameterError, match="optimizer='sgd' must be one of adam, rmsprop"):
        ModelPreset(name="x", builder=PRESETS["compact"].builder, optimizer="sgd", learning_rate=0.1, batch_size=8,
                    about="")


def test_a_presets_help_line_states_its_defaults():
    assert PRESETS["compact"].description.endswith("(Adam 1e-3, batch 64)")
    assert PRESETS["despoisj"].description.endswith("(RMSprop 1e-3, batch 128)")
    assert dataclasses.replace(PRESETS["compact"], learning_rate=2.5e-4, batch_size=16).description.endswith(
        "(Adam 2.5e-4, batch 16)")

"""The two architectures: the lineage's layer by layer, and the compact one's size and behaviour."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from genreslice.training.models import build_model


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

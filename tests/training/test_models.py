"""The model presets: the contract every entry keeps, the lineage's architecture layer by layer, the compact
one's size and behaviour, the stated parameter counts, the width and L2 options, and the MFCC presets' DCT."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import scipy.fft

from genreslice.errors import ParameterError
from genreslice.training.models import OPTIMIZERS, PRESETS, ModelPreset, build_model, dct_matrix
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
    labels = rng.integers(0, 2, 64)
    x = rng.random((64, 128, 128, 1), dtype=np.float32) * 0.2
    x[labels == 1, 40:60] += 0.7  # a bright band of rows for class 1
    model = build_model("compact", 2)
    history = model.fit(x, labels, epochs=8, batch_size=16, verbose=0)  # 1.0 from epoch 6
    assert history.history["accuracy"][-1] > 0.9


def test_unknown_model_and_too_few_classes_are_refused():
    with pytest.raises(ValueError, match="model='vgg' is not one of compact, crnn, dance, despoisj, mfcc_cnn"):
        build_model("vgg", 3)
    with pytest.raises(ValueError, match="n_classes=1 must be at least 2"):
        build_model("compact", 1)


# The contract every preset keeps, run over every entry of the registry (as mirdata's test_loaders runs over every
# data set): adding a preset is adding an entry, and this test is what checks it. Each preset is built on the
# smallest slice it takes (despoisj's 34 M parameters at 128 become 1.2 M at 16), so one step of each is fast.
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_trains_a_step_and_saves(name, tmp_path):
    preset = PRESETS[name]
    size, n_classes = preset.min_slice_size, 3
    keras.utils.set_random_seed(0)
    model = build_model(name, n_classes, slice_size=size)
    # Tracing a train step costs seconds more than the step. The traced path is what training runs: the train
    # tests run compact's, test_presets_learn (slow) each new preset's; despoisj's is traced here.
    model.run_eagerly = name != "despoisj"
    assert preset.name == name
    assert model.input_shape == (None, size, size, 1) and model.output_shape == (None, n_classes)
    assert type(model.optimizer).__name__ == OPTIMIZERS[preset.optimizer]
    assert float(model.optimizer.learning_rate) == pytest.approx(preset.learning_rate)
    assert TrainConfig(model=name).resolved().batch_size == preset.batch_size
    assert TrainConfig(model=name).resolved().learning_rate == preset.learning_rate

    rng = np.random.default_rng(0)
    x, y = rng.random((4, size, size, 1), dtype=np.float32), np.array([0, 1, 2, n_classes - 1])
    before = model.get_weights()
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"]) and 0.0 <= logs["accuracy"] <= 1.0
    assert int(model.optimizer.iterations) == 1
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))

    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert int(loaded.optimizer.iterations) == 1  # the optimizer state travels with it: a resumed run continues
    # called directly (eagerly): no function to trace for a batch of 4
    probabilities = keras.ops.convert_to_numpy(loaded(x, training=False))
    np.testing.assert_array_equal(probabilities, keras.ops.convert_to_numpy(model(x, training=False)))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_a_slice_too_small_for_a_network_is_refused_by_name():
    with pytest.raises(ParameterError, match="slice_size=32 is too small for the dance network: it needs slices of "
                                             "at least 64 pixels"):
        build_model("dance", 4, slice_size=32)


def stated_size(about: str) -> str:
    """The parameter count a preset's help line states: ``135 k`` or ``34.2 M``."""
    match = re.search(r"([\d.]+ [kM]) parameters", about)
    assert match, about
    return match.group(1)


# What the README and --help say of each preset, on the slices a build makes (128x128) and 4 genres.
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_presets_stated_parameter_count_is_its_count_at_128_with_4_classes(name):
    count = build_model(name, 4).count_params()
    text = f"{count / 1e6:.1f} M" if count >= 1e6 else f"{round(count / 1e3)} k"
    assert stated_size(PRESETS[name].about) == text
    builder_doc = " ".join(PRESETS[name].builder.__doc__.split())
    if name not in ("compact", "despoisj"):  # the new presets state the exact count
        assert f"{count:,} parameters" in builder_doc


def conv_filters(model: keras.Model) -> list[int]:
    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_width_multiplies_the_filters_and_recurrent_units():
    assert conv_filters(build_model("compact", 4)) == [16, 32, 64, 64, 128]
    assert conv_filters(build_model("compact", 4, width=0.5)) == [8, 16, 32, 32, 64]
    assert conv_filters(build_model("compact", 4, width=1.3)) == [21, 42, 83, 83, 166]  # round(16 * 1.3) = 21
    assert conv_filters(build_model("compact", 4, width=0.01)) == [1, 1, 1, 1, 1]  # never fewer than 1
    narrow = build_model("crnn", 4, slice_size=32, width=0.5)
    assert conv_filters(narrow) == [16, 32, 32, 32]
    assert [layer.units for layer in narrow.layers if isinstance(layer, keras.layers.GRU)] == [16, 16]
    lstm = build_model("mfcc_lstm", 4, slice_size=16, width=2)
    assert [layer.units for layer in lstm.layers if isinstance(layer, keras.layers.LSTM)] == [128, 128]
    assert lstm.get_layer("dense").units == 64  # dense layers keep their size
    assert lstm.get_layer("dct").units == 13  # and the cepstrum its coefficients
    shortres = build_model("shortres", 4, slice_size=16, width=0.25)
    assert conv_filters(shortres)[::3] == [8, 8, 16, 16] and shortres.get_layer("dense").units == 16
    assert build_model("compact", 4, width=0.5).count_params() < build_model("compact", 4).count_params()


def test_l2_adds_a_penalty_on_every_kernel_and_none_by_default():
    plain = build_model("compact", 4, slice_size=32)
    assert plain.losses == []
    penalised = build_model("compact", 4, slice_size=32, l2=0.01)
    kernels = [layer.kernel for layer in penalised.layers if hasattr(layer, "kernel")]
    assert len(penalised.losses) == len(kernels) == 6
    expected = sum(0.01 * float(np.sum(np.square(keras.ops.convert_to_numpy(k)))) for k in kernels)
    assert sum(float(loss) for loss in penalised.losses) == pytest.approx(expected, rel=1e-5)
    # dance keeps the source's own 0.04 on three kernels; --l2 covers the other three
    assert len(build_model("dance", 4, slice_size=64).losses) == 3
    assert len(build_model("dance", 4, slice_size=64, l2=0.01).losses) == 6
    # the recurrent layers' input kernels count; the fixed DCT does not
    lstm = build_model("mfcc_lstm", 4, slice_size=16, l2=0.01)
    assert len(lstm.losses) == 4
    with pytest.raises(ParameterError, match="l2=-0.1 must be 0 or more"):
        build_model("compact", 4, l2=-0.1)
    with pytest.raises(ParameterError, match="width=0 must be a positive number"):
        build_model("compact", 4, width=0)


@pytest.mark.parametrize("name", ["mfcc_cnn", "mfcc_lstm"])
def test_the_mfcc_presets_start_with_a_fixed_dct_ii_of_each_column(name):
    model = build_model(name, 4, slice_size=32)
    dct = model.get_layer("dct")
    assert not dct.trainable and dct.use_bias is False and not dct.trainable_weights
    cepstrum = keras.Model(model.input, dct.output)
    x = np.random.default_rng(3).random((2, 32, 32, 1), dtype=np.float32)
    # rows are frequency with the lowest band last: the DCT runs from the bottom row up, per column (time frame)
    expected = scipy.fft.dct(x[:, ::-1, :, 0], type=2, norm="ortho", axis=1)[:, :13, :].transpose(0, 2, 1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(cepstrum(x)), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dct_matrix(32, 13).T @ dct_matrix(32, 13), np.eye(13), atol=1e-6)  # orthonormal
    model.train_on_batch(x, np.array([0, 1]))
    np.testing.assert_array_equal(dct.get_weights()[0], dct_matrix(32, 13))  # training leaves it alone


def test_an_mfcc_model_loads_in_a_fresh_process_without_genreslice(tmp_path):
    """model.keras of a DCT preset is plain Keras: another program loads it with keras.saving.load_model alone."""
    model = build_model("mfcc_cnn", 4, slice_size=16)
    x = np.random.default_rng(4).random((3, 16, 16, 1), dtype=np.float32)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, keras\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict_on_batch(np.load(sys.argv[2])))\n"
        "assert not any(name.startswith('genreslice') for name in sys.modules), 'genreslice was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.keras"), str(tmp_path / "x.npy"),
                             str(tmp_path / "y.npy")], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-7)


def compact_before_the_options(n_classes: int, slice_size: int) -> keras.Model:
    """build_compact as it was before --width and --l2 existed (the network of earlier models)."""
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for block, filters in enumerate((16, 32, 64, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{block}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{block}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="average")(x)
    x = keras.layers.Dropout(0.3, name="dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="compact")


def despoisj_before_the_options(n_classes: int, slice_size: int) -> keras.Model:
    """build_despoisj as it was before --width and --l2 existed."""
    inputs = keras.Input((slice_size, slice_size, 1), name="slice")
    x = inputs
    for filters in (64, 128, 256, 512):
        x = keras.layers.Conv2D(filters, 2, padding="same", activation="elu", kernel_initializer="glorot_normal",
                                name=f"conv_{filters}")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{filters}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(1024, activation="elu", name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="genre")(x)
    return keras.Model(inputs, outputs, name="despoisj")


@pytest.mark.parametrize("name, before", [("compact", compact_before_the_options),
                                          ("despoisj", despoisj_before_the_options)])
def test_compact_and_despoisj_are_unchanged_by_default_options(name, before):
    """The options' defaults build the networks of before: same layers, names and configurations and, for one
    seed, the same initial weights, so a same-seed run trains the same model as before."""
    keras.utils.set_random_seed(7)
    now = build_model(name, 4, slice_size=32)
    keras.utils.set_random_seed(7)
    earlier = before(4, 32)
    assert [layer.get_config() for layer in now.layers] == [layer.get_config() for layer in earlier.layers]
    assert [w.path for w in now.weights] == [w.path for w in earlier.weights]
    assert all(np.array_equal(a, b) for a, b in zip(now.get_weights(), earlier.get_weights()))


def test_a_preset_with_an_unknown_optimizer_is_refused():
    with pytest.raises(ParameterError, match="optimizer='sgd' must be one of adam, rmsprop"):
        ModelPreset(name="x", builder=PRESETS["compact"].builder, optimizer="sgd", learning_rate=0.1, batch_size=8,
                    about="")


def test_a_presets_help_line_states_its_defaults():
    assert PRESETS["compact"].description.endswith("(Adam 1e-3, batch 64)")
    assert PRESETS["despoisj"].description.endswith("(RMSprop 1e-3, batch 128)")
    assert dataclasses.replace(PRESETS["compact"], learning_rate=2.5e-4, batch_size=16).description.endswith(
        "(Adam 2.5e-4, batch 16)")

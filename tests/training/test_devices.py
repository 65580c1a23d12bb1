"""Training on several devices: the CPU split into 2 logical devices stands in for 2 GPUs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from tests.helpers import genreslice, help_of
from genreslice.training.devices import distribution_strategy, training_devices
from genreslice.training.errors import TrainingError
from genreslice.training.settings import TrainConfig
from genreslice.training.train import train_model

REPO = Path(__file__).parents[2]
RUN = {"model": "compact", "target_accuracy": None, "patience": 0, "loader_workers": 2, "epochs": 2, "batch_size": 16}

# Logical devices can only be configured before TensorFlow starts, so the 2-device run has a process of its own.
TWO_CPUS = r"""
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from genreslice.training.devices import distribution_strategy, training_devices
from genreslice.training.errors import TrainingError
from genreslice.training.settings import TrainConfig
from genreslice.training import train
from genreslice.training.train import TrainObserver, train_model

built = []


def spied_build_model(*args, **kwargs):
    built.append(model := build_model(*args, **kwargs))
    return model


build_model, train.build_model = train.build_model, spied_build_model


class Spy(TrainObserver):
    def on_run_start(self, summary):
        report["run"] = summary


report = {"devices": training_devices(None)}
strategy = distribution_strategy(report["devices"])
report["strategy"], report["replicas"] = type(strategy).__name__, strategy.num_replicas_in_sync
try:
    training_devices(3)
except TrainingError as err:
    report["too_many"] = str(err)
result = train_model(sys.argv[1], sys.argv[2], TrainConfig(**json.loads(sys.argv[3])), observer=Spy())
report["epochs_run"] = result.epochs_run
report["model_strategy"] = type(built[0].distribute_strategy).__name__
variable = built[0].trainable_weights[0].value
report["variable"] = type(variable).__name__
report["variable_devices"] = sorted(tensor.device for tensor in variable.values)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def two_device_model(small_dataset, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("two-devices") / "model"
    result = subprocess.run([sys.executable, "-c", TWO_CPUS, str(small_dataset), str(model_dir), json.dumps(RUN)],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return model_dir, json.loads(result.stdout.strip().splitlines()[-1])


def test_training_on_two_devices_mirrors_the_model(two_device_model):
    model_dir, report = two_device_model
    cpus = ["/device:CPU:0", "/device:CPU:1"]
    assert report["devices"] == cpus
    assert (report["strategy"], report["replicas"]) == ("MirroredStrategy", 2)
    assert "devices=3: TensorFlow sees 2 CPUs" in report["too_many"]
    # The batch is scaled: 16 slices per device, 32 per step, so 96 training slices make 3 steps.
    assert report["run"]["batch_size"] == 32 and report["run"]["batches"] == 3
    assert report["epochs_run"] == 2
    # The model was built in the strategy's scope: its variables are mirrored, one copy per device.
    assert report["model_strategy"] == "MirroredStrategy" and report["variable"] == "MirroredVariable"
    assert [device.rsplit("/", 1)[-1] for device in report["variable_devices"]] == ["device:CPU:0", "device:CPU:1"]
    record = json.loads((model_dir / "model.json").read_text())
    assert record["status"] == "finished"
    assert record["devices"] == {"names": cpus, "replicas": 2, "global_batch_size": 32}
    assert record["training"]["batch_size"] == 16  # per device, as asked
    history = (model_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3


def test_evaluate_accepts_the_model_trained_on_two_devices(two_device_model, small_dataset):
    model_dir, _ = two_device_model
    result = genreslice("evaluate", str(small_dataset), str(model_dir), "--no-progress")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((model_dir / "eval" / "test" / "metrics.json").read_text())
    assert metrics["n_slices"] == 64 and metrics["n_songs"] == 8
    assert 0.0 <= metrics["slice_accuracy"] <= 1.0


def test_one_device_is_the_default_strategy_and_trains_as_before(small_dataset, tmp_path):
    (device,) = training_devices(1)
    assert distribution_strategy([device]) is tf.distribute.get_strategy()
    assert training_devices(None) == [device]  # this process sees one CPU and no GPU
    losses = []
    for name, devices in (("default", None), ("one", 1)):
        train_model(small_dataset, tmp_path / name, TrainConfig(**RUN, devices=devices))
        rows = (tmp_path / name / "history.csv").read_text().splitlines()
        header = rows[0].split(",")
        losses.append([row.split(",")[header.index("loss")] for row in rows[1:]])
        record = json.loads((tmp_path / name / "model.json").read_text())
        assert record["devices"]["replicas"] == 1 and record["devices"]["global_batch_size"] == 16
    assert losses[0] == losses[1]


def test_more_devices_than_present_is_refused_before_anything_is_written(small_dataset, tmp_path):
    with pytest.raises(TrainingError, match="devices=2: TensorFlow sees 1 CPU "):
        train_model(small_dataset, tmp_path / "model", TrainConfig(**RUN, devices=2))
    assert not (tmp_path / "model").exists()
    result = genreslice("train", str(small_dataset), str(tmp_path / "model"), "--devices", "2")
    assert result.returncode == 1 and "TensorFlow sees 1 CPU" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "model").exists()


@pytest.mark.parametrize("value, message", [("0", "0 must be at least 1"), ("two", "'two' is not a whole number")])
def test_bad_devices_values_are_usage_errors(small_dataset, tmp_path, value, message):
    result = genreslice("train", str(small_dataset), str(tmp_path / "model"), "--devices", value)
    assert result.returncode == 2 and message in result.stderr


def test_train_help_explains_devices():
    text = help_of("train", 14)
    assert "--devices all|N" in text and "MirroredStrategy" in text

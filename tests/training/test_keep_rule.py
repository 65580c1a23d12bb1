"""Which epoch's weights a run keeps (``monitor`` and ``keep``), and what it says about them: real training on a
small synthetic data set, with the validation results each epoch reports forced so that a test chooses the epochs."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from genreslice.scripts.commands.train import train as train_command
from genreslice.training.callbacks import GoalEarlyStopping
from genreslice.training.errors import ModelDirError
from genreslice.training.settings import TrainConfig
from genreslice.training.train import train_model
from tests.helpers import RUN

# (val_loss, val_accuracy) per epoch: the loss rises while the accuracy climbs, as an overconfident network's
# does. By loss epoch 1 is the best; by accuracy epoch 4 (equal to epoch 3's, at a lower loss).
OVERCONFIDENT = [(0.5, 0.25), (0.9, 0.5), (1.2, 0.75), (1.0, 0.75), (1.1, 0.5), (1.3, 0.5)]


def force_validation(monkeypatch, results: list[tuple[float, float]]) -> None:
    """Make every callback (the stop rule, the history, history.csv) see ``results[k]`` as epoch ``k + 1``'s
    validation loss and accuracy: the stop rule, first in line, changes Keras's logs in place."""
    report = GoalEarlyStopping.on_epoch_end

    def forced(self, epoch, logs=None):
        logs.update(val_loss=results[epoch][0], val_accuracy=results[epoch][1])
        return report(self, epoch, logs)

    monkeypatch.setattr(GoalEarlyStopping, "on_epoch_end", forced)


def weights(path: Path) -> list[np.ndarray]:
    return keras.models.load_model(path, compile=False).get_weights()


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def history_rows(model_dir: Path) -> list[dict]:
    with open(model_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def by_accuracy(small_dataset, tmp_path_factory):
    """Four epochs judged by validation accuracy, ending at the epoch limit (so the run can be continued)."""
    model_dir = tmp_path_factory.mktemp("by accuracy") / "model"
    with pytest.MonkeyPatch.context() as patch:
        force_validation(patch, OVERCONFIDENT)
        result = train_model(small_dataset, model_dir, TrainConfig(epochs=4, monitor="val_accuracy", **RUN))
    return model_dir, result


def test_val_accuracy_keeps_the_epoch_of_the_best_validation_accuracy(by_accuracy):
    model_dir, result = by_accuracy
    rows = history_rows(model_dir)
    best = max(rows, key=lambda row: (float(row["val_accuracy"]), -float(row["val_loss"])))
    assert int(best["epoch"]) == result.best_epoch == result.kept_epoch == 4
    assert result.kept_message == "kept the weights of epoch 4 (best val_accuracy 0.7500)" and result.kept_hint == ""
    record = json.loads((model_dir / "model.json").read_text())
    assert record["training"]["monitor"] == "val_accuracy" and record["training"]["keep"] == "best"
    assert record["kept"] == {"epoch": 4, "keep": "best", "monitor": "val_accuracy",
                              "message": "kept the weights of epoch 4 (best val_accuracy 0.7500)", "hint": ""}
    assert record["metrics"]["val_accuracy"] == 0.75 and record["metrics"]["val_loss"] == 1.0
    state = json.loads((model_dir / "checkpoint" / "state.json").read_text())
    assert state["settings"]["monitor"] == "val_accuracy" and state["settings"]["keep"] == "best"
    assert state["kept_epoch"] == 4 and state["early_stop"]["best_accuracy"] == 0.75
    assert same_weights(weights(model_dir / "model.keras"), weights(model_dir / "checkpoint" / "epoch-0004.keras"))


def test_by_default_val_loss_keeps_the_epoch_of_the_lowest_loss(small_dataset, tmp_path, monkeypatch):
    force_validation(monkeypatch, OVERCONFIDENT)
    result = train_model(small_dataset, tmp_path / "model", TrainConfig(epochs=3, **RUN))
    assert result.kept_epoch == result.best_epoch == 1
    assert result.kept_message == "kept the weights of epoch 1 (best val_loss 0.5000)"
    assert result.kept_hint == ("epoch 3 had a better val_accuracy (0.7500, kept epoch 0.2500); --monitor "
                                "val_accuracy keeps the epoch of the best accuracy")
    record = json.loads((tmp_path / "model" / "model.json").read_text())
    assert record["training"]["monitor"] == "val_loss" and record["kept"]["hint"] == result.kept_hint
    assert same_weights(weights(tmp_path / "model" / "model.keras"),
                        weights(tmp_path / "model" / "checkpoint" / "epoch-0001.keras"))


def test_keep_last_keeps_the_last_epoch_and_continues_so(small_dataset, tmp_path, monkeypatch):
    force_validation(monkeypatch, OVERCONFIDENT)
    model_dir = tmp_path / "model"
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, monitor="val_loss", keep="last", **RUN))
    assert result.best_epoch == 1 and result.kept_epoch == 3
    assert result.kept_message == "kept the last epoch's weights (epoch 3, --keep last)"
    assert result.kept_hint == ""  # --monitor val_accuracy would not change what --keep last keeps
    last = weights(model_dir / "checkpoint" / "epoch-0003.keras")
    assert same_weights(weights(model_dir / "model.keras"), last)
    assert not same_weights(last, weights(model_dir / "checkpoint" / "epoch-0001.keras"))
    record = json.loads((model_dir / "model.json").read_text())
    assert record["kept"]["epoch"] == 3 and record["best_epoch"] == 1 and record["metrics"]["val_loss"] == 1.2

    continued = train_model(small_dataset, model_dir, TrainConfig(epochs=4, **RUN))  # keep as recorded
    assert continued.resumed_from == 3 and continued.kept_epoch == 4 and continued.best_epoch == 1
    assert continued.kept_hint == ""
    assert same_weights(weights(model_dir / "model.keras"), weights(model_dir / "checkpoint" / "epoch-0004.keras"))


def test_a_continued_run_with_another_monitor_or_keep_is_refused(by_accuracy, small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(by_accuracy[0], model_dir)
    with pytest.raises(ModelDirError, match="monitor: was 'val_accuracy', now 'val_loss'"):
        train_model(small_dataset, model_dir, TrainConfig(epochs=5, monitor="val_loss", **RUN))
    with pytest.raises(ModelDirError, match="keep: was 'best', now 'last'"):
        train_model(small_dataset, model_dir, TrainConfig(epochs=5, keep="last", **RUN))


def test_a_run_recorded_before_monitor_existed_continues_by_val_loss(small_dataset, tmp_path, monkeypatch):
    force_validation(monkeypatch, OVERCONFIDENT)
    model_dir = tmp_path / "model"
    train_model(small_dataset, model_dir, TrainConfig(epochs=2, monitor="val_loss", **RUN))
    # What an earlier version recorded: no monitor, keep, best accuracy or kept epoch.
    state_path = model_dir / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    for key in ("monitor", "keep"):
        del state["settings"][key]
    for key in ("monitor", "best_accuracy"):
        del state["early_stop"][key]
    del state["kept_epoch"]
    state_path.write_text(json.dumps(state))
    with pytest.raises(ModelDirError, match="monitor: was 'val_loss', now 'val_accuracy'"):
        train_model(small_dataset, model_dir, TrainConfig(epochs=4, monitor="val_accuracy", **RUN))

    result = train_model(small_dataset, model_dir, TrainConfig(epochs=4, **RUN))  # the defaults: as recorded
    assert result.resumed_from == 2 and result.epochs_run == 4 and result.best_epoch == result.kept_epoch == 1
    assert result.kept_message == "kept the weights of epoch 1 (best val_loss 0.5000)"
    record = json.loads((model_dir / "model.json").read_text())
    assert record["training"]["monitor"] == "val_loss" and record["training"]["keep"] == "best"


def test_the_command_says_which_epoch_it_kept(small_dataset, tmp_path, monkeypatch, capsys):
    force_validation(monkeypatch, OVERCONFIDENT)
    model_dir = tmp_path / "model"
    assert train_command(small_dataset, model_dir, TrainConfig(epochs=4, **RUN), progress=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [f"Kept the weights of epoch 1 (best val_loss 0.5000), in {model_dir / 'model.keras'}.",
                          "Note: epoch 4 had a better val_accuracy (0.7500, kept epoch 0.2500); --monitor "
                          "val_accuracy keeps the epoch of the best accuracy."]
    assert "Epoch 1: validation accuracy 0.2500, loss 0.5000" in "\n".join(lines)

    other = tmp_path / "by accuracy"
    config = TrainConfig(epochs=4, monitor="val_accuracy", **RUN)
    assert train_command(small_dataset, other, config, progress=False) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (f"Kept the weights of epoch 4 (best val_accuracy 0.7500), in "
                                                        f"{other / 'model.keras'}.")
    assert train_command(small_dataset, other, TrainConfig(epochs=4, **RUN), progress=False) == 0  # already done
    assert capsys.readouterr().out.splitlines()[-1].startswith("Kept the weights of epoch 4 (best val_accuracy")

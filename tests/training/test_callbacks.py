"""The early-stop rule and the plateau learning-rate schedule, driven with synthetic validation logs (no training)."""
from __future__ import annotations

import logging

import keras
import numpy as np
import pytest

from genreslice.training.callbacks import STOP_PATIENCE, STOP_TARGET, GoalEarlyStopping, PlateauSchedule


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    return model


def drive(callback: GoalEarlyStopping, logs: list[tuple[float, float]], model: keras.Model | None = None) -> int:
    """Feed (val_accuracy, val_loss) per epoch until the callback stops; returns epochs run.

    Before each epoch's report, every weight of the model is set to the epoch number, so restored weights say
    which epoch they came from.
    """
    model = model or tiny_model()
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    epochs = 0
    for epoch, (accuracy, loss) in enumerate(logs):
        model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
        callback.on_epoch_end(epoch, {"loss": 0.1, "accuracy": 0.99, "val_accuracy": accuracy, "val_loss": loss})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return epochs


def weights_epoch(model: keras.Model) -> float:
    values = {float(v) for w in model.get_weights() for v in np.ravel(w)}
    assert len(values) == 1
    return values.pop()


def test_target_rule_needs_accuracy_and_loss(caplog):
    callback = GoalEarlyStopping(target_accuracy=0.9, target_loss=0.3, patience=0)
    model = tiny_model()
    logs = [(0.5, 1.0), (0.92, 0.5), (0.85, 0.25), (0.91, 0.29), (0.99, 0.01)]
    with caplog.at_level(logging.INFO, logger="genreslice.training.callbacks"):
        assert drive(callback, logs, model) == 4
    assert callback.stop_reason == STOP_TARGET and callback.stopped_epoch == 3
    assert "stopped after epoch 4 by the target rule" in callback.message
    assert "0.9100 >= 0.9" in callback.message and "0.2900 <= 0.3" in callback.message
    assert "target rule" in caplog.text and "restored the weights of epoch 3" in caplog.text
    # Epoch 3 (0-based 2) had the lowest validation loss (0.25), so its weights are the ones restored.
    assert callback.best_epoch == 2 and weights_epoch(model) == 2


def test_target_accuracy_alone_when_loss_is_off():
    callback = GoalEarlyStopping(target_accuracy=0.8, target_loss=None, patience=0)
    assert drive(callback, [(0.5, 2.0), (0.81, 3.0), (0.9, 0.1)]) == 2
    assert callback.stop_reason == STOP_TARGET


def test_patience_rule_counts_epochs_without_improvement():
    callback = GoalEarlyStopping(target_accuracy=0.99, target_loss=0.01, patience=3)
    model = tiny_model()
    losses = [1.0, 0.8, 0.7, 0.75, 0.7, 0.71, 0.5]  # the best is epoch 3; three epochs without a better one
    assert drive(callback, [(0.5, loss) for loss in losses], model) == 6
    assert callback.stop_reason == STOP_PATIENCE and callback.stopped_epoch == 5
    assert "has not improved for 3 epochs (best 0.7000 at epoch 3)" in callback.message
    assert weights_epoch(model) == 2


def test_min_delta_decides_what_counts_as_improvement():
    callback = GoalEarlyStopping(target_accuracy=None, patience=2, min_delta=0.05)
    assert drive(callback, [(0.5, 1.0), (0.5, 0.97), (0.5, 0.96), (0.5, 0.5)]) == 3
    assert callback.stop_reason == STOP_PATIENCE


def test_no_rule_fires_and_best_weights_are_still_restored():
    callback = GoalEarlyStopping(target_accuracy=0.95, target_loss=0.2, patience=0)
    model = tiny_model()
    assert drive(callback, [(0.6, 0.9), (0.7, 0.6), (0.65, 0.8)], model) == 3
    assert callback.stop_reason is None and callback.stopped_epoch is None
    assert weights_epoch(model) == 1


def test_state_round_trip_continues_the_patience_count():
    first = GoalEarlyStopping(target_accuracy=None, patience=3)
    drive(first, [(0.5, 1.0), (0.5, 0.6), (0.5, 0.7), (0.5, 0.8)])
    assert first.stop_reason is None and first.wait == 2
    second = GoalEarlyStopping(target_accuracy=None, patience=3)
    second.set_state(first.get_state(), best_weights=None)
    model = tiny_model()
    second.set_model(model)
    model.stop_training = False
    second.on_epoch_end(4, {"val_accuracy": 0.5, "val_loss": 0.65})
    assert second.stop_reason == STOP_PATIENCE and "best 0.6000 at epoch 2" in second.message


def test_needs_validation_logs():
    callback = GoalEarlyStopping()
    callback.set_model(tiny_model())
    with pytest.raises(ValueError, match="needs validation results.*Received logs with keys: \\['accuracy', 'loss'\\]"):
        callback.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})


@pytest.mark.parametrize("options, message", [
    ({"target_accuracy": 1.5}, "target_accuracy=1.5"),
    ({"target_loss": -1.0}, "target_loss=-1.0"),
    ({"patience": -2}, "patience=-2"),
    ({"min_delta": -0.1}, "min_delta=-0.1"),
])
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        GoalEarlyStopping(**options)


def test_a_nan_validation_loss_stops_training_as_diverged():
    callback = GoalEarlyStopping(target_accuracy=0.9, patience=5)
    model = tiny_model()
    assert drive(callback, [(0.5, 1.0), (0.25, float("nan")), (0.9, 0.1)], model) == 2
    assert callback.stop_reason == "diverged" and "validation loss is nan" in callback.message
    assert weights_epoch(model) == 0  # the last good epoch

    first = GoalEarlyStopping(target_accuracy=0.9, patience=5)
    assert drive(first, [(0.25, float("inf"))]) == 1 and first.stop_reason == "diverged" and first.best_epoch is None


def test_val_accuracy_monitor_breaks_ties_by_the_lower_loss():
    # The loss rises from epoch 1 on while the accuracy climbs: judged by loss, epoch 1 would stay the best.
    stopper = GoalEarlyStopping(target_accuracy=None, patience=2, monitor="val_accuracy")
    model = tiny_model()
    epochs = drive(stopper, [(0.25, 0.5), (0.5, 0.9), (0.75, 1.2), (0.75, 1.0), (0.75, 1.1), (0.5, 0.4)], model)
    assert stopper.best_epoch == 3 and stopper.best_value == 0.75 and stopper.best_loss == 1.0
    assert weights_epoch(model) == 3.0  # epoch 4's weights restored: the tie with epoch 3, at a lower loss
    assert epochs == 6 and stopper.stop_reason == STOP_PATIENCE  # epochs 5 and 6 do not improve the accuracy
    assert "validation accuracy has not improved for 2 epochs (best 0.7500 at epoch 4)" in stopper.message
    assert stopper.get_state()["monitor"] == "val_accuracy"


def test_val_loss_monitor_keeps_the_lowest_loss():
    stopper = GoalEarlyStopping(target_accuracy=None, patience=0, monitor="val_loss")
    drive(stopper, [(0.25, 0.5), (0.5, 0.9), (0.75, 1.2)])
    assert stopper.best_epoch == 0 and stopper.best_value == 0.5


def test_a_state_of_another_monitor_is_refused_and_an_earlier_versions_is_val_loss():
    stopper = GoalEarlyStopping(monitor="val_accuracy")
    with pytest.raises(ValueError, match="monitor='val_loss'"):
        stopper.set_state({"best_loss": 0.5, "best_epoch": 0, "wait": 0})  # recorded before monitor existed
    earlier = GoalEarlyStopping(monitor="val_loss")
    earlier.set_state({"best_loss": 0.5, "best_epoch": 0, "wait": 1})
    assert earlier.best_value == 0.5 and earlier.wait == 1
    with pytest.raises(ValueError, match="monitor='accuracy' must be one of val_loss, val_accuracy"):
        GoalEarlyStopping(monitor="accuracy")


def test_without_restoring_the_last_weights_stay():
    stopper = GoalEarlyStopping(target_accuracy=None, patience=0, monitor="val_accuracy", restore_best_weights=False)
    model = tiny_model()
    drive(stopper, [(0.75, 0.5), (0.5, 0.9), (0.25, 1.2)], model)
    assert stopper.best_epoch == 0 and weights_epoch(model) == 2.0


def compiled(rate: float) -> keras.Model:
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(rate), loss="mse")
    return model


def drive_schedule(schedule: PlateauSchedule, values: list[float], rate: float = 1e-3) -> list[float]:
    """Report ``values`` of the monitored metric epoch after epoch; returns the rate after each."""
    model = compiled(rate)
    schedule.set_model(model)
    rates = []
    for epoch, value in enumerate(values):
        schedule.on_epoch_end(epoch, {"val_loss": value, "val_accuracy": value})
        rates.append(float(model.optimizer.learning_rate))
    return rates


def test_plateau_halves_the_rate_after_two_epochs_without_improvement():
    losses = [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9, 0.99, 1.0]
    rates = drive_schedule(PlateauSchedule(monitor="val_loss"), losses)
    # epochs 3-4 do not beat 0.9: halved after 4; 5 is better; 6-7 are not: halved; 8-9: halved again
    assert rates == pytest.approx([1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4])
    accuracies = [0.5, 0.6, 0.55, 0.6]  # higher is better, and an equal value is no improvement
    assert drive_schedule(PlateauSchedule(monitor="val_accuracy"), accuracies) == pytest.approx([1e-3, 1e-3, 1e-3,
                                                                                              5e-4])


def test_plateau_never_goes_below_its_floor():
    rates = drive_schedule(PlateauSchedule(patience=1, min_rate=1e-6), [1.0, 2.0, 3.0, 4.0], rate=3e-6)
    assert rates == pytest.approx([3e-6, 1.5e-6, 1e-6, 1e-6])


def test_replaying_a_history_gives_the_plateau_count_back():
    values = [1.0, 0.9, 0.95, 0.97, 0.99]
    live = PlateauSchedule()
    drive_schedule(live, values)
    replayed = PlateauSchedule()
    replayed.replay([{"val_loss": value, "val_accuracy": 0.0} for value in values])
    assert (replayed.best, replayed.wait) == (live.best, live.wait) == (0.9, 1)


@pytest.mark.parametrize("options, message", [
    ({"monitor": "loss"}, "monitor='loss' must be one of"),
    ({"factor": 1.0}, "factor=1.0 must be between 0 and 1"),
    ({"patience": 0}, "patience=0 must be at least 1"),
])
def test_bad_plateau_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        PlateauSchedule(**options)

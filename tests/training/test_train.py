"""Training end to end from Python: artifacts, stop rules, resuming an interrupted run, refusals."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from benchmarks.synthetic_slices import write_synthetic_dataset
from tests.helpers import RUN, digest, hold_lock
from genreslice.training.dataset import load_dataset_info
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.errors import ParameterError
from genreslice.training.data_source import SliceDataSource
from genreslice.training.settings import DEFAULT_MODEL, TrainConfig, recorded_settings
from genreslice.training.train import TrainObserver, class_weights_for, train_model

class Interrupt(TrainObserver):
    """Raises KeyboardInterrupt (as Ctrl-C would) at a chosen point of a run."""

    def __init__(self, *, after_epoch: int | None = None, in_epoch: int | None = None) -> None:
        self.after_epoch, self.in_epoch, self.epoch = after_epoch, in_epoch, 0

    def on_epoch_start(self, epoch: int, n_batches: int) -> None:
        self.epoch = epoch

    def on_batch_end(self, batch: int, logs: dict) -> None:
        if self.epoch == self.in_epoch and batch == 0:
            raise KeyboardInterrupt

    def on_epoch_end(self, row: dict) -> None:
        if row["epoch"] == self.after_epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def trained(small_dataset, tmp_path_factory):
    """Two epochs that end at the epoch limit, so the run stays resumable."""
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    return model_dir, result


def test_training_writes_every_artifact(trained, small_dataset):
    model_dir, result = trained
    info = load_dataset_info(small_dataset)
    assert result.status == "finished" and result.epochs_run == 2 and result.stop_reason == "max_epochs"

    record = json.loads((model_dir / "model.json").read_text())
    assert record["status"] == "finished"
    assert record["classes"] == ["Blues", "Electronic", "Jazz", "Rock"] == list(info.classes)
    dataset_json = json.loads((small_dataset / "dataset.json").read_text())
    assert record["spectrogram"] == dataset_json["spectrogram"]
    assert record["dataset"]["fingerprint"] == info.fingerprint and len(info.fingerprint) == 64
    assert record["dataset"]["train_slices"] == 96 and record["dataset"]["validation_slices"] == 32
    assert record["training"] == {"model": "compact", "epochs": 2, "batch_size": 64, "learning_rate": 0.001,
                                  "seed": 0, "target_accuracy": None, "target_loss": 0.2, "patience": 0,
                                  "monitor": "val_loss", "keep": "best", "class_weights": "balanced"}
    best = result.history[result.best_epoch - 1]
    assert record["metrics"] == {key: best[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy")}
    assert record["best_epoch"] == result.best_epoch and record["epochs_run"] == 2
    assert record["stop"]["reason"] == "max_epochs"

    with open(model_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    for row, kept in zip(rows, result.history):
        assert float(row["val_loss"]) == pytest.approx(kept["val_loss"], rel=1e-5)
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0 and float(row["seconds"]) > 0

    model = keras.models.load_model(model_dir / "model.keras")
    batch = np.random.default_rng(0).random((5, 128, 128, 1), dtype=np.float32)
    probabilities = model.predict(batch, verbose=0)
    assert probabilities.shape == (5, 4) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    best_file = json.loads((model_dir / "checkpoint" / "state.json").read_text())["best"]
    best_model = keras.models.load_model(model_dir / "checkpoint" / best_file)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), best_model.get_weights()))

    with Image.open(model_dir / "curves.png") as image:
        pixels = np.asarray(image.convert("RGB")).astype(int)
    assert pixels.shape == (480, 1200, 3)
    blue = np.abs(pixels - np.array([31, 119, 180])).sum(axis=2) < 30
    orange = np.abs(pixels - np.array([255, 127, 14])).sum(axis=2) < 30
    assert blue[:, :600].sum() > 50 and orange[:, 600:].sum() > 50  # both series drawn in both panels
    events = {path.parent.name for path in (model_dir / "logs").rglob("events.out.tfevents.*")}
    assert events == {"train", "validation"}


def test_target_rule_ends_training_and_drops_resume_copies(small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    config = TrainConfig(model="compact", epochs=5, target_accuracy=0.0, target_loss=None, patience=0)  # any accuracy
    result = train_model(small_dataset, model_dir, config)
    assert result.epochs_run == 1 and result.stop_reason == "target"
    assert "stopped after epoch 1 by the target rule" in result.stop_message
    record = json.loads((model_dir / "model.json").read_text())
    assert record["stop"] == {"reason": "target", "message": result.stop_message}
    assert not list((model_dir / "checkpoint").glob("*.keras"))
    before = digest(model_dir)
    again = train_model(small_dataset, model_dir, config)
    assert again.status == "already_finished" and again.epochs_this_call == 0
    assert digest(model_dir) == before


def test_patience_rule_ends_training(small_dataset, tmp_path):
    # A learning rate this small barely moves the loss; with min_delta 0, one worse epoch is enough.
    config = TrainConfig(model="compact", epochs=6, target_accuracy=None, patience=1, learning_rate=1e-9, seed=3,
                         monitor="val_loss")
    result = train_model(small_dataset, tmp_path / "model", config)
    losses = [row["val_loss"] for row in result.history]
    assert result.stop_reason == "patience" and result.epochs_run < 6
    assert losses[-1] >= min(losses[:-1]) and result.best_epoch == int(np.argmin(losses)) + 1


def test_an_interrupted_run_continues_from_its_last_completed_epoch(small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    config = TrainConfig(epochs=4, **RUN)
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, config, observer=Interrupt(after_epoch=2))
    state = json.loads((model_dir / "checkpoint" / "state.json").read_text())
    assert state["epochs_done"] == 2
    assert json.loads((model_dir / "model.json").read_text())["status"] == "training"
    first_rows = state["history"]
    # Interrupted again, this time in the middle of epoch 3: that epoch is not committed.
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, config, observer=Interrupt(in_epoch=3))
    assert json.loads((model_dir / "checkpoint" / "state.json").read_text())["epochs_done"] == 2

    result = train_model(small_dataset, model_dir, config)
    assert result.resumed_from == 2 and result.epochs_this_call == 2 and result.epochs_run == 4
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert result.history[:2] == first_rows
    last = keras.models.load_model(model_dir / "checkpoint" / "epoch-0004.keras")
    assert int(last.optimizer.iterations) == 4 * 2  # the optimizer state came back: 2 batches per epoch
    with open(model_dir / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2", "3", "4"]
    assert json.loads((model_dir / "model.json").read_text())["status"] == "finished"


def test_a_higher_epoch_limit_continues_a_finished_run(trained, small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    assert result.resumed_from == 2 and result.epochs_run == 3 and result.history[:2] == trained[1].history
    record = json.loads((model_dir / "model.json").read_text())
    assert record["status"] == "finished" and record["epochs_run"] == 3 and record["training"]["epochs"] == 3
    assert record["best_epoch"] == result.best_epoch and record["stop"]["message"] == "reached the last epoch (3)"


def test_continued_run_restores_best_weights_from_before_the_resume_point(trained, small_dataset, tmp_path,
                                                                          monkeypatch):
    from genreslice.training.callbacks import GoalEarlyStopping

    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    best_before = keras.models.load_model(model_dir / "model.keras").get_weights()
    report = GoalEarlyStopping.on_epoch_end

    def worse_after_resume(self, epoch, logs=None):
        return report(self, epoch, {**logs, "val_loss": 50.0, "val_accuracy": 0.0} if epoch >= 2 else logs)

    monkeypatch.setattr(GoalEarlyStopping, "on_epoch_end", worse_after_resume)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=4, **RUN))
    assert result.epochs_run == 4 and result.best_epoch == trained[1].best_epoch <= 2
    after = keras.models.load_model(model_dir / "model.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(after, best_before))


def test_the_epoch_order_inside_fit_is_a_fresh_seeded_permutation(small_dataset, tmp_path, monkeypatch):
    from genreslice.training.data_source import SliceDataSource

    served: dict[int, list[int]] = {}
    load = SliceDataSource.__getitem__

    def recording(self, index):
        if self.shuffle:
            chosen = self._order[index * self.batch_size:(index + 1) * self.batch_size]
            served.setdefault(self.epoch, []).extend(chosen.tolist())
        return load(self, index)

    monkeypatch.setattr(SliceDataSource, "__getitem__", recording)
    train_model(small_dataset, tmp_path / "model", TrainConfig(epochs=3, batch_size=16, seed=4, **RUN))
    # Keras reads up to two batches ahead of time to learn the output shapes; the rest is the three epochs.
    epochs = {epoch: order for epoch, order in served.items() if len(order) >= 96}
    assert sorted(epochs) == [1, 2, 3]  # training epoch k serves the permutation of epoch k
    for epoch, order in epochs.items():
        assert sorted(order[-96:]) == list(range(96))
        assert order[-96:] == np.random.default_rng([4, epoch]).permutation(96).tolist()
    assert len({tuple(order[-96:]) for order in epochs.values()}) == 3


def test_a_crash_between_commit_and_history_is_repaired(small_dataset, tmp_path, monkeypatch):
    import genreslice.training.callbacks as callbacks_module

    model_dir = tmp_path / "model"
    write_history = callbacks_module.history_csv_text

    def crash_on_epoch_2(history):
        if len(history) == 2:
            raise KeyboardInterrupt
        return write_history(history)

    monkeypatch.setattr(callbacks_module, "history_csv_text", crash_on_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    monkeypatch.setattr(callbacks_module, "history_csv_text", write_history)
    with open(model_dir / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    assert result.status == "finished" and result.epochs_this_call == 0
    with open(model_dir / "history.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]


def test_a_run_interrupted_in_its_first_epoch_starts_over(small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, TrainConfig(epochs=1, **RUN), observer=Interrupt(in_epoch=1))
    assert not (model_dir / "checkpoint" / "state.json").exists()
    (model_dir / ".model.json.x1y2.tmp").write_text("{")  # as a kill during a write would leave it
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=1, **RUN))
    assert result.resumed_from == 0 and result.epochs_run == 1
    assert not (model_dir / ".model.json.x1y2.tmp").exists()


def test_a_damaged_slice_stops_training_with_its_name(small_dataset, tmp_path):
    dataset = tmp_path / "data"
    shutil.copytree(small_dataset, dataset)
    with open(dataset / "slices.csv", newline="") as handle:
        victim = next(row["path"] for row in csv.DictReader(handle) if row["split"] == "train")
    (dataset / victim).write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=f"{victim}: cannot be read as a slice .*not a readable image.*"
                                           "run the same command again"):
        train_model(dataset, tmp_path / "model", TrainConfig(epochs=1, **RUN))
    # The same inside an epoch, where TensorFlow wraps the error: a slice of the last training batch.
    with open(dataset / "slices.csv", newline="") as handle:
        late = [row["path"] for row in csv.DictReader(handle) if row["split"] == "train"][-1]
    shutil.copyfile(small_dataset / victim, dataset / victim)
    (dataset / late).write_bytes(b"")
    with pytest.raises(DatasetError, match=f"{late}: cannot be read as a slice") as caught:
        train_model(dataset, tmp_path / "model", TrainConfig(epochs=1, batch_size=8, **RUN))
    import tensorflow as tf

    assert isinstance(caught.value.__cause__, tf.errors.OpError)  # it did come through TensorFlow


def test_class_weights_balance_the_training_split():
    weights = class_weights_for(np.array([10, 30, 0, 60]), "balanced")
    assert weights == pytest.approx({0: 100 / 30, 1: 100 / 90, 2: 1.0, 3: 100 / 180})
    assert 10 * weights[0] + 30 * weights[1] + 60 * weights[3] == pytest.approx(100)  # mean weight per slice is 1
    assert class_weights_for(np.array([5, 5]), "none") is None


def test_a_folder_without_dataset_json_is_refused(tmp_path):
    (tmp_path / "slices.csv").write_text("path,track_id,genre,split\n")
    with pytest.raises(DatasetError, match="no dataset.json"):
        train_model(tmp_path, tmp_path / "model")
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("splits, genres, message", [
    ((3, 0, 1), ("Jazz", "Rock"), "the validation split has no slices"),
    ((0, 2, 1), ("Jazz", "Rock"), "the train split has no slices"),
    ((2, 1, 1), ("Jazz",), "at least 2 genres"),
])
def test_unusable_data_sets_are_refused(tmp_path, splits, genres, message):
    dataset = write_synthetic_dataset(tmp_path / "data", genres=genres, tracks_per_genre=4, slices_per_track=2,
                                      split_tracks=splits)
    with pytest.raises(DatasetError, match=message):
        train_model(dataset, tmp_path / "model", TrainConfig(**RUN))
    assert not (tmp_path / "model").exists()


def edited_dataset(source: Path, target: Path, edit) -> Path:
    shutil.copytree(source, target)
    meta = json.loads((target / "dataset.json").read_text())
    edit(meta)
    (target / "dataset.json").write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize("edit, message", [
    (lambda meta: meta.update(classes=["Blues", "Electronic", "Jazz", "Pop", "Rock"]),
     r"classes: model \['Blues', 'Electronic', 'Jazz', 'Rock'\], data set \['Blues', 'Electronic', 'Jazz', 'Pop', 'Rock'\]"),
    (lambda meta: meta["spectrogram"].update(pixels_per_second=25), "spectrogram.pixels_per_second: model 50, data set 25"),
])
def test_a_model_for_another_data_set_is_refused_and_kept(trained, small_dataset, tmp_path, edit, message):
    model_dir, _ = trained
    other = edited_dataset(small_dataset, tmp_path / "other", edit)
    before = digest(model_dir)
    with pytest.raises(ModelDirError, match=message):
        train_model(other, model_dir, TrainConfig(epochs=3, **RUN))
    assert digest(model_dir) == before


def test_a_run_with_other_settings_or_changed_slices_is_refused_and_kept(trained, small_dataset, tmp_path):
    model_dir, _ = trained
    before = digest(model_dir)
    with pytest.raises(ModelDirError, match="other settings \\(batch_size: was 64, now 16; seed: was 0, now 5\\)"):
        train_model(small_dataset, model_dir, TrainConfig(epochs=3, batch_size=16, seed=5, **RUN))
    changed = tmp_path / "changed"
    shutil.copytree(small_dataset, changed)
    lines = (changed / "slices.csv").read_text().splitlines(keepends=True)
    (changed / "slices.csv").write_text("".join(lines[:-1]))
    with pytest.raises(ModelDirError, match="another version of the data set"):
        train_model(changed, model_dir, TrainConfig(epochs=3, **RUN))
    assert digest(model_dir) == before


def test_a_folder_of_other_files_is_refused(small_dataset, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelDirError, match="not empty and holds no genreslice model \\(it has notes.txt\\)"):
        train_model(small_dataset, tmp_path, TrainConfig(**RUN))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_second_run_in_the_same_folder_is_refused(trained, small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(trained[0], model_dir)
    holder = hold_lock(model_dir / "lock")
    try:
        with pytest.raises(ModelDirError, match="another training run is using"):
            train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((model_dir / "checkpoint" / "state.json").read_text())["epochs_done"] == 2


def test_a_run_interrupted_after_its_last_epoch_is_finished_without_training(small_dataset, tmp_path):
    model_dir = tmp_path / "model"
    config = TrainConfig(model="compact", epochs=1, target_accuracy=0.0, target_loss=None, patience=0)
    with pytest.raises(KeyboardInterrupt):  # epoch 1 committed (the target rule fired), final files not written
        train_model(small_dataset, model_dir, config, observer=Interrupt(after_epoch=1))
    assert json.loads((model_dir / "model.json").read_text())["status"] == "training"
    result = train_model(small_dataset, model_dir, config)
    assert result.status == "finished" and result.epochs_this_call == 0 and result.stop_reason == "target"
    record = json.loads((model_dir / "model.json").read_text())
    assert record["status"] == "finished" and record["stop"]["reason"] == "target" and record["epochs_run"] == 1
    assert (model_dir / "model.keras").exists() and not list((model_dir / "checkpoint").glob("*.keras"))


@pytest.mark.parametrize("damage, message", [
    (lambda root: (root / "dataset.json").write_bytes(bytes(range(256))), "dataset.json: cannot be read as JSON"),
    (lambda root: (root / "dataset.json").write_text("[]"), "no 'classes' list"),
    (lambda root: (root / "slices.csv").write_text("path,genre\nx.png,Rock\n"), "slices.csv: cannot be read as the build's slice table"),
    (lambda root: (root / "slices.csv").unlink(), "slices.csv: cannot be read"),
])
def test_damaged_tables_are_refused_with_their_names(small_dataset, tmp_path, damage, message):
    dataset = tmp_path / "data"
    shutil.copytree(small_dataset, dataset)
    damage(dataset)
    with pytest.raises(DatasetError, match=message):
        train_model(dataset, tmp_path / "model", TrainConfig(**RUN))
    assert not (tmp_path / "model").exists()


def test_model_json_records_each_epochs_time_and_the_peak_memory_of_every_process(small_dataset, tmp_path):
    """For ``genreslice compare``: wall time per epoch and in all, and the peak resident memory of the processes
    that trained the run (the largest, over a resume)."""
    model_dir = tmp_path / "model"
    config = TrainConfig(epochs=3, **RUN)
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, config, observer=Interrupt(after_epoch=1))
    state_path = model_dir / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    assert state["history"][0]["peak_memory_mib"] > 100  # TensorFlow alone takes more
    # As if the first process had needed more memory than this one will.
    state["history"][0]["peak_memory_mib"] = 123456.0
    state_path.write_text(json.dumps(state))

    result = train_model(small_dataset, model_dir, config)
    record = json.loads((model_dir / "model.json").read_text())
    assert record["epoch_seconds"] == [row["seconds"] for row in result.history] and len(result.history) == 3
    assert record["training_seconds"] == round(sum(record["epoch_seconds"]), 1) > 0
    assert record["peak_memory_mib"] == 123456.0
    assert all(100 < row["peak_memory_mib"] < 123456.0 for row in result.history[1:])
    with open(model_dir / "history.csv", newline="") as handle:
        assert "peak_memory_mib" not in next(csv.reader(handle))  # the table's columns stay as they were


def force_logged_val_losses(monkeypatch, losses: list[float]) -> None:
    """Make every callback of a run (the stop rule, the history, the learning-rate schedule, the checkpoint) see
    ``losses[k]`` as epoch ``k + 1``'s validation loss."""
    dispatch = keras.callbacks.CallbackList.on_epoch_end

    def forced(self, epoch, logs=None):
        return dispatch(self, epoch, {**(logs or {}), "val_loss": losses[epoch]})

    monkeypatch.setattr(keras.callbacks.CallbackList, "on_epoch_end", forced)


def history_rates(model_dir: Path) -> list[float]:
    with open(model_dir / "history.csv", newline="") as handle:
        return [float(row["learning_rate"]) for row in csv.DictReader(handle)]


def test_a_resumed_run_continues_the_cosine_curve_and_the_augmentation_of_its_epochs(small_dataset, tmp_path,
                                                                                      monkeypatch):
    served = []
    augmented = SliceDataSource._augmented

    def recording(self, chosen, epoch):
        served.append((len(self.paths), len(chosen), epoch))
        return augmented(self, chosen, epoch)

    monkeypatch.setattr(SliceDataSource, "_augmented", recording)
    model_dir = tmp_path / "model"
    # 3 batches per epoch, 6 in all; mfcc_cnn is a fast network (Adam 1e-4)
    config = TrainConfig(**{**RUN, "model": "mfcc_cnn"}, epochs=2, batch_size=32, lr_schedule="cosine",
                         augment="offset,gain,specaugment")
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, config, observer=Interrupt(after_epoch=1))
    first_run, served[:] = list(served), []
    result = train_model(small_dataset, model_dir, config)
    assert result.resumed_from == 1 and result.epochs_run == 2
    # the rate after each epoch: 1e-4 * (1 + cos(pi * step / 6)) / 2 at steps 3 and 6
    assert history_rates(model_dir) == pytest.approx([5e-5, 0.0], abs=1e-10)
    assert [row["learning_rate"] for row in result.history] == pytest.approx([5e-5, 0.0], abs=1e-10)
    # The 96 training slices, 3 batches per epoch, augmented as that epoch's, the resumed run's epoch 2 too; the 32
    # validation slices never. (Keras first peeks at a batch of the source as it stands, to learn its shapes.)
    assert {paths for paths, _, _ in first_run + served} == {96}
    assert first_run.count((96, 32, 1)) == 3 and served.count((96, 32, 2)) == 3
    assert {epoch for _, _, epoch in first_run} == {0, 1} and {epoch for _, _, epoch in served} == {1, 2}
    training = json.loads((model_dir / "model.json").read_text())["training"]
    assert training["lr_schedule"] == "cosine" and training["learning_rate"] == 1e-4
    assert training["augment"] == ["offset", "gain", "specaugment"]
    assert "l2" not in training and "width" not in training  # at their defaults: recorded as earlier versions did


def test_plateau_halves_the_rate_and_a_resumed_run_keeps_its_count(small_dataset, tmp_path, monkeypatch):
    force_logged_val_losses(monkeypatch, [1.0, 2.0, 3.0, 4.0, 5.0])  # never better than epoch 1
    model_dir = tmp_path / "model"
    # mfcc_cnn: a fast network (Adam 1e-4); one batch per epoch
    config = TrainConfig(**{**RUN, "model": "mfcc_cnn"}, epochs=5, batch_size=96, lr_schedule="plateau")
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, config, observer=Interrupt(after_epoch=4))
    train_model(small_dataset, model_dir, config)
    # halved after epochs 3 and 5, the second and fourth epochs without improvement: the resumed run counted
    # epoch 4 as one already. Each row has the rate the epoch trained with; the checkpoint the next one's.
    assert history_rates(model_dir) == pytest.approx([1e-4, 1e-4, 1e-4, 5e-5, 5e-5])
    last = keras.models.load_model(model_dir / "checkpoint" / "epoch-0005.keras")
    assert float(last.optimizer.learning_rate) == pytest.approx(2.5e-5)


def test_a_run_continued_with_other_training_options_is_refused_naming_them(trained, small_dataset, tmp_path):
    model_dir, _ = trained
    before = digest(model_dir)
    other = TrainConfig(epochs=3, l2=0.01, lr_schedule="cosine", width=0.5, augment="gain", **RUN)
    with pytest.raises(ModelDirError, match=re.escape(
            "other settings (augment: was [], now ['gain']; l2: was 0.0, now 0.01; lr_schedule: was 'constant', "
            "now 'cosine'; width: was 1.0, now 0.5)")):
        train_model(small_dataset, model_dir, other)
    assert digest(model_dir) == before
    # and a run recorded with an option is not continued without it
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    state_path = copy / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    state["settings"]["width"] = 2.0
    state_path.write_text(json.dumps(state))
    with pytest.raises(ModelDirError, match=re.escape("other settings (width: was 2.0, now 1.0)")):
        train_model(small_dataset, copy, TrainConfig(epochs=3, **RUN))


def test_a_new_run_trains_the_default_model_and_a_continued_run_keeps_its_own(small_dataset, tmp_path):
    assert TrainConfig().model is None and TrainConfig().resolved().model == DEFAULT_MODEL == "crnn"
    assert TrainConfig().for_folder("compact").model == "compact"
    assert TrainConfig().for_folder(None).model == TrainConfig().for_folder("no such preset").model == "crnn"
    assert TrainConfig(model="dance").for_folder("compact").model == "dance"  # named: checked against the run

    unnamed = {key: value for key, value in RUN.items() if key != "model"}
    new = train_model(small_dataset, tmp_path / "new", TrainConfig(epochs=1, **unnamed))
    assert json.loads((new.model_dir / "model.json").read_text())["training"]["model"] == "crnn"
    assert json.loads((new.model_dir / "checkpoint" / "state.json").read_text())["settings"]["batch_size"] == 32

    earlier = tmp_path / "earlier"  # a run of an earlier version, whose default was compact
    train_model(small_dataset, earlier, TrainConfig(epochs=1, **RUN))
    continued = train_model(small_dataset, earlier, TrainConfig(epochs=2, **unnamed))
    assert continued.epochs_this_call == 1 and continued.epochs_run == 2
    record = json.loads((earlier / "model.json").read_text())
    assert record["training"]["model"] == "compact" and record["training"]["batch_size"] == 64
    with pytest.raises(ModelDirError, match=re.escape("other settings (")):
        train_model(small_dataset, earlier, TrainConfig(model="crnn", epochs=3, **unnamed))
    state_path = earlier / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    for damaged in (["compact"], {"name": "compact"}, 7, None):  # a damaged record: refused by name, no traceback
        state["settings"]["model"] = damaged
        state_path.write_text(json.dumps(state))
        with pytest.raises(ModelDirError, match=re.escape(f"model: was {damaged!r}, now 'crnn'")):
            train_model(small_dataset, earlier, TrainConfig(epochs=3, **unnamed))


def test_default_options_are_recorded_as_earlier_versions_did_and_read_back_in_full():
    settings = TrainConfig(**RUN).run_settings()
    assert not {"l2", "lr_schedule", "width", "augment"} & settings.keys()
    options = TrainConfig(l2=1e-3, lr_schedule="plateau", width=0.5, augment="specaugment", **RUN).run_settings()
    assert {key: options[key] for key in ("l2", "lr_schedule", "width", "augment")} == {
        "l2": 0.001, "lr_schedule": "plateau", "width": 0.5, "augment": ["specaugment"]}
    earlier = {"model": "compact", "batch_size": 64}  # a run recorded before monitor, keep and the options
    assert recorded_settings(earlier) == {"model": "compact", "batch_size": 64, "l2": 0.0, "lr_schedule": "constant",
                                          "width": 1.0, "augment": [], "monitor": "val_loss", "keep": "best"}
    assert recorded_settings(options)["width"] == 0.5


@pytest.mark.parametrize("options, message", [
    ({"l2": -1.0}, "l2=-1.0 must be a number, 0 or more"),
    ({"width": 0}, "width=0 must be a positive number"),
    ({"width": float("nan")}, "width=nan must be a positive number"),
    ({"lr_schedule": "step"}, "lr_schedule='step' must be one of constant, plateau, cosine"),
])
def test_bad_training_options_are_refused(options, message):
    with pytest.raises(ParameterError, match=re.escape(message)):
        TrainConfig(**options)

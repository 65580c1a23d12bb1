"""Training that meets trouble: damaged checkpoints and state, a full disk, a build running on the data set,
damaged slices, and runs killed while they finish."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from genreslice.pipeline import layout
from tests.helpers import RUN, build_could_start, digest, hold_lock, stop
from genreslice.training.callbacks import GoalEarlyStopping
from genreslice.training.errors import DatasetError, ModelDirError
from genreslice.training.settings import TrainConfig
from genreslice.training.train import TrainObserver, train_model

REPO = Path(__file__).resolve().parents[2]


def force_val_losses(monkeypatch, losses: list[float]) -> None:
    """Make the early-stop rule see ``losses[k]`` as epoch ``k + 1``'s validation loss, so that a test chooses
    which epoch is the best and when a rule fires."""
    report = GoalEarlyStopping.on_epoch_end

    def forced(self, epoch, logs=None):
        return report(self, epoch, {**logs, "val_loss": losses[epoch]})

    monkeypatch.setattr(GoalEarlyStopping, "on_epoch_end", forced)


def damage(path: Path) -> None:
    """Overwrite 16 bytes in the middle of a file, as a failing disk does; its size stays the same."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(255 - value for value in data[middle:middle + 16])
    path.write_bytes(bytes(data))


def weights(path: Path) -> list[np.ndarray]:
    return keras.models.load_model(path, compile=False).get_weights()


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def checkpoint_files(model_dir: Path) -> list[str]:
    return sorted(path.name for path in (model_dir / "checkpoint").iterdir())


# The forced validation losses decide which epoch is the best.
RUN = {**RUN, "monitor": "val_loss"}
# Every epoch better than the last: the last epoch is the best.
IMPROVING = [3.0, 2.0, 1.0, 0.5, 0.25]
# Every epoch worse than the first: epoch 1 stays the best, and patience 2 stops the run after epoch 3.
WORSENING = [1.0, 2.0, 3.0, 4.0, 5.0]
PATIENT = {**RUN, "patience": 2}


@pytest.fixture(scope="module")
def best_is_last(small_dataset, tmp_path_factory):
    """Two epochs that end at the epoch limit; epoch 2 is the best (model.keras is a copy of its checkpoint)."""
    model_dir = tmp_path_factory.mktemp("best is last") / "model"
    with pytest.MonkeyPatch.context() as patch:
        force_val_losses(patch, IMPROVING)
        train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    assert checkpoint_files(model_dir) == ["epoch-0002.keras", "state.json"]
    return model_dir


@pytest.fixture(scope="module")
def best_is_first(small_dataset, tmp_path_factory):
    """Two epochs that end at the epoch limit; epoch 1 is the best, epoch 2 the last (one epoch without
    improvement counted towards a patience of 2)."""
    model_dir = tmp_path_factory.mktemp("best is first") / "model"
    with pytest.MonkeyPatch.context() as patch:
        force_val_losses(patch, WORSENING)
        result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **PATIENT))
    assert result.best_epoch == 1 and checkpoint_files(model_dir) == ["epoch-0001.keras", "epoch-0002.keras",
                                                                      "state.json"]
    return model_dir


def copy_run(source: Path, tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    shutil.copytree(source, model_dir)
    return model_dir


@pytest.mark.parametrize("recorded_digests", [True, False], ids=["checked by SHA-256", "checked by loading"])
def test_a_damaged_last_checkpoint_is_replaced_by_model_keras(best_is_last, small_dataset, tmp_path, monkeypatch,
                                                              recorded_digests):
    model_dir = copy_run(best_is_last, tmp_path)
    state_path = model_dir / "checkpoint" / "state.json"
    if not recorded_digests:  # as a run of an earlier version wrote it: only Keras's loader sees the damage
        state = json.loads(state_path.read_text())
        del state["sha256"]
        state_path.write_text(json.dumps(state))
    epoch_2 = weights(model_dir / "model.keras")
    damage(model_dir / "checkpoint" / "epoch-0002.keras")
    force_val_losses(monkeypatch, IMPROVING)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))

    assert result.resumed_from == 2 and result.epochs_this_call == 1 and result.epochs_run == 3
    [note] = result.notes
    why = "its SHA-256 is not the one recorded" if recorded_digests else "BadZipFile: Bad CRC-32"
    assert note.startswith(f"{model_dir / 'checkpoint' / 'epoch-0002.keras'} is damaged ({why}")
    assert note.endswith(f"replaced it with {model_dir / 'model.keras'}, a copy of the same epoch")
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[:2] == json.loads((best_is_last / "checkpoint" / "state.json").read_text())["history"]
    assert checkpoint_files(model_dir) == ["epoch-0003.keras", "state.json"]
    # Epoch 3 was trained from epoch 2's weights, not from scratch: its optimizer has taken 3 epochs of steps.
    assert int(keras.models.load_model(model_dir / "checkpoint" / "epoch-0003.keras").optimizer.iterations) == 3 * 2
    assert not same_weights(weights(model_dir / "model.keras"), epoch_2)


def test_a_damaged_last_checkpoint_rewinds_to_the_best_epoch(best_is_first, small_dataset, tmp_path, monkeypatch,
                                                             caplog):
    model_dir = copy_run(best_is_first, tmp_path)
    first_rows = json.loads((model_dir / "checkpoint" / "state.json").read_text())["history"]
    epoch_1 = weights(model_dir / "model.keras")
    damage(model_dir / "checkpoint" / "epoch-0002.keras")
    force_val_losses(monkeypatch, WORSENING)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=5, **PATIENT))

    [note] = result.notes
    assert note.startswith(f"{model_dir / 'checkpoint' / 'epoch-0002.keras'} is damaged (")
    assert note.endswith("the run went back to epoch 1, its best epoch, and trains epoch 2 again")
    assert note in caplog.text  # logged as a warning when it happened, too
    assert result.resumed_from == 1 and result.history[0] == first_rows[0]
    # The patience count was recomputed for epoch 1 (0 epochs without improvement), not kept from epoch 2 (1):
    # the rule fires after epochs 2 and 3, not after epoch 2 alone.
    assert result.stop_reason == "patience" and result.epochs_run == 3 and result.epochs_this_call == 2
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.best_epoch == 1 and same_weights(weights(model_dir / "model.keras"), epoch_1)
    assert checkpoint_files(model_dir) == ["state.json"]


def test_a_damaged_best_checkpoint_is_replaced_by_model_keras(best_is_first, small_dataset, tmp_path, monkeypatch):
    model_dir = copy_run(best_is_first, tmp_path)
    intact = (model_dir / "checkpoint" / "epoch-0001.keras").read_bytes()
    damage(model_dir / "checkpoint" / "epoch-0001.keras")
    force_val_losses(monkeypatch, WORSENING)

    class Check(TrainObserver):
        def on_run_start(self, summary):
            self.repaired = (model_dir / "checkpoint" / "epoch-0001.keras").read_bytes() == intact

    check = Check()
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, **PATIENT), observer=check)
    [note] = result.notes
    assert note.startswith(f"{model_dir / 'checkpoint' / 'epoch-0001.keras'} is damaged (")
    assert note.endswith(f"replaced it with {model_dir / 'model.keras'}, a copy of the same epoch")
    assert check.repaired  # from model.keras, before training went on
    assert result.resumed_from == 2 and result.epochs_run == 3 and result.stop_reason == "patience"
    assert result.best_epoch == 1 and (model_dir / "model.keras").read_bytes() == intact


@pytest.mark.parametrize("run, damaged", [
    ("best_is_last", ("checkpoint/epoch-0002.keras", "model.keras")),
    ("best_is_first", ("checkpoint/epoch-0002.keras", "checkpoint/epoch-0001.keras", "model.keras")),
    ("best_is_first", ("checkpoint/epoch-0001.keras", "model.keras")),
])
def test_no_intact_copy_left_is_refused_with_the_damaged_files(request, small_dataset, tmp_path, run, damaged):
    model_dir = copy_run(request.getfixturevalue(run), tmp_path)
    for name in damaged:
        damage(model_dir / name)
    before = digest(model_dir)
    with pytest.raises(ModelDirError) as caught:
        train_model(small_dataset, model_dir, TrainConfig(epochs=3, **(RUN if run == "best_is_last" else PATIENT)))
    message = str(caught.value)
    assert "\n" not in message and message.endswith("Train into a new folder")
    assert message.startswith(f"{model_dir}: no intact copy of the epochs the run could continue from is left")
    for name in damaged:
        assert f"{model_dir / name} (" in message
    assert digest(model_dir) == before


@pytest.mark.parametrize("edit, problem", [
    (lambda state: state.update(epochs_done="2"), "epochs_done='2' is not a number of epochs"),
    (lambda state: state.update(history={"1": {}}), "history must be a list of 2 epochs"),
    (lambda state: state["history"][1].pop("val_loss"), "history row 2 must be epoch 2 with numbers for loss"),
    (lambda state: state["history"][0].pop("seconds"), "history row 1 must be epoch 1 with numbers for loss"),
    (lambda state: state["history"][0].update(loss="x"), "history row 1 must be epoch 1 with numbers for loss"),
    (lambda state: state["history"][0].update(peak_memory_mib="x"), "history row 1 must be epoch 1 with numbers"),
    (lambda state: state.update(stop_reason=""), "stop_reason='' must be none or one of target, patience"),
    (lambda state: state.update(stop_reason="bored"), "stop_reason='bored' must be none or one of target"),
    (lambda state: state.update(last="../model.keras"), "last='../model.keras' is not 'epoch-0002.keras'"),
    (lambda state: state.update(best="epoch-0009.keras"), "best='epoch-0009.keras' is not 'epoch-0002.keras'"),
    (lambda state: state.update(best_epoch=True), "best_epoch=True is not an epoch from 1 to 2"),
    (lambda state: state.pop("metrics"), "metrics=None is not a JSON object"),
    (lambda state: state.update(sha256=["x"]), "sha256=['x'] is not a JSON object"),
    (lambda state: state.clear(), "epochs_done=None"),
    (lambda state: state.update(format_version=7), "format_version=7 is not 1"),
])
def test_a_damaged_state_is_refused_in_one_line(best_is_last, small_dataset, tmp_path, edit, problem):
    model_dir = copy_run(best_is_last, tmp_path)
    state_path = model_dir / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    edit(state)
    state_path.write_text(json.dumps(state))
    before = digest(model_dir)
    with pytest.raises(ModelDirError) as caught:
        train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    message = str(caught.value)
    assert message.startswith(f"{state_path}: not a usable training state ({problem}")
    assert message.endswith("train into a new folder") and "\n" not in message
    assert digest(model_dir) == before


@pytest.mark.parametrize("edit", [
    lambda state: state.pop("early_stop"),
    lambda state: state["early_stop"].update(wait="1"),
    lambda state: state["early_stop"].update(best_epoch=1),  # epoch 2 (counted from 0): not the state's best
    lambda state: state["early_stop"].update(best_epoch=0.0),  # equal to the best, but not a whole number
], ids=["missing", "mistyped", "disagreeing", "a float"])
def test_a_missing_early_stop_record_is_recomputed_from_the_history(best_is_first, small_dataset, tmp_path,
                                                                    monkeypatch, edit):
    model_dir = copy_run(best_is_first, tmp_path)
    state_path = model_dir / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    recorded = dict(state["early_stop"])
    edit(state)
    state_path.write_text(json.dumps(state))
    force_val_losses(monkeypatch, WORSENING)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **PATIENT))
    assert result.status == "already_finished"  # a finished run does not need the record

    class Check(TrainObserver):
        def on_run_start(self, summary):
            self.state = json.loads(state_path.read_text())

    check = Check()
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=5, **PATIENT), observer=check)
    assert check.state["early_stop"] == recorded  # recomputed and committed before training went on
    assert result.notes == (f"{state_path}: its early-stop record was missing or damaged; recomputed it from the "
                            "run's history",)
    assert result.stop_reason == "patience" and result.epochs_run == 3 and result.resumed_from == 2


def test_replaying_the_history_gives_the_rule_its_state_back():
    histories = [(0.5, 1.0), (0.6, 0.8), (0.6, 0.9), (0.7, 0.85)]
    trained = GoalEarlyStopping(target_accuracy=None, patience=3)
    for epoch, (accuracy, loss) in enumerate(histories):
        trained.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_loss": loss})
    replayed = GoalEarlyStopping(target_accuracy=None, patience=3)
    replayed.set_state({"best_loss": 0.1, "best_epoch": 9, "wait": 7})
    replayed.replay([{"val_accuracy": accuracy, "val_loss": loss} for accuracy, loss in histories])
    assert replayed.get_state() == trained.get_state() == {
        "monitor": "val_loss", "best_loss": 0.8, "best_accuracy": 0.6, "best_epoch": 1, "wait": 2,
        "stop_reason": None, "stopped_epoch": None, "message": ""}
    replayed.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    with pytest.raises(ValueError, match="before the callback is given a model"):
        replayed.replay([])


@pytest.mark.parametrize("target", ["epoch-0003.keras", "state.json", "model.keras", "history.csv", "curves.png",
                                    "model.json"])
def test_a_failed_write_names_its_file_and_the_run_continues_later(best_is_last, small_dataset, tmp_path,
                                                                   monkeypatch, target):
    model_dir = copy_run(best_is_last, tmp_path)
    force_val_losses(monkeypatch, IMPROVING)
    replace = os.replace

    def disk_full(source, destination, **kwargs):
        if Path(destination).name == target:
            raise OSError(28, "No space left on device")
        return replace(source, destination, **kwargs)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(ModelDirError) as caught:
        train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    message = str(caught.value)
    folder = "checkpoint" if target in ("epoch-0003.keras", "state.json") else ""
    assert message.startswith(f"{model_dir / folder / target}: cannot be written (No space left on device). Free "
                              "space on its disk")
    assert message.endswith("then run the same command again: training continues from its last completed epoch")
    assert not [path for path in model_dir.rglob(".*") if path.name != "lock"]  # no temporary file left

    monkeypatch.setattr(os, "replace", replace)
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    assert result.status == "finished" and result.epochs_run == 3
    assert json.loads((model_dir / "model.json").read_text())["status"] == "finished"
    assert (model_dir / "model.keras").read_bytes() == (model_dir / "checkpoint" / "epoch-0003.keras").read_bytes()


FILE_SIZE_LIMITED_TRAINING = """
import resource, signal, sys
from genreslice.training.errors import TrainingError
from genreslice.training.settings import TrainConfig
from genreslice.training.train import train_model

# Files may grow to 256 KiB: the logs, plots and records fit, a model (1.6 MB) does not. With SIGXFSZ ignored,
# a write past the limit fails with EFBIG ("File too large") instead of killing the process.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    train_model(sys.argv[1], sys.argv[2], TrainConfig(model="compact", epochs=3, target_accuracy=None, patience=0,
                                                      loader_workers=2))
except TrainingError as err:
    print(err, file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="file size limits are POSIX's")
def test_a_model_file_too_large_for_the_disk_fails_by_name_and_the_run_resumes(best_is_last, small_dataset,
                                                                               tmp_path):
    model_dir = copy_run(best_is_last, tmp_path)
    committed = json.loads((model_dir / "checkpoint" / "state.json").read_text())
    finished = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMITED_TRAINING, str(small_dataset), str(model_dir)],
                              cwd=REPO, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert finished.returncode == 1, finished.stderr
    reported = [line for line in finished.stderr.splitlines() if line.startswith(str(model_dir))]
    assert reported == [f"{model_dir / 'checkpoint' / 'epoch-0003.keras'}: cannot be written (File too large). Free "
                        "space on its disk (or fix what the error names), then run the same command again: training "
                        "continues from its last completed epoch"]
    assert json.loads((model_dir / "checkpoint" / "state.json").read_text()) == committed
    assert checkpoint_files(model_dir) == ["epoch-0002.keras", "state.json"]  # no half-written file
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=3, **RUN))
    assert result.resumed_from == 2 and result.epochs_this_call == 1 and result.epochs_run == 3


def crash_after_writing(monkeypatch, name: str, when) -> None:
    """Raise KeyboardInterrupt, as a kill would stop the run, right after ``name`` is written with content for which
    ``when(parsed JSON)`` is true."""
    write = layout.write_text_atomic

    def crashing(path, text, **kwargs):
        write(path, text, **kwargs)
        if Path(path).name == name and when(json.loads(text)):
            raise KeyboardInterrupt

    monkeypatch.setattr(layout, "write_text_atomic", crashing)


def test_a_run_killed_after_committing_its_last_epoch_keeps_no_stale_checkpoint(small_dataset, tmp_path,
                                                                                monkeypatch):
    """Killed after epoch 2's commit, before the files it replaced were removed: the run that finishes it through
    the 'committed but not finished' path removed nothing, and epoch 1's file (neither the last nor the best)
    stayed for good."""
    model_dir = tmp_path / "model"
    force_val_losses(monkeypatch, [2.0, 1.0])
    crash_after_writing(monkeypatch, "state.json", lambda state: state["epochs_done"] == 2)
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    assert checkpoint_files(model_dir) == ["epoch-0001.keras", "epoch-0002.keras", "state.json"]
    monkeypatch.undo()
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **RUN))
    assert result.status == "finished" and result.epochs_this_call == 0 and result.best_epoch == 2
    # The last and best epoch stays, so that a higher --epochs can continue the run.
    assert checkpoint_files(model_dir) == ["epoch-0002.keras", "state.json"]


def test_a_run_killed_while_finishing_by_a_stop_rule_keeps_no_checkpoint(small_dataset, tmp_path, monkeypatch):
    """Killed after model.json said 'finished', before the checkpoints were removed: later runs saw a finished run
    and left them for good."""
    model_dir = tmp_path / "model"
    force_val_losses(monkeypatch, WORSENING)
    crash_after_writing(monkeypatch, "model.json", lambda record: record["status"] == "finished")
    with pytest.raises(KeyboardInterrupt):
        train_model(small_dataset, model_dir, TrainConfig(epochs=5, **PATIENT))
    monkeypatch.undo()
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=5, **PATIENT))
    assert result.stop_reason == "patience" and result.epochs_run == 3
    assert checkpoint_files(model_dir) == ["state.json"]
    assert json.loads((model_dir / "model.json").read_text())["status"] == "finished"


def lock_file(dataset: Path) -> Path:
    """The lock file a build leaves in the data set's state folder (the synthetic data set has none)."""
    (dataset / layout.STATE_DIR).mkdir(exist_ok=True)
    (dataset / layout.STATE_DIR / "lock").touch()
    return dataset / layout.STATE_DIR / "lock"


def test_training_is_refused_while_a_build_changes_the_data_set(small_dataset, tmp_path):
    dataset = tmp_path / "data"
    shutil.copytree(small_dataset, dataset)
    holder = hold_lock(lock_file(dataset))
    try:
        with pytest.raises(DatasetError) as caught:
            train_model(dataset, tmp_path / "model", TrainConfig(epochs=1, **RUN))
    finally:
        stop(holder)
    assert str(caught.value) == (f"a build is changing {dataset} (process {holder.pid}); wait for it to finish, "
                                 "then run this command again")
    assert not (tmp_path / "model").exists()


def test_training_holds_the_data_set_as_a_reader_for_its_whole_run(small_dataset, tmp_path):
    dataset = tmp_path / "data"
    shutil.copytree(small_dataset, dataset)
    lock_path = lock_file(dataset)
    other_reader = hold_lock(lock_path, shared=True)  # an evaluation, say: two readers at once are fine
    seen = []

    class Probe(TrainObserver):
        def on_epoch_end(self, row):
            stop(other_reader)  # from now on only the training holds the lock
            seen.append(build_could_start(lock_path))

    try:
        result = train_model(dataset, tmp_path / "model", TrainConfig(epochs=2, **RUN), observer=Probe())
    finally:
        stop(other_reader)
    assert result.epochs_run == 2 and seen == [False, False]
    assert build_could_start(lock_path)  # released when the run ended


def test_a_damaged_slice_says_how_to_render_it_anew(small_dataset, tmp_path):
    dataset = tmp_path / "data"
    shutil.copytree(small_dataset, dataset)
    with open(dataset / "slices.csv", newline="") as handle:
        victim = [row["path"] for row in csv.DictReader(handle) if row["split"] == "train"][-1]
    damage(dataset / victim)  # the same size: a build would not notice
    model_dir = tmp_path / "model"
    with pytest.raises(DatasetError) as caught:
        train_model(dataset, model_dir, TrainConfig(epochs=1, batch_size=8, **RUN))
    slice_path = dataset.resolve() / victim
    assert str(caught.value).startswith(f"{slice_path}: cannot be read as a slice (")
    assert str(caught.value).endswith(
        f". To render it anew, delete its track folder {slice_path.parent} and run 'genreslice build' again with "
        f"the same AUDIO_DIR and {dataset} as DATASET_DIR; then run the same command again. Training stopped; it "
        f"continues from its last completed epoch, kept in {model_dir}")
    assert "\n" not in str(caught.value)


def test_finishing_a_run_keeps_model_keras_when_the_best_checkpoint_is_damaged(best_is_first, small_dataset,
                                                                               tmp_path):
    """A run whose last epoch was committed but whose final files were not written is finished by the next call,
    which copies the best checkpoint to model.keras: not when that checkpoint is damaged."""
    model_dir = copy_run(best_is_first, tmp_path)
    record = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps({**record, "status": "training"}))
    intact = (model_dir / "model.keras").read_bytes()
    damage(model_dir / "checkpoint" / "epoch-0001.keras")
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **PATIENT))
    assert (model_dir / "model.keras").read_bytes() == intact
    assert result.status == "finished" and result.epochs_this_call == 0
    assert result.notes == (f"{model_dir / 'checkpoint' / 'epoch-0001.keras'} is damaged (its SHA-256 is not the one "
                            f"recorded when it was written); {model_dir / 'model.keras'}, a copy of the same epoch, is "
                            "the final model",)
    assert json.loads((model_dir / "model.json").read_text())["status"] == "finished"


def test_finishing_a_run_of_an_earlier_version_keeps_model_keras(best_is_first, small_dataset, tmp_path):
    """A state written without SHA-256 digests cannot tell a damaged best checkpoint from a good one: finishing
    keeps model.keras, copied from that checkpoint when its epoch was the best, instead of copying over it."""
    model_dir = copy_run(best_is_first, tmp_path)
    record = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps({**record, "status": "training"}))
    state_path = model_dir / "checkpoint" / "state.json"
    state = json.loads(state_path.read_text())
    del state["sha256"]
    state_path.write_text(json.dumps(state))
    intact = (model_dir / "model.keras").read_bytes()
    damage(model_dir / "checkpoint" / "epoch-0001.keras")
    result = train_model(small_dataset, model_dir, TrainConfig(epochs=2, **PATIENT))
    assert result.status == "finished" and (model_dir / "model.keras").read_bytes() == intact


def test_an_intact_checkpoint_that_cannot_be_loaded_is_not_taken_for_damage(best_is_first, small_dataset, tmp_path,
                                                                             monkeypatch):
    """A file whose SHA-256 is the one recorded is as it was written: when loading fails all the same (another
    Keras, no memory left), nothing is rewound or deleted."""
    model_dir = copy_run(best_is_first, tmp_path)
    before = digest(model_dir)
    load = keras.models.load_model

    def failing(path, *args, **kwargs):
        if Path(path).parent.name == "checkpoint":
            raise MemoryError("out of memory")
        return load(path, *args, **kwargs)

    monkeypatch.setattr(keras.models, "load_model", failing)
    with pytest.raises(ModelDirError) as caught:
        train_model(small_dataset, model_dir, TrainConfig(epochs=3, **PATIENT))
    assert str(caught.value).startswith(f"{model_dir / 'checkpoint' / 'epoch-0002.keras'} is intact (its SHA-256 is "
                                        "the one recorded) but cannot be loaded (MemoryError: out of memory)")
    assert digest(model_dir) == before

"""A model folder's ``checkpoint/``: the committed state of a run and the epoch files it resumes from.

Each completed epoch is committed by rewriting ``checkpoint/state.json`` atomically after the epoch's model files
are on disk (see :class:`genreslice.training.callbacks.EpochCheckpoint`), so an interrupted run (Ctrl-C, a crash, a
killed job, a full disk) resumes from its last completed epoch when the same command is run again.
``state.json`` records the SHA-256 of the epoch files it names: a file damaged on disk is replaced by an intact
copy of the same epoch, or the run goes back to its best epoch (see :func:`restore`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import shutil
from pathlib import Path

from genreslice.pipeline import layout
from genreslice.training.dataset import DatasetInfo
from genreslice.training.errors import ModelDirError
from genreslice.training.model_dir import (
    CHECKPOINT_DIR,
    HISTORY_COLUMNS,
    TAGGING_COLUMNS,
    MODEL_FILE,
    MODEL_FORMAT_VERSION,
    MODEL_JSON,
    STATE_JSON,
    read_model_json,
    write_record,
    writing,
)
from genreslice.training.settings import (
    STOP_MAX_EPOCHS,
    STOP_REASONS,
    TrainConfig,
    recorded_choices,
    recorded_settings,
)
from genreslice.training.tf_modules import keras

logger = logging.getLogger(__name__)


def epoch_file(epoch: int) -> str:
    """The name of epoch ``epoch``'s model file (counted from 1) in ``checkpoint/``."""
    return f"epoch-{epoch:04d}.keras"


def load_state(out: Path) -> dict | None:
    """The committed state of the run in ``out``; None if no epoch was committed.

    Raises
    ------
    ModelDirError
        ``checkpoint/state.json`` cannot be read, or lacks or mistypes what resuming needs. Its ``early_stop``
        record is not checked here: training recomputes it from the history when it is unusable
        (see :func:`early_stop_usable`).
    """
    path = out / CHECKPOINT_DIR / STATE_JSON
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelDirError(f"{path}: the run's state cannot be read ({err}); train into a new folder") from err
    problem = _state_problem(state)
    if problem:
        raise ModelDirError(f"{path}: not a usable training state ({problem}); train into a new folder")
    return state


def write_state(out: Path, state: dict) -> None:
    """Commit ``state`` as ``checkpoint/state.json`` (atomically)."""
    write_record(out / CHECKPOINT_DIR / STATE_JSON, json.dumps(state, indent=1) + "\n")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _state_problem(state) -> str:
    """What makes a loaded ``state.json`` unusable for resuming or finishing a run; empty if nothing."""
    if not isinstance(state, dict):
        return f"a JSON object is expected. Received: {type(state).__name__}"
    if state.get("format_version", MODEL_FORMAT_VERSION) != MODEL_FORMAT_VERSION:
        return (f"format_version={state['format_version']!r} is not {MODEL_FORMAT_VERSION}; another version of "
                "genreslice wrote it")
    done = state.get("epochs_done")
    if not _is_int(done) or done < 1:
        return f"epochs_done={done!r} is not a number of epochs"
    monitor = recorded_choices(state.get("settings"))["monitor"]
    return (_history_problem(state.get("history"), done, monitor) or _epochs_problem(state, done)
            or _records_problem(state))


def _history_problem(history, done: int, monitor: str = "val_loss") -> str:
    if not isinstance(history, list) or len(history) != done:
        return f"history must be a list of {done} epochs. Received: {repr(history)[:80]}"
    for number, row in enumerate(history, 1):
        if not isinstance(row, dict) or row.get("epoch") != number or not all(
                _is_number(row.get(key)) for key in {"val_loss", "val_accuracy", "seconds", monitor}) or not all(
                row.get(key) is None or _is_number(row[key])
                for key in (*HISTORY_COLUMNS, *TAGGING_COLUMNS, "peak_memory_mib")):
            return (f"history row {number} must be epoch {number} with numbers for {', '.join(HISTORY_COLUMNS[1:])}. "
                    f"Received: {repr(row)[:80]}")
    return ""


def _epochs_problem(state: dict, done: int) -> str:
    """Whether the last and best epoch files the state names are those of its epochs."""
    if state.get("last") != epoch_file(done):
        return f"last={state.get('last')!r} is not {epoch_file(done)!r}, the file of epoch {done}"
    best_epoch = state.get("best_epoch")
    if best_epoch is not None and not (_is_int(best_epoch) and 1 <= best_epoch <= done):
        return f"best_epoch={best_epoch!r} is not an epoch from 1 to {done}"
    best = epoch_file(best_epoch) if best_epoch else state["last"]
    if state.get("best") != best:
        return f"best={state.get('best')!r} is not {best!r}, the file of its best epoch"
    return ""


def _records_problem(state: dict) -> str:
    """Whether the stop record, the metrics and the digests have the types finishing a run needs."""
    if state.get("stop_reason") not in (None, *STOP_REASONS) or not isinstance(state.get("stop_message", ""), str):
        return (f"stop_reason={state.get('stop_reason')!r} must be none or one of {', '.join(STOP_REASONS)}, and "
                "stop_message text")
    if not isinstance(state.get("metrics"), dict):
        return f"metrics={state.get('metrics')!r} is not a JSON object"
    digests = state.get("sha256", {})
    if not isinstance(digests, dict) or not all(isinstance(value, str) for value in digests.values()):
        return f"sha256={repr(digests)[:80]} is not a JSON object of file names and digests"
    return ""


def early_stop_usable(state: dict) -> bool:
    """Whether ``state``'s record of the early-stop rule can be given back to it (and agrees with the state).

    A record of an earlier version has no ``monitor`` and no ``best_accuracy``: it monitored the loss.
    """
    record = state.get("early_stop")
    if not isinstance(record, dict) or not {"best_loss", "best_epoch", "wait"} <= record.keys():
        return False
    best_epoch = None if state["best_epoch"] is None else state["best_epoch"] - 1  # the rule counts from 0
    monitor = recorded_choices(state.get("settings"))["monitor"]
    return ((record["best_epoch"] is None if best_epoch is None else _is_int(record["best_epoch"]))
            and record["best_epoch"] == best_epoch
            and record.get("monitor", "val_loss") == monitor
            and (record["best_loss"] is None or _is_number(record["best_loss"]))
            and (monitor == "val_loss" or record.get("best_accuracy") is None or _is_number(record["best_accuracy"]))
            and (monitor == "val_loss" or record.get("best_accuracy") is not None or best_epoch is None)
            and _is_int(record["wait"]) and record["wait"] >= 0)


def kept_file(state: dict) -> str:
    """The epoch file whose weights the run keeps, and ``model.keras`` copies: its best, or with ``keep``
    ``last`` its last."""
    return state["last"] if recorded_choices(state.get("settings"))["keep"] == "last" else state["best"]


def kept_epoch(state: dict) -> int:
    """The epoch (from 1) whose weights the run keeps: its best, or its last with ``keep`` ``last`` or when no
    epoch was the best (every validation loss NaN)."""
    if recorded_choices(state.get("settings"))["keep"] == "last" or state.get("best_epoch") is None:
        return state["epochs_done"]
    return state["best_epoch"]


def accuracy_hint(state: dict) -> str:
    """When an epoch had a better validation accuracy than the kept one, which it was and how to keep it; empty
    otherwise. A network that grows overconfident raises its validation loss while its accuracy still climbs:
    judged by loss, such a run keeps one of its first epochs."""
    choices = recorded_choices(state.get("settings"))
    if choices["keep"] != "best" or choices["monitor"] != "val_loss":
        return ""  # the last epoch is kept whatever the monitor, or accuracy already decides
    if any("val_roc_auc" in row for row in state["history"]):
        return ""  # a multi-label run: its accuracy counts (slice, tag) pairs, mostly absent tags
    history, epoch = state["history"], kept_epoch(state)
    kept_accuracy = history[epoch - 1]["val_accuracy"]
    finite = [k for k in range(len(history)) if math.isfinite(history[k]["val_accuracy"])
              and math.isfinite(history[k]["val_loss"])]
    if not finite or not math.isfinite(kept_accuracy):
        return ""
    best = max(finite, key=lambda k: (history[k]["val_accuracy"], -history[k]["val_loss"])) + 1
    if history[best - 1]["val_accuracy"] <= kept_accuracy:
        return ""
    return (f"epoch {best} had a better val_accuracy ({history[best - 1]['val_accuracy']:.4f}, kept epoch "
            f"{kept_accuracy:.4f}); --monitor val_accuracy keeps the epoch of the best accuracy")


def kept_message(state: dict) -> str:
    """Which epoch's weights the run keeps, and why: ``kept the weights of epoch 12 (best val_accuracy 0.8300)``
    or ``kept the last epoch's weights (epoch 30, --keep last)``."""
    choices, epoch = recorded_choices(state.get("settings")), kept_epoch(state)
    if choices["keep"] == "last":
        return f"kept the last epoch's weights (epoch {epoch}, --keep last)"
    if state.get("best_epoch") is None:
        return f"kept the last epoch's weights (epoch {epoch}): no epoch had a finite validation loss"
    value = state["history"][epoch - 1][choices["monitor"]]
    return f"kept the weights of epoch {epoch} (best {choices['monitor']} {value:.4f})"


def check_resumable(out: Path, state: dict | None, info: DatasetInfo, config: TrainConfig) -> None:
    """Refuse to continue a run of another data set version or other settings, or to train over a model that
    has no state to continue.

    Raises
    ------
    ModelDirError
        The message says what differs.
    """
    if state is None:
        # A run interrupted in its first epoch leaves model.json saying "training" and nothing else worth
        # keeping; it starts over. A finished model without its state is never trained over.
        if (out / MODEL_JSON).exists() and read_model_json(out).get("status") != "training":
            raise ModelDirError(f"{out} holds a model but no training state to continue; train into a new folder")
        return
    if state.get("fingerprint") != info.fingerprint:
        raise ModelDirError(
            f"{out} holds a run on another version of the data set ({info.root / 'slices.csv'} changed since it "
            "started); train into a new folder"
        )
    recorded = state.get("settings")
    if isinstance(recorded, dict):  # a run of an earlier version monitored the loss, kept its best epoch, and
        recorded = recorded_settings(recorded)  # had the defaults of the options added since
    # In full on both sides: a setting at its default is not recorded, and must differ from a recorded one.
    differences = list(layout.setting_differences(recorded, recorded_settings(config.run_settings())))
    if differences:
        listed = "; ".join(f"{key}: was {old!r}, now {new!r}" for key, old, new in differences)
        raise ModelDirError(
            f"{out} holds a run with other settings ({listed}). Re-run with the same settings to continue it, "
            "or train into a new folder."
        )


def best_metrics(history: list[dict], best_epoch: int | None) -> dict:
    """The losses and accuracies of epoch ``best_epoch`` (counted from 0); empty when there is none."""
    if best_epoch is None or best_epoch >= len(history):
        return {}
    row = history[best_epoch]
    return {key: row[key] for key in ("loss", "accuracy", "val_loss", "val_accuracy", *TAGGING_COLUMNS)
            if row.get(key) is not None}


def resumable_files(state: dict) -> tuple[str, ...]:
    """The epoch files a committed run keeps: its last and best, unless a stop rule ended it for good (a run
    stopped by its epoch limit keeps them, so that a re-run with a higher ``--epochs`` can continue it)."""
    return (state["last"], state["best"]) if state.get("stop_reason") in (None, STOP_MAX_EPOCHS) else ()


def remove_checkpoints(checkpoint_dir: Path, *, keep: tuple[str, ...]) -> None:
    """Remove the epoch files but ``keep``: older epochs, or damaged files the committed state no longer names."""
    for stale in checkpoint_dir.glob("epoch-*.keras"):
        if stale.name not in keep:
            stale.unlink()


def sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def damage(path: Path, digest: str | None) -> str:
    """What is wrong with an epoch file whose SHA-256 was recorded as ``digest`` (None: not recorded); empty if
    nothing is seen (a file that matches may still fail to load)."""
    try:
        if digest is None:
            return "" if path.is_file() else "missing"
        return "" if sha256(path) == digest else "its SHA-256 is not the one recorded when it was written"
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """Save ``model`` as ``path`` so that readers, and a run killed meanwhile, see the old file or the new one;
    the folder entry is flushed too (a committed checkpoint must survive a power cut).

    Raises
    ------
    ModelDirError
        The file cannot be written; the message says what to do.
    """
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    with writing(path), layout.replacing(path, suffix=".tmp.keras", sync_folder=True) as tmp:
        model.save(tmp)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` so that readers see the old file or the new one, never a torn one.

    Raises
    ------
    ModelDirError
        The file cannot be written; the message says what to do.
    """
    with writing(target), layout.replacing(target) as tmp:
        shutil.copyfile(source, tmp)


def restore(out: Path, state: dict, strategy) -> tuple[keras.Model, list, dict, list[str]]:
    """Load a committed run to continue it: its last epoch, and its best epoch's weights, past damaged files.

    Disk corruption can damage an epoch file during a long run. Each epoch file is checked against the SHA-256
    ``state.json`` recorded when it was written (a state written without one: against Keras's loader only).
    The kept epoch (the best; the last with ``keep`` ``last``) has a second copy, ``model.keras``; a damaged file
    is replaced by an intact copy of the same epoch. When the last epoch is damaged and is not the best one, the
    run goes back to its best epoch: the history is cut there, and the caller recomputes the early-stop record for
    it and commits the state.
    ``model.keras`` is rewritten if it does not hold the kept epoch (damaged, or an interrupted run's).

    Returns
    -------
    model : keras.Model
        The epoch to continue from, made in ``strategy``'s scope, with its optimizer state.
    best_weights : list or None
        The best epoch's weights; None with ``keep`` ``last`` (they are never restored).
    state : dict
        ``state`` itself, or a new state rewound to the best epoch (not yet committed).
    notes : list of str
        What was damaged and what was done about it; empty when nothing was.

    Raises
    ------
    ModelDirError
        No intact copy of the epoch to continue from, or of the best epoch, is left.
    """
    damaged: dict[Path, str] = {}
    model, source, rewound = _load_resume_point(out, state, damaged, strategy)
    if state["best"] == state["last"] or rewound:
        best_weights, best_source = model.get_weights(), source
    elif kept_file(state) == state["last"]:  # keep "last": the best weights are never restored
        best_weights, best_source = None, None
    else:
        best_model, best_source = _load_intact_epoch(out, state, name=state["best"], damaged=damaged,
                                                      scope=contextlib.nullcontext)
        best_weights = best_model.get_weights()
    notes = _damage_notes(out, state, damaged, rewound=rewound)
    kept = state["best"] if rewound else kept_file(state)  # a rewound run's last epoch is its best
    _repair_model_file(out, kept, source if rewound or kept == state["last"] else best_source)
    return model, best_weights, _rewound_to_best(out, state) if rewound else state, notes


def _load_resume_point(out: Path, state: dict, damaged: dict[Path, str],
                       strategy) -> tuple[keras.Model, Path, bool]:
    """The epoch to continue from, in ``strategy``'s scope, and its copy's path: the last epoch, or the best one
    when no intact copy of the last is left (then the third value, ``rewound``, is True)."""
    last, best = state["last"], state["best"]
    loaded = load_epoch(out, state, name=last, damaged=damaged, scope=strategy.scope)
    rewound = loaded is None and best != last
    if rewound:
        loaded = load_epoch(out, state, name=best, damaged=damaged, scope=strategy.scope)
    if loaded is None:
        raise _nothing_left(out, damaged)
    return (*loaded, rewound)


def _load_intact_epoch(out: Path, state: dict, *, name: str, damaged: dict[Path, str],
                       scope) -> tuple[keras.Model, Path]:
    """As :func:`load_epoch`, but no intact copy left is an error."""
    loaded = load_epoch(out, state, name=name, damaged=damaged, scope=scope)
    if loaded is None:
        raise _nothing_left(out, damaged)
    return loaded


def _nothing_left(out: Path, damaged: dict[Path, str]) -> ModelDirError:
    listed = "; ".join(f"{path} ({why})" for path, why in damaged.items())
    return ModelDirError(f"{out}: no intact copy of the epochs the run could continue from is left: {listed}. "
                         "Train into a new folder")


def _damage_notes(out: Path, state: dict, damaged: dict[Path, str], *, rewound: bool) -> list[str]:
    """One note per damaged file: which copy replaced it, or that the run went back to its best epoch."""
    notes = []
    model_file = out / MODEL_FILE
    for path, why in damaged.items():
        if rewound and path.name == state["last"]:
            done, back = state["epochs_done"], state["best_epoch"]
            again = f"epoch {done}" if done == back + 1 else f"epochs {back + 1}-{done}"
            notes.append(f"{path} is damaged ({why}): the run went back to epoch {back}, its best epoch, and trains "
                         f"{again} again")
        else:
            notes.append(f"{path} is damaged ({why}); replaced it with {model_file}, a copy of the same epoch")
    return notes


def _repair_model_file(out: Path, best: str, best_source: Path) -> None:
    """Make ``checkpoint/<best>`` and ``model.keras`` the same intact copy of the kept epoch ``best``, from
    ``best_source``, the one that loaded."""
    best_file, model_file = out / CHECKPOINT_DIR / best, out / MODEL_FILE
    if best_source == model_file:
        copy_atomic(model_file, best_file)
    elif not model_file.is_file() or sha256(model_file) != sha256(best_file):
        logger.info("%s does not hold the best epoch (damaged, or an interrupted run's); rewriting it from %s",
                    model_file, best_file)
        copy_atomic(best_file, model_file)


def _rewound_to_best(out: Path, state: dict) -> dict:
    """``state`` as it was when its best epoch was the last one (its early-stop record left for the caller)."""
    back, best = state["best_epoch"], state["best"]
    history = state["history"][:back]
    return {**state, "epochs_done": back, "last": best, "history": history, "early_stop": None,
            "stop_reason": None, "stop_message": "", "metrics": best_metrics(history, back - 1), "kept_epoch": back,
            "sha256": {best: sha256(out / CHECKPOINT_DIR / best)}}


def load_epoch(out: Path, state: dict, *, name: str, damaged: dict[Path, str],
               scope) -> tuple[keras.Model, Path] | None:
    """The model of committed epoch file ``name`` from its first intact copy, and that copy's path; None if none.

    The copies are ``checkpoint/<name>`` and, for the kept epoch, ``model.keras``. Each damaged copy is added to
    ``damaged`` with the reason, and not tried twice. ``scope`` makes the context the model is loaded in.
    """
    copies = [out / CHECKPOINT_DIR / name] + ([out / MODEL_FILE] if name == kept_file(state) else [])
    for path in copies:
        if path in damaged:
            continue
        digest = state.get("sha256", {}).get(name)
        damaged[path] = damage(path, digest)
        if damaged[path]:
            continue
        try:
            with scope():
                model = keras.models.load_model(path)
        except Exception as err:  # Keras raises zipfile, OSError, ValueError, KeyError, h5py errors for damaged files
            reason = " ".join(f"{type(err).__name__}: {err}".split())
            if digest is not None:  # the file is as it was written: what fails is not the file
                raise ModelDirError(
                    f"{path} is intact (its SHA-256 is the one recorded) but cannot be loaded ({reason}). Is this "
                    f"the Keras and TensorFlow that trained it ({MODEL_JSON} records them), with the same memory? "
                    "Nothing was changed; fix that, then run the same command again") from err
            damaged[path] = reason
            continue
        del damaged[path]
        return model, path
    return None


def final_model_from_best(out: Path, state: dict) -> list[str]:
    """Copy the kept epoch's checkpoint (the best; the last with ``keep`` ``last``) to ``model.keras``, the final
    model; the notes say what was damaged.

    Without a recorded digest (a state of an earlier version) the copy cannot be checked, and ``model.keras``,
    copied from it when its epoch was committed as the best, is kept if present.

    Raises
    ------
    ModelDirError
        Neither copy of the best epoch is intact.
    """
    kept = kept_file(state)
    best_file, model_file = out / CHECKPOINT_DIR / kept, out / MODEL_FILE
    digest = state.get("sha256", {}).get(kept)
    best_damage = damage(best_file, digest)
    if not best_damage:
        if digest is not None or not model_file.is_file():
            copy_atomic(best_file, model_file)
        return []
    if damage(model_file, digest):
        raise ModelDirError(
            f"no intact copy of the kept epoch ({kept_epoch(state)}) is left to be the final model "
            f"({best_file}: {best_damage}; {model_file}: {damage(model_file, digest)}). Train into a new folder"
        )
    if best_damage == "missing":  # removed by an earlier finish, after it was copied
        return []
    note = f"{best_file} is damaged ({best_damage}); {model_file}, a copy of the same epoch, is the final model"
    logger.warning("%s", note)
    return [note]

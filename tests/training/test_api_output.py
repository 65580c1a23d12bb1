"""The Python API is quiet by default (no TensorFlow start-up lines, no progress) and shows Keras-style progress
when asked with ``verbose``; an observer of one's own gets the events either way."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genreslice.errors import ParameterError
from genreslice.pipeline.progress import ObserverGroup, check_verbose


def run_python(code: str, *, env: dict | None = None) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter (TensorFlow not yet loaded), with TensorFlow's log setting unset."""
    environment = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**environment, **(env or {})}, timeout=600)


def test_importing_the_api_prints_nothing():
    result = run_python("""
        from genreslice.training.predict import classify
        from genreslice.training.train import train_model
        from genreslice.training.evaluate import evaluate_model
        import tensorflow as tf
        print(len(tf.config.list_physical_devices()) > 0)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"
    assert result.stderr == ""


@pytest.mark.parametrize("level, shown", [("0", True), ("1", True), ("2", False), ("3", False)])
def test_tensorflow_log_level_set_by_the_user_decides(level, shown):
    """0 or 1 asks for TensorFlow's lines (left alone); 2 or 3, the usual way to silence it, must not get more."""
    result = run_python("from genreslice.training.predict import classify", env={"TF_CPP_MIN_LOG_LEVEL": level})
    assert result.returncode == 0, result.stderr
    assert (result.stderr != "") == shown, result.stderr


def test_output_of_other_threads_while_tensorflow_loads_is_kept():
    result = run_python("""
        import sys, threading, time

        def talk():
            for count in range(30):
                print("line", count, file=sys.stderr, flush=True)
                # A line in absl's format, as absl-py logs it from Python: not TensorFlow's, kept.
                print(f"I1129 23:18:42.123456 1400 script.py:{count}] mine", file=sys.stderr, flush=True)
                time.sleep(0.1)

        thread = threading.Thread(target=talk)
        thread.start()
        from genreslice.training.predict import classify
        thread.join()
    """)
    assert result.returncode == 0, result.stderr
    expected = [(f"line {count}", f"I1129 23:18:42.123456 1400 script.py:{count}] mine") for count in range(30)]
    assert result.stderr.splitlines() == [line for pair in expected for line in pair]


@pytest.mark.parametrize("how", ["sys.stderr = None", "os.close(2)"])
def test_importing_the_api_without_a_stderr_works(how):
    result = run_python(f"""
        import os, sys
        {how}
        from genreslice.training.predict import classify
        print("imported")
    """)
    assert result.returncode == 0 and result.stdout == "imported\n", result.stderr


def test_library_warnings_and_bars_wait_to_be_asked_for():
    """No last-resort logging to stderr, and tqdm.auto (which warns in a notebook without ipywidgets) not imported
    until a bar is drawn."""
    result = run_python("""
        import logging, sys
        from genreslice.pipeline.build import build_dataset
        from genreslice.training.predict import classify
        logging.getLogger("genreslice.pipeline.plan").warning("a warning nobody configured logging for")
        print("tqdm.auto" in sys.modules)
        logging.basicConfig()
        logging.getLogger("genreslice.pipeline.plan").warning("shown once logging is configured")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n"
    assert result.stderr == "WARNING:genreslice.pipeline.plan:shown once logging is configured\n"


def test_bars_start_no_thread_and_lines_only_import_no_tqdm():
    """A bar of genreslice's starts no tqdm monitor thread (a single-threaded process forks its build workers),
    leaves tqdm's own setting alone, and ``verbose=2`` (lines without bars) never imports tqdm."""
    result = run_python("""
        import sys, threading
        from genreslice.training.progress import TrainProgress
        lines = TrainProgress(bars=False)
        lines.epochs = 1
        lines.on_epoch_start(1, 3)
        lines.on_batch_end(0, {"loss": 1.0, "accuracy": 0.5})
        lines.close()
        print("tqdm.auto" in sys.modules)
        from genreslice.pipeline.progress import BuildProgress
        bars = BuildProgress()
        bars.on_start(3)
        bars.advance()
        print(threading.active_count())
        bars.close()
        from tqdm.auto import tqdm
        print(tqdm.monitor_interval > 0)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False\n1\nTrue\n"


def test_the_api_is_quiet_by_default_and_shows_progress_when_asked(toy_model, tmp_path):
    music, dataset = toy_model / "music", toy_model / "dataset"
    result = run_python(f"""
        import sys
        from genreslice.training.evaluate import evaluate_model
        from genreslice.training.predict import classify
        from genreslice.training.settings import TrainConfig
        from genreslice.training.train import train_model

        class Songs:
            def __init__(self):
                self.seen = []
            def on_song(self, song):
                self.seen.append(song.path)

        config = TrainConfig(model="compact", epochs=2, batch_size=16, seed=0, patience=0)
        quiet = train_model({str(dataset)!r}, {str(tmp_path / "quiet")!r}, config)
        songs = Songs()
        classified = classify({str(music)!r}, {str(toy_model / "model")!r}, observer=songs)
        for _ in range(6):  # each call loads and traces the model anew: TensorFlow's retracing warnings held back
            scores = evaluate_model({str(dataset)!r}, {str(toy_model / "model")!r})
        sys.stdout.flush()
        sys.stderr.flush()
        print("QUIET", quiet.epochs_run, len(classified), songs.seen == [song.path for song in classified],
              scores.metrics["song_accuracy_majority"] >= 0, flush=True)
        print("QUIET", file=sys.stderr, flush=True)

        class Seen:
            def __init__(self):
                self.events = []
            def on_epoch_end(self, row):
                self.events.append(row["epoch"])
        seen = Seen()
        lines = train_model({str(dataset)!r}, {str(tmp_path / "lines")!r}, config, verbose=2, observer=seen)
        print("OBSERVER", seen.events, flush=True)
        bars = train_model({str(dataset)!r}, {str(tmp_path / "bars")!r}, config, verbose=1)
        classify({str(music)!r}, {str(toy_model / "model")!r}, verbose=1)
        evaluate_model({str(dataset)!r}, {str(toy_model / "model")!r}, verbose=1)
    """)
    assert result.returncode == 0, result.stderr
    quiet_out, verbose_out = result.stdout.split("QUIET 2 21 True True\n")
    quiet_err, verbose_err = result.stderr.split("QUIET\n")
    assert quiet_out == "" and quiet_err == ""  # nothing at all until asked

    lines, bars = verbose_out.split("OBSERVER [1, 2]\n")
    assert lines.startswith("Training compact on 48 slices, validating on 12;")
    assert "epoch 1/2: loss " in lines and "epoch 2/2: loss " in lines
    assert f"{tmp_path / 'lines'} trained: 2 epochs" in lines and "kept the weights of epoch" in lines
    assert "epoch 2/2: loss " in bars and f"{tmp_path / 'bars'} trained: 2 epochs" in bars
    # Bars go to standard error: one over each epoch's batches (verbose=1 only), the files, the slices.
    assert "epoch 1/2" in verbose_err and "batch" in verbose_err
    assert "files:" in verbose_err and "/21 [" in verbose_err
    assert "24 slices:" in verbose_err


@pytest.mark.parametrize("verbose", [3, -1, "1", 1.0, None])
def test_a_verbose_that_is_not_a_level_is_refused(verbose):
    with pytest.raises(ParameterError, match="verbose must be one of 0, 1"):
        check_verbose(verbose)


def test_levels_and_booleans_are_accepted():
    levels = (0, 1, 2, True, False, np.int64(2), np.True_)
    assert [check_verbose(level, (0, 1, 2)) for level in levels] == [0, 1, 2, 1, 0, 2, 1]


def test_an_observer_group_passes_each_event_to_those_that_take_it():
    class Counting:
        def __init__(self):
            self.seen = []

        def on_song(self, song):
            self.seen.append(song)

    class Partial:
        pass

    first, second = Counting(), Counting()
    group = ObserverGroup(first, None, Partial(), second)
    group.on_song("a")
    group.on_start(3)  # nobody takes it: nothing happens
    assert first.seen == ["a"] and second.seen == ["a"]

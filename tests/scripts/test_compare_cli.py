"""``genreslice compare`` as a user runs it: every output format parsed back against the model and eval files."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from genreslice.scripts.cli import main
from genreslice.scripts.exit_status import EXIT_FATAL, EXIT_USAGE
from genreslice.training.plots import duration_text
from genreslice.training.settings import recorded_settings
from tests.helpers import genreslice, help_of

# What compare does not read: left out of the model copies.
NOT_COPIED = shutil.ignore_patterns("eval", "logs", "checkpoint", "lock", "curves.png")


@pytest.fixture(scope="module")
def models(toy_model, tmp_path_factory):
    """Two copies of the toy model, not evaluated; the second records a larger batch and a setting of its own."""
    root = tmp_path_factory.mktemp("compare cli")
    first, second = root / "run 1", root / "run $(2) 'big batch'"
    for folder in (first, second):
        shutil.copytree(toy_model / "model", folder, ignore=NOT_COPIED)
    record = json.loads((second / "model.json").read_text())
    record["training"].update(batch_size=64, width=2.0)
    (second / "model.json").write_text(json.dumps(record))
    return first, second


@pytest.fixture(scope="module")
def evaluated(models):
    """What ``compare`` printed while it evaluated both models: (standard output, standard error)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["compare", *map(str, models), "--no-progress"])
    assert status == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def table_cells(text: str) -> list[dict]:
    """The aligned table's rows as {header: cell}, columns found from the dashes under the headers."""
    lines = text.splitlines()
    spans, position = [], 0
    for dashes in lines[2].split("  "):
        if dashes:
            start = lines[2].index(dashes, position)
            spans.append((start, start + len(dashes)))
            position = start + len(dashes)
    headers = [lines[1][a:b].strip() for a, b in spans]
    return [{header: line[a:b].strip() for header, (a, b) in zip(headers, spans)} for line in lines[3:]]


def eval_metrics(folder, split="test") -> dict:
    return json.loads((folder / "eval" / split / "metrics.json").read_text())


def test_help_explains_every_option():
    text = help_of("compare", 11)
    assert "--allow-mixed" in text and "--chart" in text and f"{EXIT_USAGE} for bad options" in text
    assert "compare" in genreslice("--help").stdout


def test_table_after_evaluating_on_demand(toy_model, models, evaluated):
    first, second = models
    out, err = evaluated
    assert err.count("it has no evaluation of the test split") == 2
    assert f"Evaluating {first} on the test split of {(toy_model / 'dataset').resolve()}" in err
    assert (first / "eval" / "test" / "songs.csv").is_file() and (second / "eval" / "test" / "confusion.png").is_file()
    assert out.splitlines()[0] == "test split (6 songs) of dataset:"
    rows = table_cells(out)
    assert [row["model"] for row in rows] == ["run 1", "run $(2) 'big batch'"]
    # Only the settings that differ have columns: the batch size, and the width (the first model records none:
    # it had the default).
    record = json.loads((first / "model.json").read_text())
    assert [(row["batch_size"], row["width"]) for row in rows] == [(str(record["training"]["batch_size"]), "1"),
                                                                   ("64", "2")]
    assert "learning_rate" not in rows[0] and "seed" not in rows[0]
    for folder, row in zip(models, rows):
        metrics = eval_metrics(folder)
        assert row["slice acc"] == f"{metrics['slice_accuracy']:.4f}"
        assert row["song acc maj"] == f"{metrics['song_accuracy_majority']:.4f}"
        assert row["song acc mean"] == f"{metrics['song_accuracy_mean']:.4f}"
        assert row["macro-F1 maj"] == f"{metrics['macro_f1']:.4f}" and "songs" not in row  # in the caption
        assert row["epochs"] == f"{record['epochs_run']}/{record['training']['epochs']}"
        assert row["stop"] == record["stop"]["reason"] and row["peak MiB"] == f"{record['peak_memory_mib']:.0f}"
        assert row["train time"] == duration_text(record["training_seconds"]) and row["params"] == "134.5k"
        assert (row["data set"], row["features"], row["preset"]) == ("dataset", "sox", "compact")


def test_csv_json_markdown_and_files(models, evaluated, tmp_path, capsys):
    first, second = models
    assert main(["compare", str(first), str(second), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["option_keys"] == ["batch_size", "width"] and document["mixed"] is False
    for folder, model in zip(models, document["models"]):
        metrics = eval_metrics(folder)
        assert model["model_dir"] == str(folder) and model["evaluated"] == "before"
        assert model["slice_accuracy"] == metrics["slice_accuracy"] and model["n_slices"] == metrics["n_slices"]
        assert model["training"] == recorded_settings(json.loads((folder / "model.json").read_text())["training"])

    assert main(["compare", str(first), str(second), "--format", "markdown", "--vote", "mean"]) == 0
    markdown = capsys.readouterr().out.splitlines()
    assert markdown[0].split(" | ")[-1] == "macro-F1 mean |"
    assert markdown[1] == "|" + "|".join(["---"] * 4 + ["---:"] + ["---"] * 2 + ["---:"] + ["---"] + ["---:"] * 6) + "|"
    record = json.loads((second / "model.json").read_text())
    assert markdown[3].startswith("| run $(2) 'big batch' | dataset | sox | compact | 134.5k | 64 | 2 | "
                                  f"{record['epochs_run']}/40 |")

    out, chart = tmp_path / "table.csv", tmp_path / "chart.png"
    assert main(["compare", str(first), str(second), "--out", str(out), "--chart", str(chart)]) == 0
    shown = capsys.readouterr()
    assert shown.out.startswith("test split (6 songs) of dataset:") and f"Wrote {out} and {chart}" in shown.err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(row["model"], row["options.batch_size"], row["options.width"]) for row in rows] == [
        ("run 1", f"{json.loads((first / 'model.json').read_text())['training']['batch_size']}", "1.0"),
        ("run $(2) 'big batch'", "64", "2.0")]
    assert float(rows[1]["song_accuracy_mean"]) == eval_metrics(second)["song_accuracy_mean"]
    with Image.open(chart) as image:
        assert image.format == "PNG" and image.size[0] >= 640 and image.size[1] >= 400
        pixels = np.asarray(image.convert("L"))
    assert pixels.min() < 100 and (pixels < 250).mean() > 0.05  # bars drawn, not a blank page


def test_split_option_and_no_evaluate(models, evaluated, capsys):
    first, _ = models
    assert main(["compare", str(first), "--split", "validation", "--no-evaluate", "--format", "json"]) == 0
    shown = capsys.readouterr()
    (model,) = json.loads(shown.out)["models"]
    assert json.loads(shown.out)["split"] == "validation" and model["slice_accuracy"] is None
    assert "no evaluation of the validation split; not evaluated (--no-evaluate)" in shown.err
    assert not (first / "eval" / "validation").exists()


def test_models_scored_on_other_songs_are_refused(models, evaluated, tmp_path, capsys):
    first, _ = models
    other = tmp_path / "other songs"
    shutil.copytree(first, other)
    songs = (other / "eval" / "test" / "songs.csv").read_text().splitlines(keepends=True)
    (other / "eval" / "test" / "songs.csv").write_text("".join(songs[:-1]))
    metrics = eval_metrics(other)
    metrics["dataset"].update(path=str(tmp_path / "another data set"), fingerprint="0" * 64)
    metrics["n_songs"] = 5
    (other / "eval" / "test" / "metrics.json").write_text(json.dumps(metrics))

    assert main(["compare", str(first), str(other)]) == EXIT_FATAL
    shown = capsys.readouterr()
    assert shown.out == "" and len(shown.err.splitlines()) == 1
    assert shown.err.startswith("genreslice compare: error: the models were scored on different songs")
    assert f"{first} on " in shown.err and f"{other} on {tmp_path / 'another data set'} (5 songs)" in shown.err
    assert main(["compare", str(first), str(other), "--allow-mixed"]) == 0
    shown = capsys.readouterr()
    assert [row["songs"] for row in table_cells(shown.out)] == ["6", "5"]
    assert "allowed by --allow-mixed" in shown.err
    assert main(["compare", str(first), str(other), "--allow-mixed", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mixed"] is True


def test_bad_folders_get_one_line_and_an_exit_status(toy_model, models, evaluated, tmp_path, capsys):
    first, _ = models
    (tmp_path / "no model").mkdir()
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "model.json").write_text("{")
    for folder, status, expected in [
        (tmp_path / "missing", EXIT_FATAL, "no such folder"),
        (tmp_path / "no model", EXIT_FATAL, "no model.json"),
        (tmp_path / "damaged", EXIT_FATAL, "damaged, cannot be read as JSON"),
        (toy_model / "dataset", EXIT_USAGE, "is a data set, not a model folder"),
        (first, EXIT_USAGE, "is given twice"),
    ]:
        try:
            result = main(["compare", str(first), str(folder)])
        except SystemExit as stop:  # a usage error ends the process, as argparse does
            result = stop.code
        err = capsys.readouterr().err
        assert result == status and len(err.splitlines()) == 1, err
        assert err.startswith("genreslice compare: error: ") and str(folder) in err and expected in err


def test_an_output_that_cannot_be_written_is_named_with_what_to_do(models, evaluated, tmp_path, capsys):
    first, _ = models
    for option, path in [("--out", tmp_path / "no such folder" / "table.md"),
                         ("--chart", tmp_path / "no such folder" / "chart.png")]:
        assert main(["compare", str(first), option, str(path)]) == EXIT_FATAL
        shown = capsys.readouterr()
        err = shown.err
        assert shown.out.startswith("test split (6 songs) of dataset:")  # the table is still shown
        assert len(err.splitlines()) == 1 and ".tmp" not in err, err
        assert err.startswith(f"genreslice compare: error: {option} {path}: cannot be written (No such file or "
                              "directory); choose a folder that exists and is writable")
    assert not (tmp_path / "no such folder").exists()


def test_exit_status_of_the_process(models, evaluated):
    first, _ = models
    result = genreslice("compare", str(first), str(first))
    assert result.returncode == EXIT_USAGE and result.stdout == ""
    assert result.stderr == f"genreslice compare: error: the model folder {first} is given twice; give each model " \
                            "folder once\n"


def test_the_command_line_offers_every_format_and_loads_the_comparison_only_when_it_runs():
    """Every genreslice command imports the command modules: compare's must not import pandas and the rest."""
    import subprocess
    import sys

    from genreslice.scripts.commands import compare as command
    from genreslice.training.compare import FORMATS

    assert command.FORMATS == FORMATS
    probe = ("import sys; import genreslice.scripts.cli; "
             "print('genreslice.training.compare' in sys.modules, 'pandas' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert shown == ["False", "False"], shown

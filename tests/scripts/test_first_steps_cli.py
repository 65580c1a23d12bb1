"""A newcomer's first commands, as a real subprocess runs them: a bare ``genreslice``, ``-v`` before or after the
command, and folder arguments of the wrong kind or in the wrong order, caught before any work or heavy import."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from genreslice.scripts.argtypes import MODEL_JSON
from genreslice.scripts.cli import make_parser
from tests.helpers import genreslice, read_csv, synth, tagged_mp3


@pytest.fixture(scope="module")
def mixed_library(tmp_path_factory, sox_info):
    """One track that builds, and one of each way a file is left out: failed, skipped, too short."""
    root = tmp_path_factory.mktemp("mixed library")
    tagged_mp3(root / "good one.mp3", 8.0, "Rock", "Artist A", "sine", "440")
    synth(root / "no tag.mp3", 8.0)
    (root / "broken $(x).mp3").write_bytes(b"\xff\xfb" + bytes(300))
    tagged_mp3(root / "short.mp3", 1.0, "Rock", "Artist B", "sine", "440")
    return root


def not_built_lines(stderr: str) -> list[str]:
    return sorted(line for line in stderr.splitlines() if line.startswith("genreslice: INFO: ")
                  and line.split(": ", 2)[2].startswith(("failed ", "skipped ", "too short ")))


def test_bare_genreslice_prints_the_help():
    result = genreslice()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: genreslice") and result.stderr == ""
    for command in ("build", "train", "evaluate", "predict", "compare", "demo", "--verbose"):
        assert command in result.stdout


@pytest.mark.parametrize("command", ["build", "train", "evaluate", "predict", "compare", "demo"])
def test_verbose_is_accepted_before_and_after_every_command(command):
    positionals = {"build": ["a", "b"], "train": ["a", "b"], "evaluate": ["a", "b"], "predict": ["a", "b"],
                   "compare": ["a"], "demo": []}[command]
    parser = make_parser()
    assert parser.parse_args([command, *positionals, "-v"]).verbose is True
    assert parser.parse_args([command, *positionals, "--verbose"]).verbose is True
    assert parser.parse_args(["-v", command, *positionals]).verbose is True
    assert parser.parse_args([command, *positionals]).verbose is False


def test_verbose_build_logs_each_file_left_out_with_its_reason(mixed_library, tmp_path):
    out = tmp_path / "out"
    expected = [f"genreslice: INFO: failed {mixed_library / 'broken $(x).mp3'}: ",
                f"genreslice: INFO: skipped {mixed_library / 'no tag.mp3'}: no genre tag",
                f"genreslice: INFO: too short {mixed_library / 'short.mp3'}: "]

    def check(lines: list[str]) -> None:
        assert len(lines) == 3, lines
        for line, start in zip(lines, expected):
            assert line.startswith(start) and not line.endswith(": "), line  # a reason follows the path

    after = genreslice("build", str(mixed_library), str(out), "--no-progress", "--workers", "1", "-v")
    assert after.returncode == 0, after.stderr
    assert "1 tracks ok, 1 failed, 1 skipped, 1 too short" in after.stdout
    check(not_built_lines(after.stderr))
    before = genreslice("-v", "build", str(mixed_library), str(out), "--no-progress")  # resumed: same report
    assert before.returncode == 0, before.stderr
    check(not_built_lines(before.stderr))
    quiet = genreslice("build", str(mixed_library), str(out), "--no-progress")
    assert quiet.returncode == 0 and quiet.stderr == ""
    dry = genreslice("build", str(mixed_library), str(tmp_path / "dry"), "--dry-run", "--no-progress", "-v")
    assert dry.returncode == 0, dry.stderr
    assert [line.split(": ")[2].split(" ")[0] for line in not_built_lines(dry.stderr)] == ["failed", "skipped"]

    # The data set given as AUDIO_DIR (the folders swapped): the mistake named, nothing done.
    swapped = genreslice("build", str(out), str(tmp_path / "new"), "--no-progress")
    assert swapped.returncode == 2
    assert (f"genreslice build: error: {out} is a data set, not a folder of audio files; usage: genreslice build "
            "AUDIO_DIR OUT_DIR") in swapped.stderr
    assert not (tmp_path / "new").exists()


def test_build_refuses_a_model_folder_as_either_folder(tmp_path, mixed_library):
    model = tmp_path / "model"
    model.mkdir()
    (model / MODEL_JSON).write_text("{}\n")
    as_audio = genreslice("build", str(model), str(tmp_path / "out"))
    assert as_audio.returncode == 2
    assert f"error: {model} is a model folder, not a folder of audio files; usage: genreslice build" \
        in as_audio.stderr
    as_out = genreslice("build", str(mixed_library), str(model))
    assert as_out.returncode == 2 and f"error: {model} is a model folder, not a data set; usage:" in as_out.stderr
    assert sorted(path.name for path in model.iterdir()) == [MODEL_JSON]


@pytest.fixture
def without_tensorflow(tmp_path) -> dict:
    """An environment where importing TensorFlow or Keras fails: what is refused there is refused before them."""
    fake = tmp_path / "no tensorflow"
    for name in ("tensorflow", "keras"):
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(f"raise ImportError('test: {name} must not be imported')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}


def folders(tmp_path: Path) -> tuple[Path, Path]:
    dataset, model = tmp_path / "dataset", tmp_path / "model"
    dataset.mkdir()
    model.mkdir()
    (dataset / "dataset.json").write_text("{}\n")
    (model / MODEL_JSON).write_text("{}\n")
    return dataset, model


def test_evaluate_names_swapped_folders_before_loading_tensorflow(tmp_path, without_tensorflow):
    dataset, model = folders(tmp_path)
    usage = "usage: genreslice evaluate DATASET_DIR MODEL_DIR"
    cases = {(model, dataset): f"the folders are in the wrong order: {model} is a model folder and {dataset} is "
                               f"a data set; {usage}",
             (model, model): f"{model} is a model folder, not a data set; {usage}",
             (dataset, dataset): f"{dataset} is a data set, not a model folder; {usage}"}
    for (first, second), message in cases.items():
        result = genreslice("evaluate", str(first), str(second), env=without_tensorflow)
        assert result.returncode == 2, result.stderr
        assert result.stderr == f"genreslice evaluate: error: {message}\n"
    missing = genreslice("evaluate", str(tmp_path / "nowhere"), str(model), env=without_tensorflow)
    assert missing.returncode == 1
    assert missing.stderr == (f"genreslice evaluate: error: data set {str(tmp_path / 'nowhere')!r} does not exist "
                              "or is not a folder\n")
    missing = genreslice("evaluate", str(dataset), str(tmp_path / "nowhere"), env=without_tensorflow)
    assert missing.returncode == 1 and "model folder" in missing.stderr and "does not exist" in missing.stderr
    # The fake really hides TensorFlow: right folders get as far as loading it, and fail there.
    loads = genreslice("evaluate", str(dataset), str(model), env=without_tensorflow)
    assert loads.returncode != 0 and "must not be imported" in loads.stderr


def test_the_build_says_which_genres_are_thin_in_a_split_and_how_many_tracks_a_resplit_moved(tmp_path, sox_info):
    music = tmp_path / "music"
    for genre, wave in (("Rock", "sawtooth"), ("Jazz", "sine")):
        for artist in range(3):
            tagged_mp3(music / f"{genre} {artist}.mp3", 3.0, genre, f"{genre} player {artist}", wave,
                       str(300 + 50 * artist))
    dry = genreslice("build", str(music), str(tmp_path / "out"), "--dry-run", "--split-ratios", "80,10,10")
    assert dry.returncode == 0, dry.stderr
    assert "moved to another split with their artist so that every genre reaches every split" in dry.stdout
    assert "Jazz has only 1 track in the validation split" in dry.stdout
    first = genreslice("build", str(music), str(tmp_path / "out"), "--no-progress", "--split-ratios", "80,10,10")
    assert first.returncode == 0, first.stderr
    assert "Warning: genres with no or few tracks in a split" in first.stdout
    assert "Rock has only 1 track in the test split" in first.stdout
    assert "changed split" not in first.stdout
    before = {row["path"]: row["split"] for row in read_csv(tmp_path / "out" / "tracks.csv")}
    again = genreslice("build", str(music), str(tmp_path / "out"), "--no-progress", "--split-ratios", "0,50,50")
    assert again.returncode == 0, again.stderr
    after = {row["path"]: row["split"] for row in read_csv(tmp_path / "out" / "tracks.csv")}
    changed = sum(before[path] != after[path] for path in after)
    assert changed >= 4  # every track trained on before is in validation or test now
    assert f"{changed} built tracks changed split since the last build" in again.stdout
    assert "Jazz has no tracks in the train split" not in again.stdout  # a split meant to be empty is not a warning

"""``genreslice export``: each format written, checked, and run by the exported ``classify.py`` without genreslice,
whose answers must be ``genreslice predict``'s."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genreslice.scripts.cli import main
from tests.helpers import help_of, music, toy_song, tree_digest

#: Runs a script with some packages made unimportable: ``python -c BLOCKED NAMES SCRIPT ARGS...``.
BLOCKED = ("import sys, runpy; [sys.modules.__setitem__(name, None) for name in sys.argv[1].split(',')]; "
           "sys.argv = sys.argv[2:]; runpy.run_path(sys.argv[0], run_name='__main__')")
#: What the exported script must run without, per format (each runtime may need the rest).
NOT_NEEDED = {"onnx": "genreslice,tensorflow,keras,librosa,scipy,PIL,tf2onnx",
              "tflite": "genreslice,tensorflow,keras,librosa,scipy,PIL,tf2onnx,onnxruntime",
              "savedmodel": "genreslice,librosa,PIL,tf2onnx,onnxruntime"}


def run(capsys, *args: str) -> tuple[int, str, str]:
    """``genreslice ARGS`` in this process (TensorFlow loads once): exit status, stdout, stderr."""
    try:
        code = main([*args])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def songs(tmp_path_factory, sox_info) -> list[Path]:
    """Four toy songs under hostile names, a clip shorter than a slice, and a file of random bytes."""
    root = tmp_path_factory.mktemp("export songs")
    paths = []
    for name, genre, pitch in (("-a jazz $(echo no).mp3", "Jazz", 345), ("b 'rock' song.mp3", "Rock", 567),
                               ("c électro.mp3", "Electronic", 456), ("d jazz.wav", "Jazz", 300)):
        paths.append(toy_song(root / name, genre, pitch, seconds=8.0))
    paths.append(toy_song(root / "e short.mp3", "Rock", 500, seconds=1.5))
    noise = root / "f noise.mp3"
    noise.write_bytes(np.random.default_rng(0).bytes(20_000))
    return [*paths, noise]


@pytest.fixture(scope="module")
def predicted(toy_model, songs) -> dict[str, dict]:
    """``genreslice predict --format json`` of the songs, by path."""
    result = subprocess.run([sys.executable, "-m", "genreslice", "predict", str(toy_model / "model"),
                             *map(str, songs), "--format", "json", "--no-progress", "--allow-failures"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return {record["path"]: record for record in map(json.loads, result.stdout.splitlines())}


def classify_exported(folder: Path, files, output_format: str, *extra: str) -> subprocess.CompletedProcess:
    """The export's ``classify.py`` on ``files``, run with genreslice (and what the format does not need) made
    unimportable, from another folder."""
    return subprocess.run([sys.executable, "-c", BLOCKED, NOT_NEEDED[output_format], str(folder / "classify.py"),
                           str(folder), *map(str, files), *extra],
                          capture_output=True, text=True, timeout=300, cwd=folder.parent)


@pytest.mark.parametrize("output_format", ["onnx", "tflite", "savedmodel"])
def test_export_check_and_classify_without_genreslice(toy_model, songs, predicted, tmp_path, capsys, output_format):
    out = tmp_path / "exported model"
    code, stdout, stderr = run(capsys, "export", str(toy_model / "model"), str(out), "--format", output_format)
    assert code == 0, stderr
    assert "passed" in stdout and f"classify.py {out}" in stdout
    model_file = {"onnx": "model.onnx", "tflite": "model.tflite", "savedmodel": "saved_model"}[output_format]
    assert sorted(os.listdir(out)) == sorted(["classify.py", "genreslice-model.json", model_file])

    card = json.loads((out / "genreslice-model.json").read_text(encoding="utf-8"))
    record = json.loads((toy_model / "model" / "model.json").read_text(encoding="utf-8"))
    assert card["format"] == "genreslice-model" and card["task"] == "single"
    assert card["classes"] == record["classes"] and card["spectrogram"] == record["spectrogram"]
    assert card["dataset"]["fingerprint"] == record["dataset"]["fingerprint"] and "path" not in card["dataset"]
    assert card["slicing"]["slice_size"] == 128 and card["slicing"]["slice_seconds"] == pytest.approx(2.55, abs=0.01)
    assert card["input"]["shape"] == [None, 128, 128, 1] and card["output"]["activation"] == "softmax"
    assert card["voting"]["rule"] == "majority" and card["training"]["model"] == "compact"
    check = card["export"]["check"]
    assert card["export"]["format"] == output_format and card["export"]["file"] == model_file
    assert check["dataset_slices"] == 32 and check["slices"] == 40
    assert 0 <= check["max_abs_difference"] <= check["tolerance"] == 1e-4

    result = classify_exported(out, songs, output_format)
    assert result.returncode == 1, result.stderr  # the file of random bytes
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["path"] for record in records] == [str(path) for path in songs]
    for record in records:
        expected = predicted[record["path"]]
        assert record["status"] == expected["status"], (record, expected)
        if expected["status"] != "ok":
            assert record["reason"]
            continue
        assert record["genre"] == expected["genre"] and record["votes"] == expected["votes"]
        assert record["n_slices"] == expected["n_slices"] and record["vote_share"] == expected["vote_share"]
        assert record["duration_s"] == expected["duration_s"]
        for name, probability in expected["mean_probability"].items():
            assert record["mean_probability"][name] == pytest.approx(probability, abs=2e-4)
    assert records[-1]["status"] == "failed" and "SoX" in records[-1]["reason"]
    assert records[-2]["n_slices"] == 1  # the short clip, repeated to fill one slice as predict does


def test_a_check_that_fails_leaves_the_earlier_export(toy_model, tmp_path, capsys, monkeypatch):
    out = tmp_path / "export"
    assert run(capsys, "export", str(toy_model / "model"), str(out))[0] == 0
    before = tree_digest(out)
    from genreslice.training import export

    real = export.load_exported

    def off_by_a_little(path, output_format):
        network = real(path, output_format)
        return lambda x: network(x) + np.float32(0.001)

    monkeypatch.setattr(export, "load_exported", off_by_a_little)
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(out))
    assert code == 1 and "does not classify as the Keras model does: a probability differs by 0.001" in stderr
    assert "nothing was written" in stderr
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(out), "--tolerance", "0.01")
    assert code == 0, stderr  # within a looser tolerance
    monkeypatch.setattr(export, "load_exported", real)
    assert tree_digest(out) != before  # replaced by the passing export ...
    assert sorted(os.listdir(tmp_path)) == ["export"]  # ... and no scratch folder left beside it


def test_refusals(toy_model, tmp_path, capsys, monkeypatch):
    crowded = tmp_path / "my things"
    crowded.mkdir()
    (crowded / "notes.txt").write_text("mine")
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(crowded))
    assert code == 1 and "is not empty and holds no export of genreslice (it has notes.txt)" in stderr
    assert os.listdir(crowded) == ["notes.txt"]
    # Names an export writes do not make a folder an export: its card must say so.
    (crowded / "notes.txt").unlink()
    (crowded / "classify.py").write_text("my own script")
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(crowded))
    assert code == 1 and "holds no export of genreslice (it has classify.py)" in stderr
    assert (crowded / "classify.py").read_text() == "my own script"
    (tmp_path / "link").symlink_to(crowded, target_is_directory=True)
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(tmp_path / "link"))
    assert code == 1 and "is a symbolic link" in stderr
    for inside in (toy_model / "model", toy_model):
        code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(inside))
        assert code == 1 and "holds the model folder" in stderr
    code, _, stderr = run(capsys, "export", str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert code == 1 and "does not exist" in stderr and "usage: genreslice export [OPTIONS]" in stderr
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(tmp_path / "out"), "--format", "pt")
    assert code == 2 and "invalid choice: 'pt'" in stderr
    from genreslice.training import export

    monkeypatch.setattr(export, "missing_packages", lambda output_format: ["tf2onnx", "onnxruntime"])
    code, _, stderr = run(capsys, "export", str(toy_model / "model"), str(tmp_path / "out"))
    assert code == 1 and "needs tf2onnx, onnxruntime" in stderr and "pip install 'genreslice[export]'" in stderr
    assert not (tmp_path / "out").exists()


def test_help_explains_every_option():
    text = help_of("export", 2)
    assert "--format" in text and "--tolerance" in text and "classify.py" in text and "onnxruntime" in text


def test_the_scripts_mel_spectrogram_is_genreslices(tmp_path, sox_info):
    """classify.py's numpy log-mel spectrogram and SoX PNG reader against genreslice's (librosa's filterbank)."""
    import librosa

    from genreslice.pipeline.spectrogram import SpectrogramSpec, render_spectrogram
    from genreslice.scripts import classify_exported

    song = music(tmp_path / "song.mp3", 3, seconds=6.0)
    for spec in (SpectrogramSpec(features="mel"), SpectrogramSpec()):
        card = {"spectrogram": spec.to_dict()}
        ours, theirs = classify_exported.sox_spectrogram(str(song), card), render_spectrogram(song, spec)
        assert ours.shape == theirs.shape and ours.shape[1] >= 290
        # The same gray levels, but for float rounding of a level at .5 (float64 FFT here, float32 there).
        differences = np.abs(ours.astype(int) - theirs.astype(int))
        assert differences.max() <= 1 and (differences > 0).mean() < 0.002, (spec.features, differences.mean())
    bank = classify_exported.mel_filterbank(22050, 2048, 128, 0.0, 11025.0)
    np.testing.assert_allclose(bank, librosa.filters.mel(sr=22050, n_fft=2048, n_mels=128, fmin=0.0, fmax=11025.0,
                                                         htk=False, norm="slaney"), rtol=1e-5, atol=1e-8)
    bank = classify_exported.mel_filterbank(16000, 1024, 64, 50.0, 6000.0)
    np.testing.assert_allclose(bank, librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=50.0, fmax=6000.0,
                                                         htk=False, norm="slaney"), rtol=1e-5, atol=1e-8)


def test_the_card_of_a_multilabel_model(toy_model):
    from genreslice.training.model_card import model_card
    from genreslice.training.model_dir import TrainedModel

    record = json.loads((toy_model / "model" / "model.json").read_text(encoding="utf-8"))
    record.update(task="multilabel", thresholds={"by_tag": {"Electronic": 0.3, "Jazz": 0.55, "Rock": 0.7}})
    card = model_card(TrainedModel(model_dir=toy_model / "model", record=record, classes=tuple(record["classes"]),
                                   model=None))
    assert card["task"] == "multilabel" and card["output"]["activation"] == "sigmoid"
    assert card["voting"]["thresholds"] == {"Electronic": 0.3, "Jazz": 0.55, "Rock": 0.7}
    assert card["voting"]["thresholds_tuned"] is True
    record["thresholds"] = {"by_tag": {"Electronic": 0.3}}  # damaged: every tag at the default
    card = model_card(TrainedModel(model_dir=toy_model / "model", record=record, classes=tuple(record["classes"]),
                                   model=None))
    assert set(card["voting"]["thresholds"].values()) == {0.5} and card["voting"]["thresholds_tuned"] is False
    json.dumps(card)  # JSON-ready


def test_the_export_folder_has_only_the_export(toy_model, tmp_path, capsys):
    """An earlier export is replaced whole by a new one of another format."""
    out = tmp_path / "export"
    assert run(capsys, "export", str(toy_model / "model"), str(out), "--format", "onnx")[0] == 0
    assert run(capsys, "export", str(toy_model / "model"), str(out), "--format", "tflite")[0] == 0
    assert sorted(os.listdir(out)) == ["classify.py", "genreslice-model.json", "model.tflite"]
    card = json.loads((out / "genreslice-model.json").read_text(encoding="utf-8"))
    assert card["export"]["format"] == "tflite"
    shutil.rmtree(out)

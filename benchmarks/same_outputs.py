#!/usr/bin/env python3
"""Prove that genreslice gives the same outputs before and after a refactor.

Generates a small deterministic tagged corpus with SoX and mutagen, runs the real commands on it
(``build``, ``train``, ``predict --format json``) through a command prefix, and either writes a manifest of
the outputs (``--write``) or compares them with a manifest written earlier (``--compare``), or both.

Stand-alone on purpose: stdlib, numpy and mutagen only; it never imports genreslice code, whose module paths
change in a refactor. ``make same-outputs`` compares this checkout with ``same_outputs_reference.json``, recorded
on the project's 2-core development machine: first from the code before the package reshape (commit a21bf05, run
from a clone of it as ``--cli '.venv/bin/python -m scripts.cli' --cwd CLONE --write REFERENCE``), which the
reshape matched exactly; then again after changes meant to change outputs (genre-stratified splits, reasons,
the kept epoch's record; the PNG slices stayed byte-identical). Record it anew with ``--write`` whenever outputs
change on purpose, and say so in the commit. Another machine (other SoX, TensorFlow or CPU) may render or round
differently: record a reference there first, from the code to compare against.

Exit status: 0 same outputs; 1 a difference (or a command failed); 2 bad arguments.
"""
from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import json
import math
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import mutagen
import numpy as np
from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1

MANIFEST_VERSION = 1
RTOL = 1e-5
ATOL = 1e-6

#: Every corpus file gets this modification time (the build journal records each file's mtime_ns).
FIXED_MTIME_NS = 1_700_000_000 * 10**9

#: Options of the three commands. Training runs a fixed number of epochs: both stop rules are off, so the
#: stop is the epoch limit whatever the losses are.
SPLIT_RATIOS = "0.6,0.2,0.2"
BUILD_OPTS = ["--workers", "2", "--no-progress", "--split-ratios", SPLIT_RATIOS]
TRAIN_OPTS = ["--model", "compact", "--seed", "0", "--epochs", "8", "--batch-size", "32", "--target-accuracy", "off",
              "--patience", "0", "--loader-workers", "2", "--no-progress"]
PREDICT_OPTS = ["--format", "json", "--workers", "2", "--no-progress"]

#: Environment of every command: CPU only (a GPU gives other floating-point results than the CPU the
#: reference was recorded on), deterministic TensorFlow kernels (TF_DETERMINISTIC_OPS=1 selects other kernels
#: than the default: the losses differ by about 1e-3 after 8 epochs, so before and after must both set it),
#: a fixed thread count, hash seed, locale and time zone.
COMMAND_ENV = {
    "CUDA_VISIBLE_DEVICES": "-1",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    # The number of threads changes TensorFlow's floating-point results on the CPU (1 thread and 2 threads
    # give other losses from epoch 2 on), so it is pinned rather than taken from the machine's core count.
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "2",
    "PYTHONHASHSEED": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TZ": "UTC",
    "LC_ALL": "C.UTF-8",
}

# --------------------------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------------------------

#: (genre, artist, title, seconds): three artists per genre, one song each. Artist names decide the build's
#: artist-hash split; with --split-ratios 0.6,0.2,0.2 the first two of each genre land in train and the third in
#: validation (checked: the manifest records tracks.csv), so training sees every genre on both sides.
SONGS = [(genre, artist, title, int(seconds)) for genre, artist, title, seconds in (
    line.strip().split(" | ") for line in """
    Electronic | Neon Circuit | Pulse Drive | 24
    Electronic | Kilowatt Kids | Square Dance | 22
    Electronic | Voltage Bloom | Night Grid | 27
    Rock | Iron Lung | It's "Loud" & Proud | 21
    Rock | Broken Strings | Feedback Loop | 28
    Rock | Steel Hounds | Overdrive | 25
    Jazz | Miles Away Trio | Vibrato Walk | 26
    Jazz | Smoky Room | Slow Burn | 20
    Jazz | Brass Alley | Late Sine | 23
    Folk | Willow Creek | Plucked Morning | 24
    Folk | Meadow Lark | River Song | 22
    Folk | Old Barn Band | Harvest | 29
""".strip().splitlines())]

BASE_HZ = {"Electronic": 110.0, "Rock": 82.41, "Jazz": 220.0, "Folk": 196.0}


def synth_effects(genre: str, index: int, seconds: int) -> list[str]:
    """The SoX synth and effects arguments of one song (``index``: the song's place within its genre)."""
    f = BASE_HZ[genre] * (1.0 + 0.25 * index)
    if genre == "Electronic":   # a pulsing square wave
        return ["synth", str(seconds), "square", f"{f:.2f}", "tremolo", str(6 + 2 * index), "80", "gain", "-12"]
    if genre == "Rock":         # a distorted sawtooth over pink noise bursts
        return ["synth", str(seconds), "sawtooth", f"{f:.2f}", "overdrive", "20", "tremolo", "2", "30",
                "gain", "-10"]
    if genre == "Jazz":         # a soft sine glide with reverb
        return ["synth", str(seconds), "sine", f"{f:.2f}:{1.5 * f:.2f}", "tremolo", "3", "20", "reverb", "50",
                "gain", "-8"]
    if genre == "Folk":         # plucked notes repeated
        repeats = int(seconds / 0.5) - 1
        return ["synth", "0.5", "pluck", f"{f:.2f}", "repeat", str(repeats), "gain", "-6"]
    raise ValueError(genre)


def make_corpus(root: Path) -> dict[str, str]:
    """Write the corpus under ``root`` (which must not exist); return ``{relative path: sha256}``."""
    root.mkdir(parents=True)
    position = {g: 0 for g in BASE_HZ}
    for number, (genre, artist, title, seconds) in enumerate(SONGS, start=1):
        index = position[genre]
        position[genre] += 1
        folder = root / artist
        folder.mkdir(exist_ok=True)
        path = folder / f"{number:02d} {title}.mp3"
        # -R: repeatable mode (fixed seeds for dither and noise), or the MP3 bytes change run to run.
        subprocess.run(["sox", "-R", "--no-glob", "-n", "-r", "22050", "-c", "1", "-C", "128",
                        os.path.abspath(path), *synth_effects(genre, index, seconds)],
                       check=True, stdin=subprocess.DEVNULL, capture_output=True)
        _tag(path, genre, artist, title)
    broken = root / "Broken"
    broken.mkdir()
    rng = random.Random(20240601)
    # Random bytes with no tag at all.
    (broken / "random bytes.mp3").write_bytes(rng.randbytes(48_000))
    # Random bytes behind a valid ID3 tag: labelled, so it reaches SoX, which rejects it (the failed path).
    damaged = broken / "tagged noise.mp3"
    damaged.write_bytes(rng.randbytes(48_000))
    _tag(damaged, "Rock", "Riff Raft", "Tagged Noise")
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
        digests[path.relative_to(root).as_posix()] = sha256_file(path)
    for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        os.utime(path, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    os.utime(root, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return digests


def _tag(path: Path, genre: str, artist: str, title: str) -> None:
    tags = ID3()
    tags.add(TCON(encoding=3, text=[genre]))
    tags.add(TPE1(encoding=3, text=[artist]))
    tags.add(TALB(encoding=3, text=[f"{artist} Sessions"]))
    tags.add(TIT2(encoding=3, text=[title]))
    tags.save(path)


# --------------------------------------------------------------------------------------------------------------
# Digests and parsing
# --------------------------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def combined_digest(files: dict[str, str]) -> str:
    """One digest of ``{relative path: sha256}``: SHA-256 of the sorted ``path NUL digest LF`` lines."""
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0" + files[rel].encode() + b"\n")
    return digest.hexdigest()


#: Files of a built data set whose bytes may differ between two identical builds, and why. Their digests are
#: recorded for information but not compared; where a stable part exists, it is compared instead.
VARYING_DATASET_FILES = {
    ".genreslice/lock": "holds the pid of the last build process",
    ".genreslice/journal.jsonl": "one line per track in the order the 2 workers finished them (scheduling); "
                                 "compared instead as its records sorted, scratch paths replaced",
}

#: Why a file's digest is taken after replacing the scratch folder's absolute path by a placeholder.
PATH_NORMALISED_REASON = ("holds the absolute path of the corpus (SoX's error message for the broken file), "
                          "which differs with --work; digest taken with that path replaced by <CORPUS>")


def normalise_bytes(data: bytes, replacements: list[tuple[str, str]]) -> bytes:
    for old, new in replacements:
        data = data.replace(old.encode("utf-8", "surrogateescape"), new.encode())
    return data


def dataset_manifest(dataset: Path, replacements: list[tuple[str, str]]) -> dict:
    """Digests of every file of the built data set. Files that hold the scratch path are digested with it
    replaced (and listed under ``path_normalised`` with their raw digest); files in
    :data:`VARYING_DATASET_FILES` are listed apart and left out of ``files`` and the combined digest."""
    files, varying, normalised = {}, {}, {}
    for path in sorted(p for p in dataset.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(dataset).as_posix()
        if rel in VARYING_DATASET_FILES:
            varying[rel] = {"sha256": sha256_file(path), "reason": VARYING_DATASET_FILES[rel]}
            continue
        raw = sha256_file(path)
        if rel.endswith(".png"):
            files[rel] = raw
            continue
        norm = hashlib.sha256(normalise_bytes(path.read_bytes(), replacements)).hexdigest()
        files[rel] = norm
        if norm != raw:
            normalised[rel] = {"raw_sha256": raw, "reason": PATH_NORMALISED_REASON}
    pngs = {rel: d for rel, d in files.items() if rel.startswith("slices/") and rel.endswith(".png")}
    journal = dataset / ".genreslice" / "journal.jsonl"
    journal_digest = None
    if journal.exists():
        records = [normalise_paths(json.loads(line), replacements)
                   for line in journal.read_text(encoding="utf-8").splitlines() if line.strip()]
        records.sort(key=lambda r: json.dumps(r, sort_keys=True))
        journal_digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    return {
        "files": files,
        "combined_sha256": combined_digest(files),
        "n_files": len(files),
        "png_combined_sha256": combined_digest(pngs),
        "n_png": len(pngs),
        "path_normalised": normalised,
        "varying_files": varying,
        "journal_records_sorted_sha256": journal_digest,
    }


def parse_number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


#: history.csv columns that measure time, not the result.
VARYING_HISTORY_COLUMNS = {"seconds": "wall-clock seconds of the epoch"}


def parse_history(path: Path) -> dict:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0].keys()) if rows else []
    table = {c: [parse_number(r[c]) for r in rows] for c in columns if c not in VARYING_HISTORY_COLUMNS}
    return {"columns": columns, "values": table,
            "varying_columns": {c: {"reason": why, "values": [parse_number(r[c]) for r in rows]}
                                for c, why in VARYING_HISTORY_COLUMNS.items() if c in columns}}


def normalise_paths(value, replacements: list[tuple[str, str]]):
    """Replace absolute scratch paths by placeholders in every string of a JSON value."""
    if isinstance(value, str):
        for old, new in replacements:
            value = value.replace(old, new)
        return value
    if isinstance(value, list):
        return [normalise_paths(v, replacements) for v in value]
    if isinstance(value, dict):
        return {k: normalise_paths(v, replacements) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------------------------
# Running the commands
# --------------------------------------------------------------------------------------------------------------

def run_command(prefix: list[str], args: list[str], cwd: Path, log: Path, ok_codes=(0,)) -> tuple[int, str, float]:
    env = dict(os.environ)
    env.update(COMMAND_ENV)
    argv = [*prefix, *args]
    print("+ " + shlex.join(argv), flush=True)
    started = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    seconds = time.monotonic() - started
    stdout = done.stdout.decode("utf-8", "replace")
    stderr = done.stderr.decode("utf-8", "replace")
    log.write_text(f"$ {shlex.join(argv)}\n# cwd {cwd}\n# exit {done.returncode}, {seconds:.1f} s\n"
                   f"--- stdout\n{stdout}\n--- stderr\n{stderr}\n", encoding="utf-8")
    print(f"  exit {done.returncode} in {seconds:.1f} s (log: {log})", flush=True)
    if done.returncode not in ok_codes:
        tail = "\n".join((stdout + stderr).splitlines()[-30:])
        raise SystemExit(f"command failed with exit {done.returncode} (expected {ok_codes}):\n{tail}")
    return done.returncode, stdout, seconds


def produce(prefix: list[str], cwd: Path, work: Path) -> dict:
    if work.exists():
        if any(work.iterdir()):
            raise SystemExit(f"--work {work} is not empty; give a new or empty folder")
    work.mkdir(parents=True, exist_ok=True)
    work = work.resolve()
    corpus, dataset, model, logs = work / "corpus", work / "dataset", work / "model", work / "logs"
    logs.mkdir()
    timings = {}
    # Absolute scratch paths end up in outputs (SoX's message in tracks.csv, model.json's data set path);
    # they are replaced by placeholders. SoX messages are cut at 300 characters, so a long path would cut
    # them elsewhere: keep --work short.
    if len(str(corpus)) > 120:
        raise SystemExit(f"--work {work} is too long (keep it under about 110 characters)")
    replacements = [(str(corpus) + os.sep, "<CORPUS>/"), (str(corpus), "<CORPUS>"), (str(work), "<WORK>")]

    started = time.monotonic()
    corpus_digests = make_corpus(corpus)
    timings["corpus"] = round(time.monotonic() - started, 1)
    print(f"corpus: {len(corpus_digests)} files in {timings['corpus']} s", flush=True)

    _, build_out, timings["build"] = run_command(prefix, ["build", str(corpus), str(dataset), *BUILD_OPTS], cwd,
                                                 logs / "build.log")
    _, train_out, timings["train"] = run_command(prefix, ["train", str(dataset), str(model), *TRAIN_OPTS], cwd,
                                                 logs / "train.log")
    # Exit 3: some files could not be classified (the two broken ones), as intended.
    rc, predict_out, timings["predict"] = run_command(prefix, ["predict", str(model), str(corpus),
                                                               *PREDICT_OPTS], cwd, logs / "predict.log",
                                                      ok_codes=(0, 3))
    timings = {k: round(v, 1) for k, v in timings.items()}
    records = [normalise_paths(json.loads(line), replacements) for line in predict_out.splitlines() if line.strip()]

    sox_version = subprocess.run(["sox", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "manifest_version": MANIFEST_VERSION,
        "environment": {"sox": sox_version, "cpu_count": os.cpu_count(), "machine": platform.machine(),
                        "python_of_this_script": platform.python_version(), "numpy": np.__version__,
                        "mutagen": mutagen.version_string},
        "commands": {"build": BUILD_OPTS, "train": TRAIN_OPTS, "predict": PREDICT_OPTS, "env": COMMAND_ENV},
        "timings_s": timings,
        "corpus": {"files": corpus_digests, "combined_sha256": combined_digest(corpus_digests)},
        "dataset": dataset_manifest(dataset, replacements),
        "history": parse_history(model / "history.csv"),
        "model": model_manifest(model, replacements),
        "predict": {"exit_status": rc, "records": records},
    }


# --------------------------------------------------------------------------------------------------------------
# Comparing
# --------------------------------------------------------------------------------------------------------------

class Report:
    def __init__(self) -> None:
        self.differences: list[str] = []
        self.notes: list[str] = []

    def diff(self, text: str) -> None:
        self.differences.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)


def close(a, b) -> tuple[bool, float]:
    """Numbers equal within RTOL/ATOL (NaN equals NaN); returns (ok, absolute difference)."""
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
        return a == b, 0.0
    if math.isnan(a) and math.isnan(b):
        return True, 0.0
    diff = abs(a - b)
    return bool(np.isclose(a, b, rtol=RTOL, atol=ATOL)), diff


def compare_values(a, b, where: str, report: Report, worst: list) -> None:
    """Structural comparison: numbers within tolerance, everything else exact. ``worst`` = [max diff, where]."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a:
                report.diff(f"{where}.{key}: only in the new outputs ({json.dumps(b[key])[:120]})")
            elif key not in b:
                report.diff(f"{where}.{key}: missing from the new outputs (was {json.dumps(a[key])[:120]})")
            else:
                compare_values(a[key], b[key], f"{where}.{key}", report, worst)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            report.diff(f"{where}: {len(a)} items before, {len(b)} now")
        for i, (x, y) in enumerate(zip(a, b)):
            compare_values(x, y, f"{where}[{i}]", report, worst)
    else:
        ok, diff = close(a, b)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and diff > worst[0]:
            worst[0], worst[1] = diff, where
        if not ok:
            report.diff(f"{where}: {json.dumps(a)} before, {json.dumps(b)} now")


#: model.json keys whose values are not results of the run (dotted paths), and why.
VARYING_MODEL_JSON = {
    "training_seconds": "wall-clock time of the training",
    "epoch_seconds": "wall-clock time of each epoch",
    "peak_memory_mib": "peak resident memory of the training process",
    "keras_version": "the installed Keras, not genreslice",
    "tensorflow_version": "the installed TensorFlow, not genreslice",
}

#: Files of the model folder not compared byte for byte, and why (patterns: fnmatch on the relative path).
VARYING_MODEL_FILES = {
    "lock": "holds the pid of the training process",
    "model.keras": "a zip whose metadata.json holds date_saved, whose config.json holds Python object ids "
                   "(shared_object_id) and whose weights entry has the save time as zip date; compared instead: "
                   "model.weights.h5 byte for byte, config.json with the ids renumbered",
    "checkpoint/*.keras": "as model.keras (the last epoch; compared through model.keras and state.json)",
    "checkpoint/state.json": "per-epoch wall-clock seconds and peak memory, and the SHA-256 of the checkpoint "
                             "files (which hold the save date); compared instead with those fields dropped",
    "logs/*/events.out.tfevents.*": "TensorBoard event files: named by start time, host and pid, and hold "
                                    "wall-clock times",
}


def renumber_shared_ids(value, ids=None):
    """Replace Keras's ``shared_object_id`` values (Python ``id()``s) by their order of first appearance."""
    ids = {} if ids is None else ids
    if isinstance(value, dict):
        out = {}
        for key, sub in value.items():
            if key == "shared_object_id" and isinstance(sub, int):
                out[key] = ids.setdefault(sub, len(ids))
            else:
                out[key] = renumber_shared_ids(sub, ids)
        return out
    if isinstance(value, list):
        return [renumber_shared_ids(v, ids) for v in value]
    return value


def strip_keys(value, names: set[str]):
    if isinstance(value, dict):
        return {k: strip_keys(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [strip_keys(v, names) for v in value]
    return value


def keras_zip_manifest(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        out = {"members": names}
        if "model.weights.h5" in names:
            out["weights_sha256"] = hashlib.sha256(archive.read("model.weights.h5")).hexdigest()
        if "config.json" in names:
            config = renumber_shared_ids(json.loads(archive.read("config.json")))
            out["config_sha256"] = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        if "metadata.json" in names:
            meta = json.loads(archive.read("metadata.json"))
            out["metadata_keys"] = sorted(meta)
    return out


def model_manifest(model: Path, replacements: list[tuple[str, str]]) -> dict:
    files, varying = {}, {}
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        rel = path.relative_to(model).as_posix()
        pattern = next((pat for pat in VARYING_MODEL_FILES if fnmatch.fnmatchcase(rel, pat)), None)
        if pattern:
            varying.setdefault(pattern, {"reason": VARYING_MODEL_FILES[pattern], "files": {}})
            varying[pattern]["files"][rel] = sha256_file(path)
        else:
            files[rel] = sha256_file(path)
    state = None
    state_path = model / "checkpoint" / "state.json"
    if state_path.exists():
        state = strip_keys(json.loads(state_path.read_text(encoding="utf-8")),
                           {"seconds", "peak_memory_mib", "sha256", "checksums"})
        state = normalise_paths(state, replacements)
    model_json = json.loads((model / "model.json").read_text(encoding="utf-8"))
    return {
        "files": {k: v for k, v in files.items() if k not in ("model.json", "history.csv")},
        "varying_files": varying,
        "model_keras": keras_zip_manifest(model / "model.keras") if (model / "model.keras").exists() else None,
        "state_json": state,
        "model_json": normalise_paths(model_json, replacements),
    }


def drop_paths(value: dict, paths) -> dict:
    value = json.loads(json.dumps(value))
    for dotted in paths:
        parts = dotted.split(".")
        node = value
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return value


def compare(before: dict, now: dict) -> Report:
    report = Report()
    if before.get("commands") != now.get("commands"):
        report.diff(f"the manifests were made with other command options: {before.get('commands')} vs "
                    f"{now.get('commands')}")

    for key in ("sox", "machine", "cpu_count", "numpy", "mutagen"):
        if before.get("environment", {}).get(key) != now["environment"].get(key):
            report.note(f"environment {key}: {before.get('environment', {}).get(key)} before, "
                        f"{now['environment'].get(key)} now")

    # Corpus: not genreslice's output; a difference here means the inputs differ (another SoX or mutagen).
    if before["corpus"]["combined_sha256"] != now["corpus"]["combined_sha256"]:
        bad = sorted(k for k in set(before["corpus"]["files"]) | set(now["corpus"]["files"])
                     if before["corpus"]["files"].get(k) != now["corpus"]["files"].get(k))
        report.diff(f"corpus: the generated input files differ ({len(bad)}: {bad[:5]}); the comparison below "
                    "is not meaningful (another SoX / LAME / mutagen?)")

    # Data set: exact.
    fb, fn = before["dataset"]["files"], now["dataset"]["files"]
    only_before = sorted(set(fb) - set(fn))
    only_now = sorted(set(fn) - set(fb))
    changed = sorted(k for k in set(fb) & set(fn) if fb[k] != fn[k])
    for rel in only_before[:20]:
        report.diff(f"dataset: {rel} missing now")
    for rel in only_now[:20]:
        report.diff(f"dataset: {rel} new")
    for rel in changed[:20]:
        report.diff(f"dataset: {rel} differs ({fb[rel][:12]} before, {fn[rel][:12]} now)")
    extra = len(only_before) + len(only_now) + len(changed) - min(20, len(only_before)) - min(20, len(only_now)) \
        - min(20, len(changed))
    if extra > 0:
        report.diff(f"dataset: {extra} more file differences not listed")
    if set(before["dataset"]["varying_files"]) != set(now["dataset"]["varying_files"]):
        report.diff(f"dataset: varying files {sorted(before['dataset']['varying_files'])} before, "
                    f"{sorted(now['dataset']['varying_files'])} now")
    if set(before["dataset"]["path_normalised"]) != set(now["dataset"]["path_normalised"]):
        report.diff(f"dataset: files holding the scratch path {sorted(before['dataset']['path_normalised'])} "
                    f"before, {sorted(now['dataset']['path_normalised'])} now")
    if before["dataset"]["journal_records_sorted_sha256"] != now["dataset"]["journal_records_sorted_sha256"]:
        report.diff("dataset: .genreslice/journal.jsonl holds other records (compared sorted)")

    # history.csv: numbers within tolerance.
    hb, hn = before["history"], now["history"]
    if hb["columns"] != hn["columns"]:
        report.diff(f"history.csv: columns {hb['columns']} before, {hn['columns']} now")
    worst_history = [0.0, ""]
    compare_values(hb["values"], hn["values"], "history", report, worst_history)

    # The model folder: model.json and state.json by the same rules, leaving out timings and library versions;
    # model.keras by its weights and normalised configuration; other files (curves.png) byte for byte.
    mb, mn = before["model"], now["model"]
    worst_model = [0.0, ""]
    compare_values(drop_paths(mb["model_json"], VARYING_MODEL_JSON), drop_paths(mn["model_json"], VARYING_MODEL_JSON),
                   "model.json", report, worst_model)
    for key in sorted(VARYING_MODEL_JSON):
        if mb["model_json"].get(key) != mn["model_json"].get(key) and "version" in key:
            report.note(f"model.json {key}: {mb['model_json'].get(key)} before, {mn['model_json'].get(key)} now "
                        "(another library version: numbers may legitimately move)")
    compare_values(mb["state_json"], mn["state_json"], "checkpoint/state.json", report, worst_model)
    compare_values(mb["model_keras"], mn["model_keras"], "model.keras", report, worst_model)
    for rel in sorted(set(mb["files"]) | set(mn["files"])):
        if mb["files"].get(rel) != mn["files"].get(rel):
            report.diff(f"model folder: {rel} {'differs' if rel in mb['files'] and rel in mn['files'] else 'missing on one side'}")
    if {p: sorted(v["files"]) for p, v in mb["varying_files"].items() if "tfevents" not in p} != \
            {p: sorted(v["files"]) for p, v in mn["varying_files"].items() if "tfevents" not in p}:
        report.diff("model folder: other files among those not compared byte for byte: "
                    f"{ {p: sorted(v['files']) for p, v in mb['varying_files'].items()} } before, "
                    f"{ {p: sorted(v['files']) for p, v in mn['varying_files'].items()} } now")

    # predict records: labels exact, numbers within tolerance.
    pb, pn = before["predict"], now["predict"]
    if pb["exit_status"] != pn["exit_status"]:
        report.diff(f"predict: exit status {pb['exit_status']} before, {pn['exit_status']} now")
    worst_predict = [0.0, ""]
    compare_values(pb["records"], pn["records"], "predict", report, worst_predict)

    report.note(f"dataset: {now['dataset']['n_files']} files compared byte for byte "
                f"({now['dataset']['n_png']} PNG slices); combined {now['dataset']['combined_sha256'][:16]} "
                f"(before {before['dataset']['combined_sha256'][:16]}), PNGs {now['dataset']['png_combined_sha256'][:16]} "
                f"(before {before['dataset']['png_combined_sha256'][:16]})")
    report.note("compared with the scratch path replaced: " + ", ".join(now["dataset"]["path_normalised"]))
    report.note("not compared byte for byte: " + "; ".join(f"{k} ({v['reason']})"
                                                         for k, v in now["dataset"]["varying_files"].items()))
    report.note(f"history.csv: {len(hn['values'].get('epoch', []))} epochs; largest difference "
                f"{worst_history[0]:.3g}" + (f" at {worst_history[1]}" if worst_history[1] else "")
                + "; not compared: " + ", ".join(f"{c} ({v['reason']})" for c, v in hn["varying_columns"].items()))
    report.note(f"model folder: model.json, state.json, model.keras weights and config, "
                f"{', '.join(sorted(mn['files']))} compared; largest difference {worst_model[0]:.3g}"
                + (f" at {worst_model[1]}" if worst_model[1] else "")
                + "; not compared: model.json " + ", ".join(sorted(VARYING_MODEL_JSON)) + "; "
                + "; ".join(f"{p} ({v['reason']})" for p, v in mn["varying_files"].items()))
    report.note(f"predict: {len(pn['records'])} records; largest difference {worst_predict[0]:.3g}"
                + (f" at {worst_predict[1]}" if worst_predict[1] else ""))
    return report


def summary(manifest: dict) -> str:
    d, h, p = manifest["dataset"], manifest["history"], manifest["predict"]
    lines = [
        f"corpus combined sha256:  {manifest['corpus']['combined_sha256']}",
        f"dataset combined sha256: {d['combined_sha256']} ({d['n_files']} files)",
        f"PNG combined sha256:     {d['png_combined_sha256']} ({d['n_png']} slices)",
        "history:",
    ]
    cols = [c for c in h["columns"] if c in h["values"]]
    lines.append("  " + "  ".join(f"{c:>14}" for c in cols))
    for i in range(len(h["values"].get(cols[0], [])) if cols else 0):
        lines.append("  " + "  ".join(f"{h['values'][c][i]:>14.8g}" if isinstance(h['values'][c][i], float)
                                      else f"{h['values'][c][i]:>14}" for c in cols))
    lines.append(f"predict (exit {p['exit_status']}):")
    for r in p["records"]:
        probs = r.get("mean_probability") or {}
        top = max(probs, key=probs.get) if probs else "-"
        lines.append(f"  {r.get('status'):9} {str(r.get('genre')):11} share={r.get('vote_share')} "
                     f"n={r.get('n_slices')} top_p={probs.get(top, '-') if probs else '-'}  {r.get('path')}")
    lines.append(f"timings (s): {manifest['timings_s']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", default="genreslice", help="command prefix, shlex-split (default: genreslice)")
    parser.add_argument("--cwd", default=".", help="folder to run the prefix in (default: the current one)")
    parser.add_argument("--work", required=True, help="scratch folder, new or empty")
    parser.add_argument("--write", metavar="MANIFEST.json", help="write the manifest of this run here")
    parser.add_argument("--compare", metavar="MANIFEST.json", help="compare this run with that manifest")
    args = parser.parse_args(argv)
    if not args.write and not args.compare:
        parser.error("give --write and/or --compare")
    if shutil.which("sox") is None:
        parser.error("sox is not on PATH")
    before = None
    if args.compare:
        before = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        if before.get("manifest_version") != MANIFEST_VERSION:
            parser.error(f"{args.compare}: manifest version {before.get('manifest_version')}, "
                         f"expected {MANIFEST_VERSION}")

    manifest = produce(shlex.split(args.cli), Path(args.cwd).resolve(), Path(args.work))
    print(summary(manifest))
    if args.write:
        Path(args.write).parent.mkdir(parents=True, exist_ok=True)
        Path(args.write).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"manifest written to {args.write}")
    if before is None:
        return 0
    report = compare(before, manifest)
    print(f"\n=== comparison with {args.compare}")
    for note in report.notes:
        print("  " + note)
    if report.differences:
        print(f"DIFFERENT: {len(report.differences)} difference(s):")
        for text in report.differences[:200]:
            print("  - " + text)
        if len(report.differences) > 200:
            print(f"  ... and {len(report.differences) - 200} more")
        return 1
    print("SAME OUTPUTS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

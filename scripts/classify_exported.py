#!/usr/bin/env python3
"""Classify songs with a model exported by ``genreslice export``, without genreslice.

Needs numpy, SoX on the PATH (it decodes the audio, so any format SoX reads; genreslice itself also reads M4A, Opus
and others through FFmpeg, which this script does not: convert them with FFmpeg first), and the runtime of
the exported format: onnxruntime (``model.onnx``), ai-edge-litert or TensorFlow (``model.tflite``), TensorFlow
(``saved_model/``). Everything else comes from the card beside the model, ``genreslice-model.json``: the classes in
output order, the spectrogram settings, the slice size, the input scaling, the voting rule and the tag thresholds.

    python classify.py EXPORT_DIR song.mp3 [song2.flac ...] [--vote majority|mean]

One JSON object per file on standard output, the fields of ``genreslice predict --format json``: ``genre``,
``vote_share``, ``votes`` and ``mean_probability`` of every class (a multi-label model: ``tags``). A file SoX cannot
read gets ``"status": "failed"`` and SoX's reason; the others go on. ``genreslice export`` writes this file into
every export folder, and its tests run it there and compare its answers with ``genreslice predict``'s.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import zlib

import numpy as np

CARD = "genreslice-model.json"
BATCH = 64


def sox_spectrogram(path: str, card: dict) -> np.ndarray:
    """The gray spectrogram (``slice_size + 1`` rows, row 0 the highest frequency) of one file, as genreslice
    renders it: SoX's own (``sox``), or a log-mel one of SoX's samples (``mel``)."""
    spec = card["spectrogram"]
    source = os.path.abspath(path)  # a name with a leading dash is never read as an option
    if spec.get("features", "sox") == "mel":
        command = ["sox", "-R", "-D", "-V2", "--no-glob", source, "-t", "raw", "-e", "floating-point", "-b", "32",
                   "-L", "-", *spec["sox_effects"]]
        return mel_image(np.frombuffer(run(command), dtype="<f4"), spec)
    return png_gray(run(["sox", "-R", "-D", "-V2", "--no-glob", source, "-n", *spec["sox_effects"]]))


def run(command: list[str]) -> bytes:
    done = subprocess.run(command, capture_output=True, timeout=600, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"SoX failed: {lines[-1] if lines else 'no reason given'}")
    return done.stdout


def png_gray(data: bytes) -> np.ndarray:
    """SoX's spectrogram PNG (8-bit palette, unfiltered rows) as gray levels, with zlib and numpy."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise RuntimeError("SoX did not write a PNG")
    position, chunks, header, palette = 8, [], None, None
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            chunks.append(body)
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    if header[8:10] != b"\x08\x03" or palette is None:
        raise RuntimeError("not SoX's 8-bit palette PNG")
    rows = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8).reshape(height, width + 1)
    if rows[:, 0].any():
        raise RuntimeError("filtered PNG rows: not SoX's spectrogram")
    lut = np.zeros(256, dtype=np.uint8)
    lut[: len(palette)] = palette.mean(axis=1).round().astype(np.uint8)  # SoX's monochrome palette: R = G = B
    return lut[rows[:, 1:]]


def mel_image(samples: np.ndarray, spec: dict) -> np.ndarray:
    """librosa's log-mel spectrogram (Slaney scale and norm, periodic Hann window, centred frames) of mono samples,
    in dB against the card's fixed reference, mapped to gray levels as the card's ``mel.gray`` says."""
    mel, rate, hop = spec["mel"], spec["sample_rate"], spec["mel"]["hop_length"]
    n_fft, n_mels = mel["n_fft"], spec["slice_size"]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    bank = mel_filterbank(rate, n_fft, n_mels, mel["fmin"], mel["fmax"])
    n_columns = min(len(samples) // hop, card_max_columns(spec))
    padded = np.concatenate([np.zeros(n_fft // 2, np.float32), samples, np.zeros(n_fft, np.float32)])
    gray = np.zeros((n_mels + 1, n_columns), dtype=np.uint8)  # row 0 stays black, as SoX's Nyquist row is cut
    for start in range(0, n_columns, 1024):  # a block of frames at a time: memory stays small for long files
        stop = min(start + 1024, n_columns)
        frames = np.lib.stride_tricks.sliding_window_view(padded[start * hop : (stop - 1) * hop + n_fft], n_fft)
        power = np.abs(np.fft.rfft(frames[::hop] * window, axis=1)).astype(np.float32) ** 2
        db = 10 * np.log10(np.maximum(mel["amin"], power @ bank.T)) - 10 * np.log10(mel["ref_power"])
        levels = np.clip(np.rint((db - mel["max_db"]) * (255.0 / mel["top_db"]) + 255.0), 0, 255)
        gray[1:, start:stop] = levels.T[::-1]  # the lowest band at the bottom
    return gray


def card_max_columns(spec: dict) -> int:
    """The most columns genreslice analyses: SoX's ``trim`` in the card's effects keeps their samples and half a
    window more."""
    effects = spec["sox_effects"]
    if "trim" in effects:
        kept = int(effects[effects.index("trim") + 2].rstrip("s"))
        return (kept - spec["mel"]["n_fft"] // 2) // spec["mel"]["hop_length"]
    return 200_000


def mel_filterbank(rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``librosa.filters.mel(..., htk=False, norm="slaney")``: triangular bands on the Slaney mel scale."""
    linear, log_start, log_step = 200.0 / 3, 1000.0, np.log(6.4) / 27.0

    def hz_to_mel(hz):
        hz = np.asarray(hz, dtype=np.float64)
        return np.where(hz >= log_start, log_start / linear + np.log(np.maximum(hz, 1e-10) / log_start) / log_step,
                        hz / linear)

    def mel_to_hz(mels):
        return np.where(mels >= log_start / linear, log_start * np.exp(log_step * (mels - log_start / linear)),
                        mels * linear)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    ramps = edges[:, None] - np.fft.rfftfreq(n_fft, d=1.0 / rate)[None, :]
    widths = np.diff(edges)
    lower, upper = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    bank = np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return bank.astype(np.float32)


def slices_of(gray: np.ndarray, size: int) -> np.ndarray:
    """Whole slices ``(n, size, size)`` without row 0; a clip shorter than one slice is repeated to fill one."""
    if 0 < gray.shape[1] < size:
        gray = np.tile(gray, (1, -(-size // gray.shape[1])))[:, :size]
    n = gray.shape[1] // size
    return gray[1:, : n * size].reshape(size, n, size).transpose(1, 0, 2)


class Network:
    """The exported network, run by the runtime of its format: probabilities of float32 slices."""

    def __init__(self, folder: str, card: dict) -> None:
        self.format, path = card["export"]["format"], os.path.join(folder, card["export"]["file"])
        if self.format == "onnx":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            self.input = self.session.get_inputs()[0].name
        elif self.format == "tflite":
            try:
                from ai_edge_litert.interpreter import Interpreter
            except ImportError:
                from tensorflow.lite import Interpreter
            self.interpreter = Interpreter(model_path=path)
        else:
            import tensorflow as tf

            self.saved_model = tf.saved_model.load(path)  # held: its variables live as long as it does

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.format == "onnx":
            return self.session.run(None, {self.input: x})[0]
        if self.format == "tflite":
            given, wanted = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
            self.interpreter.resize_tensor_input(given["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.interpreter.set_tensor(given["index"], x)
            self.interpreter.invoke()
            return self.interpreter.get_tensor(wanted["index"]).copy()
        return np.asarray(self.saved_model.serve(x))


def classify(path: str, network: Network, card: dict, vote: str) -> dict:
    """One file's record: its slices classified, then voted as the card says."""
    classes, size = card["classes"], card["slicing"]["slice_size"]
    record = {"path": path, "status": "ok", "reason": ""}
    try:
        gray = sox_spectrogram(path, card)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as err:
        return {**record, "status": "failed", "reason": str(err)}
    slices = slices_of(gray, size)
    if len(slices) == 0:
        return {**record, "status": "too_short", "reason": "no audio"}
    x = slices[..., None].astype(np.float32) / 255.0
    probabilities = np.concatenate([network(x[start : start + BATCH]) for start in range(0, len(x), BATCH)])
    mean = probabilities.mean(axis=0)
    duration_s = round(gray.shape[1] / card["spectrogram"]["pixels_per_second"], 2)
    mean_probability = {name: round(float(p), 4) for name, p in zip(classes, mean)}
    if card["task"] == "multilabel":
        thresholds = card["voting"]["thresholds"]
        tags = [classes[k] for k in np.argsort(-mean, kind="mergesort") if mean[k] >= thresholds[classes[k]]]
        return {**record, "tags": tags, "n_slices": len(slices), "duration_s": duration_s,
                "mean_probability": mean_probability}
    votes = np.bincount(probabilities.argmax(axis=1), minlength=len(classes))
    if vote == "mean":
        winner = int(mean.argmax())
    else:  # the most votes; a tie goes to the higher mean probability, then to the first class
        winner = int(np.argmax(np.where(votes == votes.max(), mean, -np.inf)))
    return {**record, "genre": classes[winner], "vote": vote, "vote_share": round(votes[winner] / len(slices), 4),
            "n_slices": len(slices), "duration_s": duration_s,
            "votes": {name: int(count) for name, count in zip(classes, votes)}, "mean_probability": mean_probability}


def main() -> int:
    parser = argparse.ArgumentParser(description="Classify songs with a model exported by 'genreslice export'.")
    parser.add_argument("export_dir", help="the folder 'genreslice export' wrote (the model and " + CARD + ")")
    parser.add_argument("files", nargs="+", help="audio files SoX can read")
    parser.add_argument("--vote", choices=["majority", "mean"], default="majority")
    args = parser.parse_args()
    try:
        with open(os.path.join(args.export_dir, CARD), encoding="utf-8") as stream:
            card = json.load(stream)
        network = Network(args.export_dir, card)
    except (OSError, ValueError, KeyError) as err:
        sys.exit(f"classify.py: {args.export_dir} is not a readable export of genreslice ({err}); give the folder "
                 "'genreslice export' wrote")
    failed = 0
    for path in args.files:
        record = classify(path, network, card, args.vote)
        failed += record["status"] != "ok"
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

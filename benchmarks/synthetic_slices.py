"""Write a data set of synthetic slices in the build's layout, without audio or SoX.

For tests and benchmarks of training, which need many slices fast: ``genreslice build`` turns about 12 s of
audio into one track's slices in 90 ms, while this writes 20,000 slices in a few seconds. Each genre has its
own pattern (energy bands at genre-specific rows, vertical onsets at a genre-specific period) with random
shifts, gains and noise per track and per slice, so a model has something real but not trivial to learn.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from genreslice.pipeline import layout
from genreslice.pipeline.png import write_slice_png
from genreslice.pipeline.spectrogram import SpectrogramSpec

SPLIT_ORDER = ("train", "validation", "test")


def synthetic_slice(genre_index: int, rng: np.random.Generator, *, size: int = 128, noise: float = 40.0) -> np.ndarray:
    """One ``uint8`` slice of the pattern of ``genre_index``."""
    rows = np.arange(size)[:, None]
    columns = np.arange(size)[None, :]
    centre = 12 + (genre_index * 23) % (size - 24) + rng.integers(-3, 4)
    band = np.exp(-0.5 * ((rows - centre) / (3 + genre_index % 3)) ** 2)
    period = 6 + 4 * (genre_index % 5)
    onsets = ((columns + rng.integers(0, period)) % period < 2) * np.exp(-rows / (40 + 10 * (genre_index % 4)))
    image = 150 * band * rng.uniform(0.6, 1.0) + 120 * onsets * rng.uniform(0.5, 1.0)
    image = image + rng.normal(30, noise, (size, size))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_synthetic_dataset(
    root: str | os.PathLike,
    *,
    genres: tuple[str, ...] = ("Blues", "Electronic", "Jazz", "Rock"),
    tracks_per_genre: int = 10,
    slices_per_track: int = 10,
    split_tracks: tuple[int, int, int] = (6, 2, 2),
    seed: int = 0,
    noise: float = 40.0,
) -> Path:
    """Write ``dataset.json``, ``tracks.csv``, ``slices.csv`` and the slice PNGs under ``root``.

    ``split_tracks`` divides each genre's tracks into train, validation and test in that proportion; the
    split is by track, never by slice. Returns ``root`` as a Path.
    """
    root = Path(root)
    spec = SpectrogramSpec()
    rng = np.random.default_rng(seed)
    genres = tuple(sorted(genres))
    total_weight = sum(split_tracks)
    track_rows, slice_rows = [], []
    counts = {kind: {split: {g: 0 for g in genres} for split in SPLIT_ORDER} for kind in ("tracks", "slices")}
    for genre_index, genre in enumerate(genres):
        bounds = np.cumsum(split_tracks) * tracks_per_genre / total_weight
        for number in range(tracks_per_genre):
            split = SPLIT_ORDER[int(np.searchsorted(bounds, number, side="right"))]
            track_id = f"{genre_index:02d}{number:05d}"
            folder = root / layout.track_slice_dir(track_id)
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(slices_per_track):
                write_slice_png(synthetic_slice(genre_index, rng, size=spec.slice_size, noise=noise),
                                root / layout.slice_path(track_id, index))
                slice_rows.append(
                    f"{layout.slice_path(track_id, index)},{track_id},{genre},{split},{index},{index * 2.55:.2f}"
                )
            track_rows.append(
                f"{track_id},{genre}/{track_id}.mp3,{genre} artist {number},{genre},{split},ok,,"
                f"{slices_per_track},{slices_per_track * 2.56:.2f}"
            )
            counts["tracks"][split][genre] += 1
            counts["slices"][split][genre] += slices_per_track
    layout.write_text_atomic(root / layout.SLICES_CSV, ",".join(layout.SLICE_COLUMNS) + "\n" + "\n".join(slice_rows) + "\n")
    layout.write_text_atomic(root / layout.TRACKS_CSV, ",".join(layout.TRACK_COLUMNS) + "\n" + "\n".join(track_rows) + "\n")
    meta = {
        "format_version": 1,
        "generator": "benchmarks.synthetic_slices",
        "classes": list(genres),
        "counts": counts,
        "spectrogram": {**spec.to_dict(), "columns_per_second": 50.1136, "slice_seconds": 2.5542},
        "totals": {"ok": len(track_rows), "slices": len(slice_rows)},
    }
    layout.write_text_atomic(root / layout.DATASET_JSON, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return root


def write_synthetic_tagged_dataset(
    root: str | os.PathLike,
    *,
    tags: tuple[str, ...] = ("bright", "drums", "low", "pulse"),
    tracks: int = 24,
    slices_per_track: int = 6,
    split_tracks: tuple[int, int, int] = (3, 1, 2),
    seed: int = 0,
    noise: float = 20.0,
    shuffle_labels: bool = False,
) -> Path:
    """A multi-label data set (``"task": "multilabel"``) in the build's layout: each track has each tag with
    probability one half (at least one), and its slices overlay the patterns of :func:`synthetic_slice` of its
    tags (the brightest pixel of each). ``shuffle_labels`` gives the tracks each other's tag sets, so the labels
    no longer match the slices: a control a model cannot learn. Returns ``root``."""
    root = Path(root)
    spec = SpectrogramSpec()
    rng = np.random.default_rng(seed)
    tags = tuple(sorted(tags))
    total = sum(split_tracks)
    chosen = []
    for _ in range(tracks):
        present = [index for index in range(len(tags)) if rng.random() < 0.5] or [int(rng.integers(len(tags)))]
        chosen.append(present)
    labels = [chosen[k] for k in rng.permutation(tracks)] if shuffle_labels else chosen
    track_rows, slice_rows = [], []
    counts = {kind: {split: {tag: 0 for tag in tags} for split in SPLIT_ORDER} for kind in ("tracks", "slices")}
    bounds = np.cumsum(split_tracks) * tracks / total
    for number, (present, labelled) in enumerate(zip(chosen, labels)):
        split = SPLIT_ORDER[int(np.searchsorted(bounds, number, side="right"))]
        track_id = f"t{number:05d}"
        cell = ";".join(tags[index] for index in labelled)
        (root / layout.track_slice_dir(track_id)).mkdir(parents=True, exist_ok=True)
        for index in range(slices_per_track):
            image = np.maximum.reduce([synthetic_slice(k, rng, size=spec.slice_size, noise=noise) for k in present])
            write_slice_png(image, root / layout.slice_path(track_id, index))
            slice_rows.append(f"{layout.slice_path(track_id, index)},{track_id},,{cell},{split},{index},"
                              f"{index * 2.55:.2f}")
        track_rows.append(f"{track_id},{track_id}.wav,artist {number},,{cell},{split},ok,,{slices_per_track},"
                          f"{slices_per_track * 2.56:.2f}")
        for index in labelled:
            counts["tracks"][split][tags[index]] += 1
            counts["slices"][split][tags[index]] += slices_per_track
    layout.write_text_atomic(root / layout.SLICES_CSV, ",".join(layout.MULTILABEL_SLICE_COLUMNS) + "\n"
                             + "\n".join(slice_rows) + "\n")
    layout.write_text_atomic(root / layout.TRACKS_CSV, ",".join(layout.tracks.MULTILABEL_TRACK_COLUMNS) + "\n"
                             + "\n".join(track_rows) + "\n")
    meta = {
        "format_version": 1,
        "generator": "benchmarks.synthetic_slices",
        "task": "multilabel",
        "classes": list(tags),
        "counts": counts,
        "spectrogram": {**spec.to_dict(), "columns_per_second": 50.1136, "slice_seconds": 2.5542},
        "totals": {"ok": len(track_rows), "slices": len(slice_rows)},
    }
    layout.write_text_atomic(root / layout.DATASET_JSON, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return root

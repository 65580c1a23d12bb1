"""Reading a built data set's tables for training: classes, spectrogram settings, slices of one split."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genreslice.pipeline import layout
from genreslice.pipeline.layout import DATASET_JSON, SLICES_CSV
from genreslice.pipeline.splits import SPLITS
from genreslice.pipeline.tracks import TAG_SEPARATOR
from genreslice.training.errors import DatasetError


#: What a data set's ``dataset.json`` may give as its ``task`` (a file without one is ``single``).
TASKS = ("single", "multilabel")


@dataclass(frozen=True)
class DatasetInfo:
    """What a model must agree with to be trained or evaluated on a data set.

    Attributes
    ----------
    root : Path
        The data set folder (the build's output folder).
    classes : tuple of str
        Genre names in sorted order: class ``i`` of a model is ``classes[i]``.
    spectrogram : dict
        The build's spectrogram settings, as recorded in ``dataset.json``.
    fingerprint : str
        SHA-256 of the classes, the spectrogram settings and the bytes of ``slices.csv``: any rebuild that
        changes which slices exist, or how they were made, changes it.
    task : str
        ``"single"`` (one genre per track) or ``"multilabel"`` (tags; ``dataset.json`` says ``"task":
        "multilabel"``).
    """

    root: Path
    classes: tuple[str, ...]
    spectrogram: dict
    fingerprint: str
    task: str = "single"

    @property
    def multilabel(self) -> bool:
        return self.task == "multilabel"

    @property
    def slice_size(self) -> int:
        return int(self.spectrogram.get("slice_size", 128))

    @property
    def features(self) -> str:
        """The representation of the slices, ``"sox"`` or ``"mel"`` (a block without ``features`` is ``sox``)."""
        return str(self.spectrogram.get("features", "sox"))


@contextlib.contextmanager
def reading_dataset(dataset_dir: str | os.PathLike) -> Iterator[None]:
    """Hold the data set's lock as a reader while the block runs, so that no build changes it meanwhile.

    A build holds ``DATASET_DIR/.genreslice/lock`` exclusively while it adds, removes or re-renders tracks;
    any number of trainings and evaluations hold it shared at once, and a build started meanwhile is refused. A
    data set without the lock file (copied without its state folder, or made by a script) is read without it.

    Raises
    ------
    DatasetError
        A build is running on the data set.
    """
    holding = contextlib.ExitStack()
    try:
        holding.enter_context(layout.shared_lock(Path(dataset_dir) / layout.STATE_DIR / "lock"))
    except layout.LockHeldError as err:
        raise DatasetError(
            f"a build is changing {dataset_dir} (process {err.holder}); wait for it to finish, then run this "
            "command again"
        ) from None
    with holding:  # entered above, so that only the lock's own refusal becomes this error
        yield


def load_dataset_info(dataset_dir: str | os.PathLike) -> DatasetInfo:
    """Read ``dataset.json`` and fingerprint the data set.

    Raises
    ------
    DatasetError
        The folder has no readable ``dataset.json`` or ``slices.csv``, or they lack classes or settings.
    """
    root = Path(dataset_dir)
    meta_path = root / DATASET_JSON
    if not root.is_dir():
        raise DatasetError(f"{root}: no such data set folder")
    if not meta_path.is_file():
        raise DatasetError(f"{root}: no {DATASET_JSON}; is this the output folder of 'genreslice build'?")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{meta_path}: cannot be read as JSON ({err})") from err
    classes = meta.get("classes") if isinstance(meta, dict) else None
    spectrogram = meta.get("spectrogram") if isinstance(meta, dict) else None
    if not isinstance(classes, list) or not all(isinstance(name, str) for name in classes):
        raise DatasetError(f"{meta_path}: no 'classes' list of genre names")
    if not classes:
        raise DatasetError(f"{meta_path}: the data set has no classes (no track was built)")
    if classes != sorted(set(classes)):
        raise DatasetError(f"{meta_path}: 'classes' must be sorted and unique. Received: {classes}")
    if not isinstance(spectrogram, dict):
        raise DatasetError(f"{meta_path}: no 'spectrogram' settings")
    task = meta.get("task", "single")
    if task not in TASKS:
        raise DatasetError(f"{meta_path}: 'task' is {task!r}; expected one of {', '.join(TASKS)}")
    slices_path = root / SLICES_CSV
    digest = hashlib.sha256()
    described = {"classes": classes, "spectrogram": spectrogram, **({"task": task} if task != "single" else {})}
    digest.update(json.dumps(described, sort_keys=True).encode())
    try:
        with open(slices_path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise DatasetError(f"{slices_path}: cannot be read ({err.strerror or err})") from err
    return DatasetInfo(root=root, classes=tuple(classes), spectrogram=spectrogram, fingerprint=digest.hexdigest(),
                       task=task)


def check_split(split: str) -> str:
    """Return ``split`` if it names a split; raise DatasetError otherwise."""
    if split not in SPLITS:
        raise DatasetError(f"split={split!r} must be one of {', '.join(SPLITS)}")
    return split


def read_split(info: DatasetInfo, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slices of one split: absolute paths, integer labels and track ids, in ``slices.csv`` order.

    Returns
    -------
    paths : np.ndarray
        Object array of ``str``: each slice PNG's absolute path.
    labels : np.ndarray
        ``int32`` class indices into ``info.classes``; for a multi-label data set, ``uint8`` ``(n, n_classes)``
        multi-hot rows (1 where the slice's track has the tag).
    track_ids : np.ndarray
        Object array of ``str``: the track each slice belongs to (for voting).

    Raises
    ------
    DatasetError
        ``split`` is not a split's name, or ``slices.csv`` is unreadable, lacks columns, or names a genre outside
        ``info.classes``.
    """
    check_split(split)
    slices_path = info.root / SLICES_CSV
    label_column = "tags" if info.multilabel else "genre"
    try:
        table = pd.read_csv(
            slices_path, usecols=["path", "track_id", label_column, "split"], dtype=str, keep_default_na=False
        )
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DatasetError(f"{slices_path}: cannot be read as the build's slice table ({err})") from err
    table = table[table["split"] == split]
    class_index = {name: index for index, name in enumerate(info.classes)}
    root = str(info.root.resolve())
    paths = np.array([os.path.join(root, rel) for rel in table["path"]], dtype=object)
    if info.multilabel:
        return paths, _multi_hot(table["tags"], class_index, slices_path), table["track_id"].to_numpy(dtype=object)
    unknown = sorted(set(table["genre"]) - set(class_index))
    if unknown:
        raise DatasetError(
            f"{slices_path}: genres {unknown} are not in {DATASET_JSON}'s classes {list(info.classes)}"
        )
    labels = table["genre"].map(class_index).to_numpy(dtype=np.int32)
    return paths, labels, table["track_id"].to_numpy(dtype=object)


def _multi_hot(cells: pd.Series, class_index: dict[str, int], slices_path: Path) -> np.ndarray:
    """``uint8`` ``(n, n_classes)`` rows with 1 for each tag of a ``tags`` cell (joined by ``;``).

    Raises
    ------
    DatasetError
        A slice without a tag, or a tag outside the classes.
    """
    # Slices of one track share a cell: each distinct cell is parsed once.
    codes, distinct = pd.factorize(cells)
    rows = np.zeros((len(distinct), len(class_index)), dtype=np.uint8)
    for position, cell in enumerate(distinct):
        tags = [tag for tag in cell.split(TAG_SEPARATOR) if tag]
        unknown = sorted(set(tags) - set(class_index))
        if unknown or not tags:
            problem = f"tags {unknown} are not in {DATASET_JSON}'s classes" if unknown else "a slice has no tag"
            raise DatasetError(f"{slices_path}: {problem}; rebuild the data set")
        rows[position, [class_index[tag] for tag in tags]] = 1
    return rows[codes] if len(cells) else np.zeros((0, len(class_index)), dtype=np.uint8)

"""A lazy, indexable source of slice batches for Keras: only paths and labels live in memory.

The predecessor loaded every slice into RAM, then trained on partitions of the data (accuracy fell between
partitions). Here a ``keras.utils.PyDataset`` decodes one batch of PNGs per ``__getitem__``, so memory is
bounded by the batch size and the loader queue, whatever the size of the data set.

Training slices may be augmented on the fly (``genreslice train --augment``); the files never change, and
validation, evaluation and prediction read them as they are. Each slice's augmentation is drawn from a generator
seeded with the run's seed, the epoch and the slice's position in the split, so a resumed run sees the same
slices. The augmentations (:data:`~genreslice.training.settings.AUGMENTATIONS`), in the order they apply:

``offset``
    A slice of the same track starting a random number of columns later: the slice and the next one of its
    track (from ``slices.csv``; the previous one for a track's last slice, then it starts earlier) side by side,
    cropped at an offset drawn from ``0 .. slice_size - 1`` (0: the slice itself). Consecutive slices are
    consecutive columns of one spectrogram, so the crop is a slice the build could have cut. A track of one
    slice keeps it.
``gain``
    A random gain: gray is linear in dB, so an offset drawn from ``-GAIN_LEVELS .. GAIN_LEVELS`` gray levels is
    added to every pixel, clipped to ``0 .. 255``; black pixels (silence) stay black. On SoX's default 120 dB
    range (255 levels, about 2.1 per dB) 16 levels are about 7.5 dB.
``specaugment``
    SpecAugment's masking (Park et al. 2019): ``MASK_BANDS`` bands of rows (frequency) and as many of columns
    (time) set to 0, each of a width drawn from ``0 .. slice_size // MASK_WIDTH_DIVISOR`` (16 of 128) at a random
    place.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from genreslice.errors import ParameterError
from genreslice.pipeline.layout import SLICES_CSV
from genreslice.pipeline.png import decode_gray_png, to_model_input
from genreslice.training.dataset import DatasetInfo, read_split
from genreslice.training.errors import DatasetError
from genreslice.training.settings import augment_names
from genreslice.training.tf_modules import keras

#: ``gain``: the largest offset, in gray levels, added to or taken from a slice.
GAIN_LEVELS = 16
#: ``specaugment``: bands of rows, and bands of columns, zeroed per slice.
MASK_BANDS = 2
#: ``specaugment``: a band is at most ``slice_size // MASK_WIDTH_DIVISOR`` rows or columns wide.
MASK_WIDTH_DIVISOR = 8
#: Tells the augmentation's generators apart from the per-epoch permutation's (both seeded from the run's seed).
_AUGMENT_STREAM = 1


def load_gray(paths, slice_size: int = 128) -> np.ndarray:
    """Read and decode slice PNGs into one ``uint8`` batch of gray levels, shape ``(len(paths), slice_size,
    slice_size)``.

    Raises
    ------
    DatasetError
        A file is missing, unreadable, or not a ``slice_size`` square image; the message names it.
    """
    batch = np.empty((len(paths), slice_size, slice_size), dtype=np.uint8)
    for position, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:
                pixels = decode_gray_png(handle.read())
        except (OSError, ValueError) as err:
            raise DatasetError(f"{path}: cannot be read as a slice ({err})") from err
        if pixels.shape != (slice_size, slice_size):
            raise DatasetError(
                f"{path}: a slice must be {slice_size}x{slice_size} pixels. Received: shape {pixels.shape}"
            )
        batch[position] = pixels
    return batch


def load_slices(paths, slice_size: int = 128) -> np.ndarray:
    """Read and decode slice PNGs into one ``float32`` batch.

    Parameters
    ----------
    paths : sequence of str
        PNG files, each ``slice_size`` x ``slice_size`` 8-bit grayscale.
    slice_size : int
        Expected width and height.

    Returns
    -------
    np.ndarray
        Shape ``(len(paths), slice_size, slice_size, 1)``, ``float32`` in ``[0, 1]`` (gray level / 255).

    Raises
    ------
    DatasetError
        A file is missing, unreadable, or not a ``slice_size`` square image; the message names it.
    """
    return to_model_input(load_gray(paths, slice_size)[..., np.newaxis])


def offset_crop(gray: np.ndarray, neighbour: np.ndarray, shift: int) -> np.ndarray:
    """The slice ``shift`` columns after ``gray`` (before it, for a negative ``shift``), cut from ``gray`` and
    ``neighbour``, the slice that follows it (precedes it) in its track: ``concatenate([gray, neighbour],
    axis=1)[:, shift:shift + width]`` (``concatenate([neighbour, gray], axis=1)[:, width + shift:2 * width +
    shift]``). ``shift`` is between ``-width + 1`` and ``width - 1``."""
    width = gray.shape[1]
    if not -width < shift < width:
        raise ParameterError(f"shift={shift} must be between {-width + 1} and {width - 1}")
    if shift >= 0:
        return np.concatenate([gray, neighbour], axis=1)[:, shift:shift + width]
    return np.concatenate([neighbour, gray], axis=1)[:, width + shift:2 * width + shift]


def apply_gain(gray: np.ndarray, levels: int) -> np.ndarray:
    """``gray`` (``uint8``) with ``levels`` added to every pixel that is not black, clipped to ``0 .. 255``."""
    shifted = np.clip(gray.astype(np.int16) + levels, 0, 255).astype(np.uint8)
    return np.where(gray == 0, np.uint8(0), shifted)


def mask_bands(rng: np.random.Generator, size: int) -> list[tuple[int, int]]:
    """``MASK_BANDS`` random ``(start, width)`` bands of an axis of ``size`` pixels, each of a width drawn from
    ``0 .. size // MASK_WIDTH_DIVISOR``, then a start from ``0 .. size - width``."""
    bands = []
    for _ in range(MASK_BANDS):
        width = int(rng.integers(0, size // MASK_WIDTH_DIVISOR + 1))
        bands.append((int(rng.integers(0, size - width + 1)), width))
    return bands


def augment_slice(gray: np.ndarray, rng: np.random.Generator, augment: Sequence[str], *,
                  neighbour: np.ndarray | None = None, following: bool = True) -> np.ndarray:
    """One training slice (``uint8``) with the augmentations of ``augment`` applied, drawing from ``rng`` (see
    the module's documentation for what each does).

    Parameters
    ----------
    gray : np.ndarray
        The slice's gray levels, ``(height, width)``; not changed.
    rng : np.random.Generator
        Draws, in this order: the offset (``offset``), the gain (``gain``), the row bands then the column bands
        (``specaugment``) — each only when its augmentation is asked for.
    augment : sequence of str
        Names of :data:`~genreslice.training.settings.AUGMENTATIONS`.
    neighbour : np.ndarray, optional
        For ``offset``: the next slice of the track (``following``), or the previous one; None keeps the slice.
    """
    out = gray
    if "offset" in augment:
        shift = int(rng.integers(0, gray.shape[1]))
        if neighbour is not None:
            out = offset_crop(gray, neighbour, shift if following else -shift)
    if "gain" in augment:
        out = apply_gain(out, int(rng.integers(-GAIN_LEVELS, GAIN_LEVELS + 1)))
    if "specaugment" in augment:
        rows, columns = mask_bands(rng, gray.shape[0]), mask_bands(rng, gray.shape[1])
        out = out.copy()
        for start, width in rows:
            out[start:start + width, :] = 0
        for start, width in columns:
            out[:, start:start + width] = 0
    return out


def neighbour_slices(info: DatasetInfo, split: str) -> tuple[np.ndarray, np.ndarray]:
    """For each slice of one split, in :func:`~genreslice.training.dataset.read_split`'s order: the absolute path
    of the next slice of its track (by the ``index`` column of ``slices.csv``), or for a track's last slice the
    previous one; ``""`` for a track of one slice. The second array says which it is (True: the next).

    Raises
    ------
    DatasetError
        ``slices.csv`` cannot be read or lacks the columns.
    """
    slices_path = info.root / SLICES_CSV
    try:
        table = pd.read_csv(slices_path, usecols=["path", "track_id", "split", "index"], dtype=str,
                            keep_default_na=False)
        table = table[table["split"] == split].reset_index(drop=True)
        table["index"] = table["index"].astype(int)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise DatasetError(f"{slices_path}: cannot be read as the build's slice table ({err})") from err
    root = str(info.root.resolve())
    neighbours = np.full(len(table), "", dtype=object)
    following = np.ones(len(table), dtype=bool)
    for _, rows in table.groupby("track_id", sort=False):
        rows = rows.sort_values("index")
        positions, paths = rows.index.to_numpy(), [os.path.join(root, rel) for rel in rows["path"]]
        for rank, position in enumerate(positions):
            if rank + 1 < len(positions):
                neighbours[position] = paths[rank + 1]
            elif rank > 0:
                neighbours[position], following[position] = paths[rank - 1], False
    return neighbours, following


class SliceDataSource(keras.utils.PyDataset):
    """Batches of ``(slices, labels)`` read from disk on demand.

    Holds only the slice paths and integer labels, so it pickles and its memory does not grow with the
    images. ``__getitem__(i)`` loads batch ``i`` of the current epoch's order and has no side effects. With
    ``shuffle=True`` the *samples* are permuted anew every epoch: after ``e`` calls of ``on_epoch_end`` the order
    is ``numpy.random.default_rng([seed, e]).permutation(n)``, the same on every machine and after a resume.
    Keras's ``fit`` calls ``on_epoch_end`` once before its first epoch, so training epoch ``k`` (counted from
    1) is served the permutation of ``[seed, k]`` when the source starts at ``set_epoch(k - 1)``.

    Parameters
    ----------
    paths : sequence of str
        Slice PNG paths.
    labels : sequence of int, or array of shape (n, n_classes)
        Class index of each slice; or (multi-label) each slice's multi-hot row of tags.
    batch_size : int
        Slices per batch; the last batch of an epoch may be smaller.
    shuffle : bool
        Permute the samples every epoch (training) or keep the given order (validation, evaluation).
    seed : int
        Seed of the per-epoch permutations.
    slice_size : int
        Width and height of every slice.
    workers : int
        Loader threads Keras uses to prepare batches ahead of the model (``--loader-workers``).
    max_queue_size : int
        Batches prepared ahead at most; with ``workers``, bounds the loader's memory.
    augment : str or sequence of str
        Augmentations of the served slices (see the module's documentation); empty for none (the default, and
        what validation, evaluation and prediction use). Slice ``i`` of epoch ``e`` is augmented with
        ``numpy.random.default_rng([seed, e, i, 1])``.
    neighbours, following : sequence, optional
        For ``offset``: each slice's neighbour in its track and whether it follows (see
        :func:`neighbour_slices`, which :meth:`from_dataset` calls).
    """

    def __init__(
        self,
        paths,
        labels,
        *,
        batch_size: int = 32,
        shuffle: bool = False,
        seed: int = 0,
        slice_size: int = 128,
        workers: int = 1,
        max_queue_size: int = 10,
        augment: str | Sequence[str] = (),
        neighbours: Sequence[str] | None = None,
        following: Sequence[bool] | None = None,
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size} must be at least 1")
        if workers < 1:
            raise ParameterError(f"workers={workers} must be at least 1")
        self.paths = np.asarray(paths, dtype=object)
        labels = np.asarray(labels)
        # Multi-hot rows are kept as bytes (a row per slice) and served as float32 batches.
        self.labels = labels.astype(np.uint8 if labels.ndim == 2 else np.int32, copy=False)
        if self.paths.ndim != 1 or self.labels.ndim not in (1, 2) or self.paths.shape != self.labels.shape[:1]:
            raise ValueError(
                "paths must be 1-D and labels 1-D (class indices) or 2-D (multi-hot rows), one per path. "
                f"Received: {self.paths.shape} paths, {self.labels.shape} labels"
            )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.slice_size = int(slice_size)
        self.augment = augment_names(augment)
        if "offset" in self.augment:
            if neighbours is None:
                raise ParameterError("augment 'offset' needs each slice's neighbour in its track. Received: "
                                     "neighbours=None")
            self.neighbours = np.asarray(neighbours, dtype=object)
            self.following = np.ones(len(self.paths), dtype=bool) if following is None else np.asarray(following,
                                                                                                     dtype=bool)
            if self.neighbours.shape != self.paths.shape or self.following.shape != self.paths.shape:
                raise ValueError(f"neighbours and following must be 1-D, one per slice. Received: "
                                 f"{self.neighbours.shape} neighbours, {self.following.shape} following, "
                                 f"{self.paths.shape} paths")
        self._epoch = 0
        self._order = self._order_for_epoch(0)

    @classmethod
    def from_dataset(cls, info: DatasetInfo, split: str, **kwargs) -> SliceDataSource:
        """The slices of one split of a built data set; ``kwargs`` go to the constructor.

        Raises
        ------
        DatasetError
            The split has no slices.
        """
        paths, labels, _ = read_split(info, split)
        if len(paths) == 0:
            raise DatasetError(f"{info.root}: the {split} split has no slices; rebuild with other split ratios")
        if "offset" in augment_names(kwargs.get("augment")):
            kwargs["neighbours"], kwargs["following"] = neighbour_slices(info, split)
        return cls(paths, labels, slice_size=info.slice_size, **kwargs)

    @property
    def epoch(self) -> int:
        """The epoch whose order ``__getitem__`` serves."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Serve the order of ``epoch`` (a resumed run starts at its next epoch)."""
        self._epoch = int(epoch)
        self._order = self._order_for_epoch(self._epoch)

    def _order_for_epoch(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.paths))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.paths))

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} is out of range for {len(self)} batches")
        epoch, order = self._epoch, self._order
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        if not self.augment:
            return load_slices(self.paths[chosen], self.slice_size), self._batch_labels(chosen)
        return self._augmented(chosen, epoch), self._batch_labels(chosen)

    def _batch_labels(self, chosen: np.ndarray) -> np.ndarray:
        labels = self.labels[chosen]
        return labels.astype(np.float32) if labels.ndim == 2 else labels

    def _augmented(self, chosen: np.ndarray, epoch: int) -> np.ndarray:
        """The slices ``chosen`` (positions in the split) as epoch ``epoch`` serves them, augmented."""
        gray = load_gray(self.paths[chosen], self.slice_size)
        neighbours: list[np.ndarray | None] = [None] * len(chosen)
        if "offset" in self.augment:
            known = [position for position, sample in enumerate(chosen) if self.neighbours[sample]]
            loaded = load_gray(self.neighbours[chosen[known]], self.slice_size) if known else []
            for position, pixels in zip(known, loaded):
                neighbours[position] = pixels
        for position, sample in enumerate(chosen):
            rng = np.random.default_rng([self.seed, epoch, int(sample), _AUGMENT_STREAM])
            following = bool(self.following[sample]) if "offset" in self.augment else True
            gray[position] = augment_slice(gray[position], rng, self.augment, neighbour=neighbours[position],
                                           following=following)
        return to_model_input(gray[..., np.newaxis])

    def on_epoch_end(self) -> None:
        self.set_epoch(self._epoch + 1)

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Slices per class index (multi-label: slices with each tag)."""
        if self.labels.ndim == 2:
            return self.labels.sum(axis=0).astype(np.int64)
        return np.bincount(self.labels, minlength=n_classes)

    def __repr__(self) -> str:
        augmented = f", augment={','.join(self.augment)}" if self.augment else ""
        return (
            f"{type(self).__name__}({len(self.paths)} slices, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self._epoch}{augmented})"
        )


def explain_slice_error(err: BaseException, sources: Sequence[SliceDataSource],
                        dataset_dir: str | os.PathLike) -> str | None:
    """What to tell the user when reading a slice failed; None when ``err`` is not such a failure.

    Keras passes the errors of the batches it reads first through as they are, and wraps later ones in
    TensorFlow's errors, of which only the text survives; the :class:`DatasetError` of :func:`load_slices` is
    found in either. A build renders a track anew when a slice file is missing or has changed size, but a file
    damaged at the same size is only caught here: the message names it and says how to have it rendered again.

    Parameters
    ----------
    err : BaseException
        What reading the batches raised.
    sources : sequence of SliceDataSource
        The sources read, whose paths the damaged file is among.
    dataset_dir : str or os.PathLike
        The data set folder, as the user gave it.
    """
    if isinstance(err, DatasetError):
        reported = str(err)
    else:
        reported = next((line.split("DatasetError: ", 1)[1] for line in str(getattr(err, "message", err)).splitlines()
                         if "DatasetError: " in line), None)
        if reported is None:
            return None
    damaged = next((path for source in sources for path in source.paths if reported.startswith(f"{path}: ")), None)
    folder = f"its track folder {Path(damaged).parent}" if damaged else "the track folder that holds it"
    return (f"{reported}. To render it anew, delete {folder} and run 'genreslice build' again with the same "
            f"AUDIO_DIR and {dataset_dir} as DATASET_DIR; then run the same command again")

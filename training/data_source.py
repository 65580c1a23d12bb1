"""A lazy, indexable source of slice batches for Keras: only paths and labels live in memory.

The predecessor loaded every slice into RAM, then trained on partitions of the data (accuracy fell between
partitions). Here a ``keras.utils.PyDataset`` decodes one batch of PNGs per ``__getitem__``, so memory is
bounded by the batch size and the loader queue, whatever the size of the data set.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from genreslice.errors import ParameterError
from genreslice.pipeline.png import decode_gray_png, to_model_input
from genreslice.training.dataset import DatasetInfo, read_split
from genreslice.training.errors import DatasetError
from genreslice.training.tf_modules import keras


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
    batch = np.empty((len(paths), slice_size, slice_size, 1), dtype=np.float32)
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
        batch[position, :, :, 0] = pixels
    return to_model_input(batch, out=batch)


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
    labels : sequence of int
        Class index of each slice.
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
    ) -> None:
        super().__init__(workers=workers, use_multiprocessing=False, max_queue_size=max_queue_size)
        if batch_size < 1:
            raise ParameterError(f"batch_size={batch_size} must be at least 1")
        if workers < 1:
            raise ParameterError(f"workers={workers} must be at least 1")
        self.paths = np.asarray(paths, dtype=object)
        self.labels = np.asarray(labels, dtype=np.int32)
        if self.paths.ndim != 1 or self.paths.shape != self.labels.shape:
            raise ValueError(
                "paths and labels must be 1-D and of the same length. "
                f"Received: {self.paths.shape} paths, {self.labels.shape} labels"
            )
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.slice_size = int(slice_size)
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
        chosen = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return load_slices(self.paths[chosen], self.slice_size), self.labels[chosen]

    def on_epoch_end(self) -> None:
        self.set_epoch(self._epoch + 1)

    def class_counts(self, n_classes: int) -> np.ndarray:
        """Slices per class index."""
        return np.bincount(self.labels, minlength=n_classes)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self.paths)} slices, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self._epoch})"
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

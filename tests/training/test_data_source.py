"""The lazy data source: batches read from disk, per-epoch shuffles of the samples, pickling, bad files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from genreslice.pipeline.png import write_slice_png
from genreslice.training.data_source import SliceDataSource, load_slices
from genreslice.training.dataset import load_dataset_info, read_split
from genreslice.training.errors import DatasetError


def coded_slices(tmp_path, count: int, n_classes: int = 3) -> tuple[list[str], np.ndarray]:
    """Slices whose every pixel is the slice's number, so a batch says which files it holds."""
    paths, labels = [], []
    for number in range(count):
        path = tmp_path / f"slice {number:03d}.png"
        write_slice_png(np.full((128, 128), number, dtype=np.uint8), path)
        paths.append(str(path))
        labels.append(number % n_classes)
    return paths, np.array(labels)


def numbers_in(batch: np.ndarray) -> list[int]:
    return [int(round(value)) for value in batch[:, 0, 0, 0] * 255]


def test_length_shapes_dtype_and_values(tmp_path):
    paths, labels = coded_slices(tmp_path, 10)
    source = SliceDataSource(paths, labels, batch_size=4)
    assert len(source) == 3
    x, y = source[0]
    assert x.shape == (4, 128, 128, 1) and x.dtype == np.float32
    assert y.shape == (4,) and y.dtype == np.int32
    assert numbers_in(x) == [0, 1, 2, 3] and y.tolist() == [0, 1, 2, 0]
    assert np.allclose(x[3], 3 / 255) and x.min() >= 0.0 and x.max() <= 1.0
    last_x, last_y = source[2]
    assert last_x.shape == (2, 128, 128, 1) and numbers_in(last_x) == [8, 9] and last_y.tolist() == [2, 0]
    with pytest.raises(IndexError):
        source[3]


def test_pixels_scale_to_unit_interval(tmp_path):
    pixels = np.arange(128 * 128, dtype=np.uint32).reshape(128, 128) % 256
    write_slice_png(pixels.astype(np.uint8), tmp_path / "ramp.png")
    batch = load_slices([str(tmp_path / "ramp.png")])
    assert np.array_equal(batch[0, :, :, 0], pixels.astype(np.float32) / 255)
    assert batch[0].max() == 1.0 and batch[0].min() == 0.0


def test_shuffle_permutes_samples_anew_every_epoch(tmp_path):
    paths, labels = coded_slices(tmp_path, 20, n_classes=4)
    source = SliceDataSource(paths, labels, batch_size=6, shuffle=True, seed=7)

    def epoch_order() -> list[int]:
        order = []
        for index in range(len(source)):
            x, y = source[index]
            numbers = numbers_in(x)
            assert y.tolist() == [labels[n] for n in numbers]  # labels travel with their slices
            order += numbers
        return order

    orders = []
    for _ in range(3):
        order = epoch_order()
        assert sorted(order) == list(range(20))  # every sample exactly once per epoch
        orders.append(order)
        source.on_epoch_end()
    assert len({tuple(order) for order in orders}) == 3  # the samples, not just the batches, move
    first_batches = [set(order[:6]) for order in orders]
    assert first_batches[0] != first_batches[1]
    again = SliceDataSource(paths, labels, batch_size=6, shuffle=True, seed=7)
    assert numbers_in(again[0][0]) == orders[0][:6]  # same seed, same order
    again.set_epoch(2)
    assert numbers_in(again[0][0]) == orders[2][:6]  # a resumed run gets the order of its epoch
    other_seed = SliceDataSource(paths, labels, batch_size=6, shuffle=True, seed=8)
    assert numbers_in(other_seed[0][0]) != orders[0][:6]


def test_getitem_has_no_side_effects(tmp_path):
    paths, labels = coded_slices(tmp_path, 12)
    source = SliceDataSource(paths, labels, batch_size=5, shuffle=True, seed=1)
    first = [numbers_in(source[index][0]) for index in range(len(source))]
    second = [numbers_in(source[index][0]) for index in reversed(range(len(source)))][::-1]
    assert first == second and source.epoch == 0


def test_unshuffled_source_keeps_its_order_every_epoch(tmp_path):
    paths, labels = coded_slices(tmp_path, 7)
    source = SliceDataSource(paths, labels, batch_size=7)
    before = numbers_in(source[0][0])
    source.on_epoch_end()
    assert numbers_in(source[0][0]) == before == list(range(7))


def test_pickles_with_only_paths_and_labels(tmp_path):
    paths, labels = coded_slices(tmp_path, 9)
    source = SliceDataSource(paths, labels, batch_size=4, shuffle=True, seed=3, workers=2)
    source.on_epoch_end()
    data = pickle.dumps(source)
    assert len(data) < 5000  # paths and labels, no pixels (9 slices are 590 KB as float32)
    copy = pickle.loads(data)
    assert copy.epoch == 1 and len(copy) == len(source) and copy.workers == 2
    for index in range(len(source)):
        assert np.array_equal(copy[index][0], source[index][0])
        assert np.array_equal(copy[index][1], source[index][1])


def test_from_dataset_follows_the_sorted_class_list(small_dataset):
    info = load_dataset_info(small_dataset)
    assert info.classes == ("Blues", "Electronic", "Jazz", "Rock")
    source = SliceDataSource.from_dataset(info, "validation", batch_size=32)
    paths, labels, track_ids = read_split(info, "validation")
    assert len(source.paths) == 32 and len(set(track_ids)) == 4
    genres = [p.split("/")[-2][:2] for p in paths]  # synthetic track ids start with the genre's index
    assert [int(g) for g in genres] == labels.tolist()
    x, y = source[0]
    assert x.shape == (32, 128, 128, 1) and sorted(set(y.tolist())) == [0, 1, 2, 3]


def test_missing_and_bad_files_are_named(tmp_path):
    paths, labels = coded_slices(tmp_path, 4)
    (tmp_path / "slice 001.png").unlink()
    (tmp_path / "slice 002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    Image.new("L", (64, 128)).save(tmp_path / "slice 003.png")
    for position, reason in [(1, "No such file"), (2, "not a readable image"), (3, "must be 128x128")]:
        with pytest.raises(DatasetError, match=reason) as caught:
            load_slices([paths[position]])
        assert paths[position] in str(caught.value)


def test_constructor_refuses_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="one per path"):
        SliceDataSource(["a.png", "b.png"], [0])
    with pytest.raises(ValueError, match="one per path"):
        SliceDataSource(["a.png", "b.png"], np.zeros((3, 4)))  # multi-hot rows, one too many
    with pytest.raises(ValueError, match="batch_size=0"):
        SliceDataSource(["a.png"], [0], batch_size=0)

"""On-the-fly augmentation of the training slices: what each augmentation does to real slice files, and that it
is the same for a seed and an epoch and differs between epochs. That a training run augments its training
slices only, epoch by epoch across a resume, is tested with the cosine schedule in ``test_train.py``."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from genreslice.errors import ParameterError
from genreslice.pipeline import layout
from genreslice.pipeline.png import write_slice_png
from genreslice.training.data_source import (
    GAIN_LEVELS,
    MASK_BANDS,
    MASK_WIDTH_DIVISOR,
    SliceDataSource,
    apply_gain,
    augment_slice,
    mask_bands,
    neighbour_slices,
    offset_crop,
)
from genreslice.training.dataset import load_dataset_info
from genreslice.training.settings import TrainConfig, augment_names

SIZE = 16
#: Slices per track of the coded data set: its tracks are 3, 1 and 5 slices long.
TRACK_LENGTHS = {"t0": 3, "t1": 1, "t2": 5}


def column_code(track: int, column: int) -> int:
    """The gray level of every pixel of a column of the coded data set: which track, which column of it (20 to
    239: a gain of 16 levels either way is never clipped)."""
    return 20 + track * 70 + column


@pytest.fixture
def coded_dataset(tmp_path):
    """A data set of 16x16 slices in the build's layout whose every column says its track and its column in the
    track's spectrogram, so a crop says where it was cut; slices.csv lists each track's slices backwards (the
    ``index`` column, not the row order, says which slice follows which)."""
    root = tmp_path / "coded"
    rows = []
    for track, (track_id, length) in enumerate(TRACK_LENGTHS.items()):
        for index in reversed(range(length)):
            columns = [column_code(track, index * SIZE + c) for c in range(SIZE)]
            pixels = np.tile(np.array(columns, dtype=np.uint8), (SIZE, 1))
            (root / layout.track_slice_dir(track_id)).mkdir(parents=True, exist_ok=True)
            write_slice_png(pixels, root / layout.slice_path(track_id, index))
            rows.append(f"{layout.slice_path(track_id, index)},{track_id},Jazz,train,{index},{index * 0.3:.2f}")
    rows.append(f"{layout.slice_path('t0', 0)},t0,Jazz,validation,0,0.00")  # another split is not a neighbour
    (root / layout.SLICES_CSV).write_text(",".join(layout.SLICE_COLUMNS) + "\n" + "\n".join(rows) + "\n")
    meta = {"classes": ["Jazz", "Rock"], "spectrogram": {"slice_size": SIZE}}
    (root / layout.DATASET_JSON).write_text(json.dumps(meta))
    return root


def source_of(dataset, augment, **options) -> SliceDataSource:
    return SliceDataSource.from_dataset(load_dataset_info(dataset), "train", batch_size=9, augment=augment, **options)


def gray(batch: np.ndarray) -> np.ndarray:
    return np.rint(batch[..., 0] * 255).astype(int)


def test_neighbours_follow_the_index_within_each_track_and_split(coded_dataset):
    info = load_dataset_info(coded_dataset)
    neighbours, following = neighbour_slices(info, "train")
    names = [path.rsplit("/", 1)[-1] if path else "" for path in neighbours]
    # rows: t0 2,1,0; t1 0; t2 4,3,2,1,0 (slices.csv order)
    assert names == ["t0_0001.png", "t0_0002.png", "t0_0001.png", "", "t2_0003.png", "t2_0004.png", "t2_0003.png",
                     "t2_0002.png", "t2_0001.png"]
    assert following.tolist() == [False, True, True, True, False, True, True, True, True]


def test_an_offset_crop_is_the_two_neighbouring_slices_side_by_side_cut_at_the_offset(coded_dataset):
    source = source_of(coded_dataset, "offset", seed=3)
    shifts = []
    for epoch in range(6):
        source.set_epoch(epoch)
        x, _ = source[0]
        for position, (track_id, index) in enumerate([("t0", 2), ("t0", 1), ("t0", 0), ("t1", 0), ("t2", 4),
                                                      ("t2", 3), ("t2", 2), ("t2", 1), ("t2", 0)]):
            track = list(TRACK_LENGTHS).index(track_id)
            pixels = gray(x)[position]
            assert (pixels == pixels[0]).all()  # whole columns moved
            start = pixels[0, 0] - column_code(track, 0)
            # 16 consecutive columns of the same track's spectrogram, within the slice and its neighbour
            assert pixels[0].tolist() == [column_code(track, start + c) for c in range(SIZE)]
            last = index == TRACK_LENGTHS[track_id] - 1
            if TRACK_LENGTHS[track_id] == 1:
                assert start == 0  # no neighbour: the slice itself
            elif last:
                assert (index - 1) * SIZE < start <= index * SIZE  # cut from the previous slice and this one
            else:
                assert index * SIZE <= start < (index + 1) * SIZE  # from this one and the next
            shifts.append(start - index * SIZE)
    assert len(set(shifts)) > 10  # the offsets vary


def test_offset_crop_concatenates_at_the_offset():
    first, second = np.full((4, 8), 1, np.uint8), np.full((4, 8), 2, np.uint8)
    first[:, 5] = 9
    np.testing.assert_array_equal(offset_crop(first, second, 5), np.concatenate([first, second], axis=1)[:, 5:13])
    np.testing.assert_array_equal(offset_crop(second, first, -3), np.concatenate([first, second], axis=1)[:, 5:13])
    np.testing.assert_array_equal(offset_crop(first, second, 0), first)
    with pytest.raises(ParameterError, match="shift=8 must be between -7 and 7"):
        offset_crop(first, second, 8)


def test_gain_shifts_every_lit_pixel_by_one_amount_and_keeps_silence_black(coded_dataset):
    pixels = np.array([[0, 1, 10, 128], [250, 255, 0, 30]], dtype=np.uint8)
    np.testing.assert_array_equal(apply_gain(pixels, 12), [[0, 13, 22, 140], [255, 255, 0, 42]])
    np.testing.assert_array_equal(apply_gain(pixels, -12), [[0, 0, 0, 116], [238, 243, 0, 18]])
    source = source_of(coded_dataset, "gain", seed=5)
    plain = gray(source_of(coded_dataset, ())[0][0])
    gains = set()
    for epoch in range(4):
        source.set_epoch(epoch)
        for before, after in zip(plain, gray(source[0][0])):
            difference = set((after - before).ravel().tolist())
            assert len(difference) == 1 and abs(difference.pop()) <= GAIN_LEVELS  # none clipped in this data set
            gains.add(int(after[0, 0] - before[0, 0]))
    assert len(gains) > 5


def test_specaugment_zeroes_whole_bands_of_rows_and_columns_of_the_stated_widths(coded_dataset):
    widest = SIZE // MASK_WIDTH_DIVISOR
    rng = np.random.default_rng(0)
    drawn = [mask_bands(rng, SIZE) for _ in range(200)]
    assert all(len(bands) == MASK_BANDS for bands in drawn)
    assert {width for bands in drawn for _, width in bands} == set(range(widest + 1))
    assert all(0 <= start <= SIZE - width for bands in drawn for start, width in bands)

    source = source_of(coded_dataset, "specaugment", seed=1)
    plain = gray(source_of(coded_dataset, ())[0][0])
    masked_rows = masked_columns = 0
    for epoch in range(5):
        source.set_epoch(epoch)
        for before, after in zip(plain, gray(source[0][0])):
            zero_rows = np.flatnonzero((after == 0).all(axis=1))
            zero_columns = np.flatnonzero((after == 0).all(axis=0))
            assert len(zero_rows) <= MASK_BANDS * widest and len(zero_columns) <= MASK_BANDS * widest
            kept = np.ones_like(after, dtype=bool)
            kept[zero_rows, :] = kept[:, zero_columns] = False
            assert (after[~kept] == 0).all() and np.array_equal(after[kept], before[kept])  # the rest untouched
            masked_rows, masked_columns = masked_rows + len(zero_rows), masked_columns + len(zero_columns)
    assert masked_rows > 0 and masked_columns > 0


def test_the_same_seed_and_epoch_give_the_same_slices_and_another_epoch_others(coded_dataset):
    everything = "offset,gain,specaugment"
    source = source_of(coded_dataset, everything, seed=11, shuffle=True)
    source.set_epoch(4)
    first = source[0][0]
    again = source_of(coded_dataset, everything, seed=11, shuffle=True)
    again.set_epoch(4)  # a resumed run starts its source at the epoch it continues
    np.testing.assert_array_equal(again[0][0], first)
    np.testing.assert_array_equal(source[0][0], first)  # no side effects
    again.on_epoch_end()
    assert not np.array_equal(again[0][0], first)
    other_seed = source_of(coded_dataset, everything, seed=12, shuffle=True)
    other_seed.set_epoch(4)
    assert not np.array_equal(np.sort(other_seed[0][0], axis=0), np.sort(first, axis=0))
    # the files never change
    assert gray(source_of(coded_dataset, ())[0][0])[0, 0, 0] == column_code(0, 2 * SIZE)


def test_a_slice_is_augmented_the_same_whatever_batch_it_is_in(coded_dataset):
    small = source_of(coded_dataset, "gain,specaugment", seed=2)
    large = SliceDataSource(small.paths, small.labels, batch_size=4, slice_size=SIZE, seed=2,
                            augment=("specaugment", "gain"))
    np.testing.assert_array_equal(np.concatenate([large[0][0], large[1][0], large[2][0]]), small[0][0])


def test_augment_slice_draws_only_what_is_asked():
    pixels = np.full((SIZE, SIZE), 100, np.uint8)
    assert augment_slice(pixels, np.random.default_rng(0), ()) is pixels
    alone = augment_slice(pixels, np.random.default_rng(0), ("gain",))
    assert len(set(alone.ravel().tolist())) == 1 and alone[0, 0] != 100


@pytest.mark.parametrize("value, names", [
    ("none", ()), ("", ()), (None, ()), ("specaugment,gain,offset", ("offset", "gain", "specaugment")),
    (" Gain , gain ", ("gain",)), (["specaugment"], ("specaugment",)),
])
def test_augment_lists_are_read_in_the_order_they_apply(value, names):
    assert augment_names(value) == names
    assert TrainConfig(augment=value).augment == names


@pytest.mark.parametrize("value, message", [
    ("mixup", "'mixup' is not one of offset, gain, specaugment"),
    ("none,gain", "'none' cannot be listed with other augmentations"),
])
def test_unknown_augmentations_are_refused(value, message):
    with pytest.raises(ParameterError, match=message):
        TrainConfig(augment=value)


def test_offset_needs_the_neighbours(tmp_path):
    with pytest.raises(ParameterError, match="augment 'offset' needs each slice's neighbour"):
        SliceDataSource(["a.png"], [0], augment="offset")


def test_an_augmenting_source_pickles_with_its_neighbours(coded_dataset):
    source = source_of(coded_dataset, "offset,gain,specaugment", seed=9)
    source.set_epoch(3)
    copy = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(copy[0][0], source[0][0])
    assert "augment=offset,gain,specaugment" in repr(copy)

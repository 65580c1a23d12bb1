"""Fingerprints of spectrograms: copies of one recording alike, distinct songs of one genre and tempo not; and
finding the groups of copies among many fingerprints."""
from __future__ import annotations

import numpy as np
import pytest

from genreslice.pipeline.audio_jobs import track_fingerprint
from genreslice.pipeline.duplicates import copy_sets, near_copies
from genreslice.pipeline.fingerprint import MAX_FRAMES, NEAR_COPY_SIMILARITY, Fingerprint, similarity, slices_needed
from genreslice.pipeline.png import decode_gray_png, write_slice_png
from genreslice.pipeline.spectrogram import SpectrogramSpec, measure_columns_per_second, render_slices
from tests.helpers import music, near_copy, synth

#: The ways a library holds one recording twice: (name, effects, MP3 bitrate or None).
COPIES = [
    ("mp3 64 kbps at 16 kHz, 3 dB quieter", ("rate", "16000", "gain", "-3"), 64),
    ("mp3 320 kbps at 48 kHz, stereo, 1.5 s trimmed", ("rate", "48000", "channels", "2", "trim", "1.5"), 320),
    ("wav 4 dB louder with 1.2 s of silence before it", ("gain", "4", "pad", "1.2", "0"), None),
    ("mp3 96 kbps at 32 kHz, 2 s trimmed, 2 dB quieter", ("rate", "32000", "trim", "2", "gain", "-2"), 96),
]


@pytest.fixture(scope="module")
def fingerprints(tmp_path_factory, sox_info):
    """Fingerprints of three distinct songs of one genre and tempo, the copies of the first, and a steady tone."""
    root = tmp_path_factory.mktemp("fingerprints")
    spec = SpectrogramSpec()
    rate = measure_columns_per_second(spec, sox_path=sox_info.path)
    paths = {f"song{seed}": music(root / f"song{seed}.wav", seed) for seed in range(3)}
    for index, (_, effects, bitrate) in enumerate(COPIES):
        paths[f"copy{index}"] = near_copy(paths["song0"], root / f"copy{index}.{'mp3' if bitrate else 'wav'}",
                                          *effects, bitrate=bitrate)
    paths["tone"] = synth(root / "tone.wav", 14, "sine", "440")
    found = {}
    for name, path in paths.items():
        slices = render_slices(path, spec, sox_path=sox_info.path).slices
        found[name] = track_fingerprint(slices, spec, rate)
    found["slices of song0"] = render_slices(paths["song0"], spec, sox_path=sox_info.path).slices
    return found


@pytest.mark.parametrize("index", range(len(COPIES)), ids=[name for name, _, _ in COPIES])
def test_copies_of_a_recording_are_alike(fingerprints, index):
    assert similarity(fingerprints["song0"], fingerprints[f"copy{index}"]) >= NEAR_COPY_SIMILARITY + 0.05


def test_distinct_songs_of_one_genre_and_tempo_are_not(fingerprints):
    for first, second in (("song0", "song1"), ("song0", "song2"), ("song1", "song2")):
        assert similarity(fingerprints[first], fingerprints[second]) < NEAR_COPY_SIMILARITY - 0.1
    assert similarity(fingerprints["song0"], fingerprints["song0"]) == 1.0


def test_a_steady_tone_is_not_compared(fingerprints):
    """A tone's bits say nothing (every steady tone would match every other); music's do."""
    assert not fingerprints["tone"].comparable
    assert all(fingerprints[f"song{seed}"].comparable for seed in range(3))
    assert near_copies({"a": fingerprints["tone"], "b": fingerprints["tone"]}) == []


def test_a_fingerprint_survives_its_journal_record(fingerprints):
    original = fingerprints["copy1"]
    record = original.to_json()
    restored = Fingerprint.from_json(record)
    assert np.array_equal(restored.bits, original.bits) and restored.comparable == original.comparable
    assert np.allclose(restored.profile, original.profile, atol=0.01)
    assert similarity(restored, fingerprints["song0"]) == similarity(original, fingerprints["song0"])
    for damaged in ({**record, "version": 99}, {**record, "bits": "not base64!"}, {**record, "profile": [1.0]},
                    {**record, "active": 7}, "text", None):
        assert Fingerprint.from_json(damaged) is None


def test_the_fingerprint_reads_only_the_first_slices(fingerprints, tmp_path):
    """The fingerprint of a track is a function of its first slices (32 s): the same from the worker's slices as
    from the PNGs a later build reads back, whatever follows them."""
    spec, rate = SpectrogramSpec(), fingerprints["song0"].frames_per_second * 4
    long_track = np.concatenate([fingerprints["slices of song0"]] * 3)  # 42 s
    needed = slices_needed(rate, spec.slice_size)
    assert needed < len(long_track)
    first = track_fingerprint(long_track, spec, rate)
    read_back = np.stack([decode_gray_png((tmp_path / f"{index}.png").read_bytes()) for index in range(needed)
                          if write_slice_png(long_track[index], tmp_path / f"{index}.png")])
    for other in (track_fingerprint(read_back, spec, rate), track_fingerprint(long_track[:needed], spec, rate)):
        assert np.array_equal(first.bits, other.bits) and np.array_equal(first.profile, other.profile)
    assert len(first.bits) == MAX_FRAMES


def test_near_copies_groups_linked_tracks_whatever_their_order(fingerprints):
    names = ["song0", "song1", "song2", "copy0", "copy1", "copy2", "copy3", "tone"]
    chosen = {f"{name}.wav": fingerprints[name] for name in names}
    found = near_copies(chosen)
    assert [paths for paths, _ in found] == [("copy0.wav", "copy1.wav", "copy2.wav", "copy3.wav", "song0.wav")]
    assert all(NEAR_COPY_SIMILARITY <= value <= 1.0 for value in found[0][1])
    assert near_copies(dict(reversed(list(chosen.items())))) == found


def test_exact_and_near_copies_sharing_a_file_are_one_set():
    sets = copy_sets([("d" * 64, ("a.wav", "b.wav")), ("e" * 64, ("x.wav", "y.wav"))],
                     [(("b.wav", "c.mp3"), (0.9, 0.9))])
    assert [(found.paths, found.kind) for found in sets] == [(("a.wav", "b.wav", "c.mp3"), "near"),
                                                            (("x.wav", "y.wav"), "exact")]
    assert sets[0].similarity == (1.0, 1.0, 0.9) and sets[1].digest == "e" * 64
    # The identical files among a near set keep their digest: a dropped one is "the same file", listed with it.
    group = sets[0].decided("drop-extra", ("a.wav", "c.mp3"))
    assert (group.digest_of("a.wav"), group.digest_of("c.mp3"), group.similarity_of("c.mp3")) == ("d" * 64, "", 0.9)


@pytest.mark.parametrize("columns_per_second", [50.1136, 100.227, 20.0091, 33.3])
def test_a_computed_fingerprint_is_the_one_its_journal_record_gives_back(fingerprints, columns_per_second):
    """A run that computes a fingerprint and one that reads it from the journal compare the same numbers, whatever
    the column rate (a frame rate rounded differently would never match the other's)."""
    spec = SpectrogramSpec()
    slices = np.concatenate([fingerprints["slices of song0"]] * 3)  # long enough at every rate
    computed = track_fingerprint(slices, spec, columns_per_second)
    assert computed.comparable
    journaled = Fingerprint.from_json(computed.to_json())
    assert journaled.frames_per_second == computed.frames_per_second and journaled.pairs == computed.pairs
    assert np.array_equal(journaled.bits, computed.bits) and np.array_equal(journaled.profile, computed.profile)
    assert similarity(computed, journaled) == 1.0

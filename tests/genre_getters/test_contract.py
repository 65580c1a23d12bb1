"""Every registered label source honours the contract the build relies on."""
from __future__ import annotations

import json
import pickle
import random

import pytest
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis

from genreslice.genre_getters import LABEL_SOURCES, SPLITS, LabelSource, TrackLabel
from tests.helpers import fixture_source, synth, tag_id3


@pytest.fixture(scope="module")
def tagged_files(tmp_path_factory, sox_info):
    folder = tmp_path_factory.mktemp("contract")
    files = [tag_id3(synth(folder / "a.mp3", 1.0), genre="Rock", artist="X"), synth(folder / "a.wav", 1.0)]
    for kind, name in ((FLAC, "a.flac"), (OggVorbis, "a.ogg")):
        path = synth(folder / name, 1.0)
        tags = kind(path)
        tags["genre"], tags["artist"] = "Rock", "X"
        tags.save()
        files.append(path)
    return files


@pytest.mark.parametrize("name", sorted(LABEL_SOURCES))
def test_source_shape(name, tmp_path):
    source = fixture_source(name, tmp_path)
    assert isinstance(source, LabelSource) and source.name == name
    assert isinstance(source.reads_audio, bool)
    assert list(source.taxonomy.genres) == sorted(set(source.taxonomy.genres)) and source.taxonomy.genres
    assert all(source.taxonomy.top_level(genre) == genre for genre in source.taxonomy.genres)
    assert source.metadata_problems == ()
    json.dumps(source.settings())
    if source.reads_audio:
        assert pickle.loads(pickle.dumps(source)).settings() == source.settings()  # it travels to workers
    assert source.missing_audio(set()) == sorted(source.missing_audio(set()), key=lambda t: (len(t), t))


@pytest.mark.parametrize("name", sorted(LABEL_SOURCES))
def test_labels_are_in_the_taxonomy_and_splits_official(name, tmp_path, tagged_files):
    source = fixture_source(name, tmp_path)
    rel_paths = ["000/000002.mp3", "000/000020.mp3", "000/000134.mp3", "41/241.mp3", "51/851.low.mp3",
                 "11/121111.mp3", "not/listed.mp3", "../41/241.mp3", "/41/241.mp3", "-rf.mp3"]
    labels = [source.label(tagged_files[0], rel) for rel in rel_paths] + \
        [source.label(path, path.name) for path in tagged_files]
    assert any(label.genre for label in labels)
    for label in labels:
        assert (label.genre in source.taxonomy.genres) if label.genre else label.reason
        assert label.split in (None, *SPLITS)
        assert label.genre is None or not label.unlisted


@pytest.mark.parametrize("name", sorted(LABEL_SOURCES))
def test_damaged_files_never_raise(name, tagged_files, tmp_path):
    """Seeded mutations of real tagged files (flipped header bytes, truncation): always a label, never an
    exception, since one bad file must not stop a build."""
    source = fixture_source(name, tmp_path / "metadata")
    rng = random.Random(1)
    target = tmp_path / "mutated"
    for original in tagged_files:
        base = original.read_bytes()
        target = target.with_suffix(original.suffix)
        for _ in range(300):
            data = bytearray(base[: rng.choice([len(base), rng.randrange(1, 4000)])])
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(0, min(len(data), 600))] = rng.randrange(256)
            target.write_bytes(bytes(data))
            label = source.label(target, target.name)
            assert isinstance(label, TrackLabel)
            assert label.genre or label.reason

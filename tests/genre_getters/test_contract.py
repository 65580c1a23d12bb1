"""Every registered label source honours the contract the build relies on."""
from __future__ import annotations

import json
import pickle
import random

import pytest
from mutagen.flac import FLAC
from mutagen.oggvorbis import OggVorbis

from genre_getters import LABEL_SOURCES, LabelSource, TrackLabel, make_label_source
from tests.audio import synth, tag_id3


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
def test_source_shape(name):
    source = make_label_source(name)
    assert isinstance(source, LabelSource) and source.name == name
    json.dumps(source.settings())
    assert pickle.loads(pickle.dumps(source)).settings() == source.settings()  # it travels to workers


@pytest.mark.parametrize("name", sorted(LABEL_SOURCES))
def test_damaged_files_never_raise(name, tagged_files, tmp_path):
    """Seeded mutations of real tagged files (flipped header bytes, truncation): always a label, never an
    exception, since one bad file must not stop a build."""
    source = make_label_source(name)
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

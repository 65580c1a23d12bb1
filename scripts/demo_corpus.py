"""A small labelled music corpus, synthesised offline, for ``genreslice demo`` and the end-to-end tests.

Four genres that differ the way music does, each in several respects at once, with variation within a genre:

============  =========  ==============================  =============================  ==========================
genre         tempo      rhythm and percussion           harmony and bass               lead and timbre
============  =========  ==============================  =============================  ==========================
Electronic    120-132    four-on-the-floor kick, open    minor loops, sawtooth bass in  square or saw arpeggio,
                         hi-hat off-beats, claps         driving eighths                bright and steady
Rock          100-150    kick 1 and 3, snare 2 and 4,    power chords strummed in       distorted (clipped) guitar,
                         closed hi-hat eighths           eighths, root bass             optional lead line
Jazz          90-180     swung ride cymbal, soft         seventh chords on a piano,     sax-like line with
                         brushed snare, no kick          walking upright bass           vibrato (some songs)
Folk          70-110     no drums                        major triads picked on a       whistle-like melody or
                                                         plucked string                 none; soft and sparse
============  =========  ==============================  =============================  ==========================

Key, tempo, chord progression, melody, instrument choice and mix levels are drawn per song from a seeded
generator, so a given seed always makes the same files.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GENRES = ("Electronic", "Folk", "Jazz", "Rock")
RATE = 22050


@dataclass(frozen=True)
class DemoSong:
    """One generated file and its tags."""

    path: Path
    genre: str
    artist: str
    title: str


def _envelope(n: int, attack: float, decay: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(n) / rate
    return np.minimum(1.0, t / max(attack, 1e-4)) * np.exp(-t / decay)


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


class _Track:
    """A mono buffer that notes and drum hits are added into."""

    def __init__(self, seconds: float, rate: int = RATE) -> None:
        self.rate = rate
        self.audio = np.zeros(int(seconds * rate), dtype=np.float64)

    def add(self, start_s: float, sound: np.ndarray, gain: float = 1.0) -> None:
        start = int(start_s * self.rate)
        if start >= len(self.audio):
            return
        end = min(len(self.audio), start + len(sound))
        self.audio[start:end] += gain * sound[: end - start]


def _tone(freq: float, seconds: float, *, harmonics: tuple[float, ...], attack: float, decay: float,
          vibrato: float = 0.0) -> np.ndarray:
    """Additive synthesis: ``harmonics[k]`` is the amplitude of partial ``k + 1``; optional 5.5 Hz vibrato."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    phase = 2 * np.pi * freq * t
    if vibrato:
        phase += vibrato * np.sin(2 * np.pi * 5.5 * t) * (freq / 100)
    wave_ = sum(amplitude * np.sin((k + 1) * phase) for k, amplitude in enumerate(harmonics))
    return wave_ * _envelope(n, attack, decay)


def _saw(freq: float, seconds: float, *, attack: float, decay: float, brightness: int = 12) -> np.ndarray:
    return _tone(freq, seconds, harmonics=tuple(1 / k for k in range(1, brightness + 1)), attack=attack, decay=decay)


def _square(freq: float, seconds: float, *, attack: float, decay: float) -> np.ndarray:
    return _tone(freq, seconds, harmonics=tuple(1 / k if k % 2 else 0.0 for k in range(1, 12)), attack=attack,
                 decay=decay)


def _pluck(freq: float, seconds: float, rng: np.random.Generator, *, damping: float = 0.996) -> np.ndarray:
    """A plucked string (Karplus-Strong): noise in a delay line of one period, averaged as it circulates."""
    n = int(seconds * RATE)
    period = max(2, int(round(RATE / freq)))
    out = np.empty(n + period + 1)
    out[: period + 1] = rng.uniform(-1, 1, period + 1)
    position = period + 1
    while position < len(out):
        # y[i] = damping * (y[i - period] + y[i - period - 1]) / 2, one period at a time: a block only reads
        # samples computed before it.
        end = min(len(out), position + period)
        out[position:end] = damping * 0.5 * (out[position - period : end - period]
                                             + out[position - period - 1 : end - period - 1])
        position = end
    return out[:n]


def _kick() -> np.ndarray:
    n = int(0.35 * RATE)
    t = np.arange(n) / RATE
    freq = 45 + 90 * np.exp(-t / 0.04)
    return np.sin(2 * np.pi * np.cumsum(freq) / RATE) * np.exp(-t / 0.12)


def _snare(rng: np.random.Generator, *, soft: bool = False) -> np.ndarray:
    n = int(0.25 * RATE)
    t = np.arange(n) / RATE
    noise = rng.normal(0, 1, n)
    noise = np.diff(noise, prepend=0.0)  # brighter
    body = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
    decay = 0.09 if soft else 0.06
    return (0.6 * noise * np.exp(-t / decay) + 0.5 * body) * (0.35 if soft else 1.0)


def _hat(rng: np.random.Generator, *, open_: bool = False) -> np.ndarray:
    n = int((0.3 if open_ else 0.06) * RATE)
    t = np.arange(n) / RATE
    noise = np.diff(np.diff(rng.normal(0, 1, n + 2)))
    return noise * np.exp(-t / (0.08 if open_ else 0.015)) * 0.25


def _ride(rng: np.random.Generator, tuning: float = 1.0) -> np.ndarray:
    n = int(0.5 * RATE)
    t = np.arange(n) / RATE
    metallic = sum(np.sin(2 * np.pi * f * tuning * t + rng.uniform(0, 6)) for f in (3150, 4730, 5870, 7320))
    return (0.15 * metallic + 0.1 * np.diff(rng.normal(0, 1, n), prepend=0.0)) * np.exp(-t / 0.25) * 0.3


MINOR_LOOPS = ((0, 8, 3, 10), (0, 5, 8, 7), (0, 10, 8, 7), (0, 3, 5, 3))
MAJOR_LOOPS = ((0, 5, 7, 0), (0, 7, 9, 5), (0, 5, 0, 7), (0, 9, 5, 7))
JAZZ_LOOPS = ((2, 7, 0, 0), (0, 9, 2, 7), (5, 10, 3, 8), (0, 5, 10, 3))


def _electronic(rng: np.random.Generator, seconds: float) -> np.ndarray:
    bpm = rng.uniform(120, 132)
    beat = 60 / bpm
    root = 45 + int(rng.integers(0, 12))
    loop = MINOR_LOOPS[rng.integers(len(MINOR_LOOPS))]
    lead = _square if rng.random() < 0.5 else _saw
    arpeggio = rng.permutation([0, 3, 7, 12])
    track = _Track(seconds)
    kick, clap = _kick(), _snare(rng)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + loop[(index // 4) % 4]
        track.add(start, kick, 0.9)
        track.add(start + beat / 2, _hat(rng, open_=True), 0.8)
        if index % 4 in (1, 3) and rng.random() < 0.8:
            track.add(start, clap, 0.35)
        for half in (0, 1):
            track.add(start + half * beat / 2, _saw(_midi_hz(chord - 12), beat / 2, attack=0.005, decay=0.12,
                                                    brightness=8), 0.35)
        for step in range(4):
            note = chord + 12 + arpeggio[(index * 4 + step) % 4]
            track.add(start + step * beat / 4, lead(_midi_hz(note), beat / 4, attack=0.003, decay=0.08), 0.12)
    return track.audio


def _rock(rng: np.random.Generator, seconds: float) -> np.ndarray:
    bpm = rng.uniform(100, 150)
    beat = 60 / bpm
    root = 40 + int(rng.integers(0, 10))
    loop = (MAJOR_LOOPS + MINOR_LOOPS)[rng.integers(8)]
    drive = rng.uniform(3, 8)
    has_lead = rng.random() < 0.5
    track = _Track(seconds)
    kick, snare = _kick(), _snare(rng)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + loop[(index // 4) % 4]
        track.add(start, kick if index % 2 == 0 else snare, 0.9 if index % 2 == 0 else 0.7)
        for half in (0, 1):
            track.add(start + half * beat / 2, _hat(rng), 0.6)
            power = sum(_saw(_midi_hz(chord + interval), beat / 2, attack=0.004, decay=0.6, brightness=10)
                        for interval in (0, 7, 12))
            track.add(start + half * beat / 2, np.tanh(drive * power) * 0.25, 1.0)
        track.add(start, _saw(_midi_hz(chord - 12), beat, attack=0.005, decay=0.3, brightness=5), 0.3)
        if has_lead and index % 2 == 0:
            note = chord + 24 + int(rng.choice([0, 2, 4, 7, 9]))
            track.add(start, np.tanh(3 * _saw(_midi_hz(note), beat * 2, attack=0.01, decay=0.8)) * 0.12)
    return track.audio


def _jazz(rng: np.random.Generator, seconds: float) -> np.ndarray:
    bpm = rng.uniform(90, 180)
    beat = 60 / bpm
    swing = rng.uniform(0.6, 0.7)
    root = 48 + int(rng.integers(0, 12))
    loop = JAZZ_LOOPS[rng.integers(len(JAZZ_LOOPS))]
    has_sax = rng.random() < 0.6
    cymbal = rng.uniform(0.8, 1.2)  # every drummer's ride rings differently
    track = _Track(seconds)
    piano = (1.0, 0.5, 0.25, 0.12, 0.06)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        bar = (index // 4) % 4
        chord = root + loop[bar]
        track.add(start, _ride(rng, cymbal), 0.8)
        if index % 2 == 1:
            track.add(start + swing * beat, _ride(rng, cymbal), 0.5)
            track.add(start, _snare(rng, soft=True), 0.5)
        walk = chord - 24 + int(rng.choice([0, 3, 4, 7, 10, 12]))
        track.add(start, _tone(_midi_hz(walk), beat, harmonics=(1.0, 0.3, 0.1), attack=0.01, decay=0.25), 0.5)
        if index % 4 in (0, 2) or rng.random() < 0.25:
            for interval in (0, 4, 7, 10, 14):
                track.add(start + (swing * beat if rng.random() < 0.3 else 0),
                          _tone(_midi_hz(chord + interval), beat * 1.5, harmonics=piano, attack=0.004, decay=0.5),
                          0.08)
        if has_sax and rng.random() < 0.7:
            note = chord + 12 + int(rng.choice([0, 2, 3, 5, 7, 9, 10]))
            length = beat * (swing if index % 2 == 0 else 1 - swing) * 2
            track.add(start, _tone(_midi_hz(note), length, harmonics=(1.0, 0.7, 0.5, 0.35, 0.2, 0.1), attack=0.03,
                                   decay=0.6, vibrato=0.6), 0.12)
    return track.audio


def _folk(rng: np.random.Generator, seconds: float) -> np.ndarray:
    bpm = rng.uniform(70, 110)
    beat = 60 / bpm
    root = 50 + int(rng.integers(0, 10))
    loop = MAJOR_LOOPS[rng.integers(len(MAJOR_LOOPS))]
    pattern = rng.permutation([0, 4, 7, 12, 16])
    has_whistle = rng.random() < 0.6
    octave = 12 if rng.random() < 0.3 else 0  # a mandolin an octave up, or a guitar
    track = _Track(seconds)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + loop[(index // 4) % 4]
        for step in range(2):
            note = chord + octave + pattern[(index * 2 + step) % len(pattern)]
            track.add(start + step * beat / 2, _pluck(_midi_hz(note), beat * 2, rng), 0.35)
        if has_whistle and index % 2 == 0 and rng.random() < 0.8:
            note = chord + 24 + int(rng.choice([0, 2, 4, 7, 9]))
            track.add(start, _tone(_midi_hz(note), beat * 2, harmonics=(1.0, 0.08), attack=0.08, decay=1.5,
                                   vibrato=0.3), 0.12)
    return track.audio


def _hip_hop(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Boom-bap: kick on 1 and the "and" of 2, snare on 2 and 4, swung sixteenth hats, a long sub bass, sparse
    minor piano chords. Shares its kick, snare and hats with Rock and Electronic, its piano with Jazz."""
    bpm = rng.uniform(82, 98)
    beat = 60 / bpm
    swing = rng.uniform(0.55, 0.65)
    root = 36 + int(rng.integers(0, 12))
    loop = MINOR_LOOPS[rng.integers(len(MINOR_LOOPS))]
    track = _Track(seconds)
    kick, snare = _kick(), _snare(rng)
    piano = (1.0, 0.4, 0.2, 0.1)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + loop[(index // 4) % 4]
        if index % 2 == 0:
            track.add(start, kick, 1.0)
            track.add(start + 1.5 * beat, kick, 0.7)
            track.add(start, _tone(_midi_hz(chord), beat * 1.8, harmonics=(1.0, 0.15), attack=0.01, decay=0.9),
                      0.45)
        else:
            track.add(start, snare, 0.8)
        for step in range(2):
            offset = (0 if step == 0 else swing) * beat
            track.add(start + offset, _hat(rng), 0.5 if step == 0 else 0.3)
        if index % 4 == 0 and rng.random() < 0.7:
            for interval in (12, 15, 19):
                track.add(start, _tone(_midi_hz(chord + interval), beat * 2, harmonics=piano, attack=0.005,
                                       decay=0.7), 0.07)
    return track.audio


def _blues(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A twelve-bar shuffle: swung eighths of dominant-seventh chords on a lightly overdriven guitar, a bass on the
    beat, kick and snare with a swung ride or hat. Shares its swing with Jazz and its guitar with Rock."""
    bpm = rng.uniform(80, 125)
    beat = 60 / bpm
    swing = rng.uniform(0.62, 0.7)
    root = 40 + int(rng.integers(0, 10))
    drive = rng.uniform(1.2, 2.5)
    twelve_bars = (0, 0, 0, 0, 5, 5, 0, 0, 7, 5, 0, 7)
    cymbal = _ride if rng.random() < 0.5 else None
    track = _Track(seconds)
    kick, snare = _kick(), _snare(rng, soft=rng.random() < 0.5)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + twelve_bars[(index // 4) % 12]
        track.add(start, kick if index % 2 == 0 else snare, 0.7)
        for step, length in ((0.0, swing), (swing, 1 - swing)):
            track.add(start + step * beat, cymbal(rng) if cymbal else _hat(rng), 0.4)
            shape = (0, 7, 10) if (index + (step > 0)) % 2 == 0 else (0, 7, 9)
            strum = sum(_saw(_midi_hz(chord + 12 + interval), length * beat, attack=0.004, decay=0.3, brightness=8)
                        for interval in shape)
            track.add(start + step * beat, np.tanh(drive * strum) * 0.2)
        track.add(start, _tone(_midi_hz(chord - 12 + (0, 4, 7, 9)[index % 4]), beat,
                               harmonics=(1.0, 0.35, 0.1), attack=0.01, decay=0.3), 0.45)
    return track.audio


STYLES = {"Electronic": _electronic, "Folk": _folk, "Jazz": _jazz, "Rock": _rock}
#: The harder corpus of ``make bench-models``: two more genres, each sharing instruments with the others.
HARD_STYLES = {**STYLES, "Blues": _blues, "Hip-Hop": _hip_hop}
HARD_GENRES = tuple(sorted(HARD_STYLES))


def synthesize_song(genre: str, rng: np.random.Generator, seconds: float = 30.0, *, hard: bool = False) -> np.ndarray:
    """One song of ``genre`` as float mono samples at :data:`RATE` Hz, peak-normalised to 0.6-0.9 with a faint
    noise floor (a recording, not a digital silence).

    With ``hard``, the genres of :data:`HARD_STYLES` are allowed and every song goes through :func:`_produce`:
    another genre's arrangement mixed in quietly (shared instruments) and a random production (tone, room, noise
    floor, compression), so genres overlap the way real collections do.
    """
    styles = HARD_STYLES if hard else STYLES
    if genre not in styles:
        raise ValueError(f"genre={genre!r} must be one of {', '.join(styles)}")
    audio = styles[genre](rng, seconds)
    if hard:
        audio = _produce(audio, genre, rng, seconds)
    audio = audio / max(1e-9, np.abs(audio).max()) * rng.uniform(0.6, 0.9)
    return audio + rng.normal(0, 10 ** (rng.uniform(-4, -3)), len(audio))


def _produce(audio: np.ndarray, genre: str, rng: np.random.Generator, seconds: float) -> np.ndarray:
    """The hard corpus's variety: a borrowed arrangement of another genre at 15-45% of the song's level (a
    collaboration, a sample, a crossover), then a random tilt (a one-pole low-pass at 1.5-9 kHz, or none), a
    room (a decaying-noise impulse response of 0.2-1.5 s, 0-35% wet), a noise floor at -55 to -30 dB (tape hiss, a
    live room) and soft compression of random depth."""
    audio = audio / max(1e-9, np.abs(audio).max())
    other = rng.choice([name for name in HARD_STYLES if name != genre])
    borrowed = HARD_STYLES[other](rng, seconds)
    audio = audio + rng.uniform(0.15, 0.45) * borrowed / max(1e-9, np.abs(borrowed).max())
    if rng.random() < 0.6:
        coefficient = np.exp(-2 * np.pi * rng.uniform(1500, 9000) / RATE)
        from scipy.signal import lfilter

        audio = lfilter([1 - coefficient], [1, -coefficient], audio)
    wet = rng.uniform(0.0, 0.35)
    if wet > 0.05:
        length = int(rng.uniform(0.2, 1.5) * RATE)
        response = rng.normal(0, 1, length) * np.exp(-np.arange(length) / (length / 5))
        from scipy.signal import fftconvolve

        room = fftconvolve(audio, response)[: len(audio)]
        audio = (1 - wet) * audio + wet * room * np.abs(audio).max() / max(1e-9, np.abs(room).max())
    audio = audio / max(1e-9, np.abs(audio).max())
    audio = audio + rng.normal(0, 10 ** (rng.uniform(-55, -30) / 20), len(audio))
    depth = rng.uniform(1.0, 4.0)
    return np.tanh(depth * audio) / np.tanh(depth)


def _write_wav(path: Path, audio: np.ndarray) -> None:
    samples = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(RATE)
        handle.writeframes(samples.tobytes())


def _artists(count: int, split_ratios: tuple[float, float, float], rng: np.random.Generator,
             taken: set[str]) -> list[str]:
    """``count`` new artist names (not in ``taken``) whose artist-hash splits follow ``split_ratios`` as closely as whole
    artists allow (at least one per split with a share), so even a small corpus has every genre in every split."""
    from genreslice.pipeline.splits import SPLITS, assign_split, split_key

    wanted = [max(1, int(round(ratio * count))) if ratio > 0 else 0 for ratio in split_ratios]
    while sum(wanted) > count:
        wanted[int(np.argmax(wanted))] -= 1
    wanted[0] += count - sum(wanted)
    names: list[str] = []
    syllables = ("ka", "lo", "mi", "ra", "so", "ven", "tor", "el", "an", "dru", "pa", "zi")
    for split, number in zip(SPLITS, wanted):
        found = 0
        while found < number:
            name = f"{''.join(rng.choice(syllables, 2)).title()} {''.join(rng.choice(syllables, 3)).title()}"
            if name not in taken and assign_split(split_key(name, ""), split_ratios) == split:
                taken.add(name)
                names.append(name)
                found += 1
    return names


def write_demo_corpus(
    folder: str | os.PathLike,
    *,
    songs_per_genre: int = 16,
    songs_per_artist: int = 2,
    seconds: float = 30.0,
    seed: int = 0,
    split_ratios: tuple[float, float, float] = (0.6, 0.2, 0.2),
    genres: tuple[str, ...] | None = None,
    hard: bool = False,
) -> list[DemoSong]:
    """Write a tagged MP3 corpus laid out like a music folder: ``ARTIST/ALBUM/NN TITLE.mp3``.

    Parameters
    ----------
    folder : str or os.PathLike
        Where the artist folders go (created).
    songs_per_genre, songs_per_artist : int
        Songs of each genre, and songs of each artist (one album each); one song per artist when that is what it
        takes for a genre to have an artist in each of the three splits.
    seconds : float
        Length of each song.
    seed : int
        The same seed writes the same audio and tags.
    split_ratios : tuple of float
        The ``--split-ratios`` the corpus will be built with: artist names are chosen so that the build's artist
        hash spreads each genre's artists over the splits in these proportions.
    genres : tuple of str, optional
        The genres to write; default :data:`GENRES`, or :data:`HARD_GENRES` with ``hard``.
    hard : bool
        Write the harder corpus of ``make bench-models`` (see :func:`synthesize_song`), where a good model does
        not already score 1.0.

    Returns
    -------
    list of DemoSong
        The files written, genre by genre.
    """
    folder = Path(folder)
    genres = genres or (HARD_GENRES if hard else GENRES)
    if -(-songs_per_genre // songs_per_artist) < len(split_ratios):
        # Every split needs an artist of every genre (the splits are by artist): a small corpus gets one song per
        # artist rather than a split without a genre, or without songs at all.
        songs_per_artist = 1
    rng = np.random.default_rng(seed)
    songs: list[DemoSong] = []
    taken: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="genreslice-demo-") as scratch:
        wav = Path(scratch) / "song.wav"
        for genre in genres:
            n_artists = -(-songs_per_genre // songs_per_artist)
            for artist_index, artist in enumerate(_artists(n_artists, split_ratios, rng, taken)):
                album = f"{artist.split()[0]} {('Sessions', 'Live', 'Stories', 'Nights')[artist_index % 4]}"
                for track in range(min(songs_per_artist, songs_per_genre - artist_index * songs_per_artist)):
                    title = f"{('Morning', 'Harbour', 'Lanterns', 'Static', 'Rivers', 'Echoes')[track % 6]} " \
                            f"{artist_index * songs_per_artist + track + 1}"
                    path = folder / artist / album / f"{track + 1:02d} {title}.mp3"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_wav(wav, synthesize_song(genre, rng, seconds, hard=hard))
                    subprocess.run(["sox", "-R", "--no-glob", os.fspath(wav), "-C", "128", os.path.abspath(path)],
                                   check=True, capture_output=True, timeout=300)
                    _tag(path, genre=genre, artist=artist, album=album, title=title)
                    songs.append(DemoSong(path=path, genre=genre, artist=artist, title=title))
    return songs


#: The tags of :func:`write_tagged_corpus`: the instruments a song may have, and its mood.
INSTRUMENT_TAGS = ("bass", "drums", "guitar", "piano", "synth")
MOOD_TAGS = ("happy", "sad")


def synthesize_tagged_song(rng: np.random.Generator, seconds: float = 10.0) -> tuple[np.ndarray, tuple[str, ...]]:
    """One song of a multi-label corpus and its tags: each instrument of :data:`INSTRUMENT_TAGS` plays with
    probability one half (at least one does), and the mood is ``happy`` (a major loop at 118-150 BPM) or ``sad``
    (minor, 60-88 BPM). Samples are float mono at :data:`RATE` Hz, peak-normalised like :func:`synthesize_song`."""
    happy = rng.random() < 0.5
    playing = [name for name in INSTRUMENT_TAGS if rng.random() < 0.5]
    if not playing:
        playing = [str(rng.choice(INSTRUMENT_TAGS))]
    beat = 60 / (rng.uniform(118, 150) if happy else rng.uniform(60, 88))
    root = (45 if "bass" in playing else 50) + int(rng.integers(0, 10))
    loop = (MAJOR_LOOPS if happy else MINOR_LOOPS)[rng.integers(4)]
    third = 4 if happy else 3
    track = _Track(seconds)
    kick, snare = _kick(), _snare(rng)
    for index in range(int(seconds / beat) + 1):
        start = index * beat
        chord = root + loop[(index // 4) % 4]
        if "drums" in playing:
            track.add(start, kick if index % 2 == 0 else snare, 0.8 if index % 2 == 0 else 0.6)
            track.add(start + beat / 2, _hat(rng), 0.5)
        if "bass" in playing:
            track.add(start, _saw(_midi_hz(chord - 12), beat, attack=0.005, decay=0.3, brightness=5), 0.35)
        if "piano" in playing and index % 2 == 0:
            for interval in (0, third, 7):
                track.add(start, _tone(_midi_hz(chord + 12 + interval), beat * 2, harmonics=(1.0, 0.5, 0.25, 0.12),
                                       attack=0.004, decay=0.6), 0.12)
        if "guitar" in playing:
            for step, interval in enumerate((0, 7, 12, third + 12)):
                track.add(start + step * beat / 4, _pluck(_midi_hz(chord + interval), beat, rng), 0.2)
        if "synth" in playing and index % 2 == 1:
            note = chord + 24 + int(rng.choice([0, third, 7]))
            track.add(start, _square(_midi_hz(note), beat, attack=0.01, decay=0.4), 0.1)
    audio = track.audio / max(1e-9, np.abs(track.audio).max()) * rng.uniform(0.6, 0.9)
    audio = audio + rng.normal(0, 10 ** (rng.uniform(-4, -3)), len(audio))
    return audio, (*playing, "happy" if happy else "sad")


@dataclass(frozen=True)
class TaggedSong:
    """One file of :func:`write_tagged_corpus`: its path relative to the corpus folder, artist and tags."""

    rel_path: str
    artist: str
    tags: tuple[str, ...]


def write_tagged_corpus(folder: str | os.PathLike, *, songs: int = 120, songs_per_artist: int = 2,
                        seconds: float = 10.0, seed: int = 0,
                        split_ratios: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> list[TaggedSong]:
    """Write a multi-label corpus of WAV files, ``ARTIST/NN.wav``, with the tags of
    :func:`synthesize_tagged_song`; the same seed writes the same files. Artist names are drawn so that the
    build's artist hash splits them in ``split_ratios``. Writes no labels file (see :func:`labels_csv_text`)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    n_artists = -(-songs // songs_per_artist)
    written: list[TaggedSong] = []
    for artist_index, artist in enumerate(_artists(n_artists, split_ratios, rng, set())):
        for number in range(min(songs_per_artist, songs - artist_index * songs_per_artist)):
            rel_path = f"{artist}/{number + 1:02d}.wav"
            (folder / artist).mkdir(parents=True, exist_ok=True)
            audio, tags = synthesize_tagged_song(rng, seconds)
            _write_wav(folder / rel_path, audio)
            written.append(TaggedSong(rel_path=rel_path, artist=artist, tags=tags))
    return written


def labels_csv_text(songs: list[TaggedSong]) -> str:
    """The ``--labels csv`` file of a tagged corpus: ``path,label,artist`` with the tags ``;``-separated."""
    return "path,label,artist\n" + "".join(f"{song.rel_path},{';'.join(song.tags)},{song.artist}\n"
                                           for song in songs)


def _tag(path: Path, *, genre: str, artist: str, album: str, title: str) -> None:
    """Write the ID3 tags a music library has: genre, artist, album, title."""
    from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1

    tags = ID3()
    for frame in (TCON(encoding=3, text=[genre]), TPE1(encoding=3, text=[artist]), TALB(encoding=3, text=[album]),
                  TIT2(encoding=3, text=[title])):
        tags.add(frame)
    tags.save(path)


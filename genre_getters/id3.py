"""Genre and artist from the tags inside audio files (ID3v2, ID3v1, Vorbis comments in FLAC/Ogg/Opus, MP4 atoms in
``.m4a``, ASF attributes in ``.wma``).

Artist is the track artist, else the album artist: ID3 ``TPE1``/``TPE2``, MP4 ``©ART``/``aART``, ASF
``Author``/``WM/AlbumArtist``, Vorbis ``ARTIST``/``ALBUMARTIST``. MP4's numeric ``gnre`` atom (an ID3v1 genre
number) is read by mutagen as a ``©gen`` name.

ID3 numeric genres, such as ``(17)`` or a bare ``17`` (how ID3v1 stores them), are resolved to names with
mutagen's ID3v1 genre table. Names map to FMA's 16 top-level genres through the FMA hierarchy (``Punk`` -> ``Rock``)
and ``metadata/genre_aliases.csv``, compared by letters and digits only (case, spaces and dashes ignored).

Several genres in one track (several values, or one value like ``"Rock; Pop"`` split at ``; , / |``): the top-level
genre most of them map to wins; on a tie, the one named first.
"""
from __future__ import annotations

import collections
import os
import re
from pathlib import Path

import mutagen
from mutagen.asf import ASFTags
from mutagen.id3 import ID3, ID3NoHeaderError
from mutagen.mp4 import MP4Tags

from genreslice.genre_getters.base import TrackLabel, normalize_text
from genreslice.metadata import Taxonomy, fma_taxonomy, load_genre_map

#: Genre values that say "no genre" rather than naming one (compared case-insensitively).
UNUSABLE_GENRES = frozenset({"", "unknown", "<unknown>", "none", "n/a", "na", "genre", "undefined"})
_SEPARATORS = re.compile(r"\s*[;,/|]\s*")
#: Genre keys, then artist keys (track artist before album artist), of each tag kind mutagen reads.
_MP4_KEYS = (("\xa9gen",), ("\xa9ART", "aART"))
_ASF_KEYS = (("WM/Genre",), ("Author", "WM/AlbumArtist"))
_VORBIS_KEYS = (("genre",), ("artist", "albumartist", "album artist"))


def read_tag_values(path: str | Path) -> tuple[list[str], list[str]]:
    """Read the raw genre and artist values of an audio file.

    Returns
    -------
    genres, artists : list of str
        Values in tag order; numeric ID3 genres already resolved to names.

    Raises
    ------
    mutagen.MutagenError, OSError
        The file cannot be read or parsed.
    ValueError
        mutagen recognises no audio format or tag in the file.
    """
    try:
        audio = mutagen.File(path)
    except mutagen.MutagenError as err:
        # mutagen gives up on the whole file when the audio frames are damaged; the tag itself may be fine,
        # and whether the audio is usable is SoX's call, not the labeller's.
        try:
            audio = ID3(path)
        except mutagen.MutagenError:
            raise err from None
    if audio is None:
        raise ValueError("not a recognised audio format")
    tags = audio if isinstance(audio, ID3) else audio.tags
    if tags is None:
        # A raw AAC (ADTS) stream has no tag format of its own; taggers put an ID3v2 tag in front of it.
        try:
            tags = ID3(path)
        except ID3NoHeaderError:
            return [], []
    if isinstance(tags, ID3):
        genres = [genre for frame in tags.getall("TCON") for genre in frame.genres]
        artists = [text for key in ("TPE1", "TPE2") for frame in tags.getall(key) for text in frame.text]
        return genres, artists
    # MP4 atoms and ASF attributes by their names; Vorbis comments (FLAC, Ogg Vorbis, Opus) case-insensitively.
    keys = _MP4_KEYS if isinstance(tags, MP4Tags) else _ASF_KEYS if isinstance(tags, ASFTags) else _VORBIS_KEYS
    genre_keys, artist_keys = keys
    return _tag_texts(tags, genre_keys), _tag_texts(tags, artist_keys)


def _tag_texts(tags, keys: tuple[str, ...]) -> list[str]:
    """The values of ``keys`` in ``tags``, in key order, as text (ASF values are attribute objects)."""
    return [str(getattr(value, "value", value)) for key in keys for value in (tags.get(key) or [])]


def candidate_genres(values: list[str]) -> list[str]:
    """Genre names in tag order: NUL-separated values split, spacing normalised, "no genre" values dropped."""
    names = []
    for value in values:
        for part in value.split("\x00"):
            genre = normalize_text(part)
            if genre.casefold() not in UNUSABLE_GENRES and not genre.strip("()").isdigit():
                names.append(genre)
    return names


def resolve_genres(names: list[str], taxonomy: Taxonomy) -> list[str]:
    """The top-level genre of each name, in order; a name that does not resolve as a whole is split at
    ``; , / |`` and its parts are resolved (``"Rock/Pop"``, but ``"Pop/Funk"`` is one ID3v1 genre)."""
    resolved = []
    for name in names:
        genre = taxonomy.resolve(name)
        if genre is not None:
            resolved.append(genre)
            continue
        resolved.extend(genre for part in _SEPARATORS.split(name) if (genre := taxonomy.resolve(part)))
    return resolved


def choose_genre(names: list[str], taxonomy: Taxonomy) -> str | None:
    """The label of a track whose tags name ``names``: the top-level genre most of them resolve to; on a tie
    the one named first. None if no name resolves."""
    resolved = resolve_genres(names, taxonomy)
    if not resolved:
        return None
    counts = collections.Counter(resolved)
    return max(counts, key=lambda genre: (counts[genre], -resolved.index(genre)))


class Id3LabelSource:
    """Labels from the tags embedded in each audio file, mapped onto FMA's top-level genres.

    Parameters
    ----------
    genre_map : str or os.PathLike, optional
        A ``tag,genre`` CSV whose names are looked up before the shipped tables (and may add genres).
    """

    name = "id3"
    reads_audio = True
    metadata_problems: tuple[str, ...] = ()

    def __init__(self, *, genre_map: str | os.PathLike | None = None) -> None:
        self.genre_map = None if genre_map is None else os.fspath(genre_map)
        self.taxonomy = fma_taxonomy(load_genre_map(genre_map) if genre_map is not None else None)

    def settings(self) -> dict:
        return {"source": self.name, "taxonomy": "fma", "genre_map": self.genre_map}

    def missing_audio(self, labelled_ids: set[str]) -> list[str]:
        return []

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        try:
            # mutagen reports a file it may not open as one it cannot parse; this tells the two apart.
            with open(path, "rb") as handle:
                handle.read(1)
            genres, artists = read_tag_values(path)
        except OSError as err:
            return TrackLabel(genre=None, artist=None, failed=True,
                              reason=f"cannot read the file: {err.strerror or err}")
        except (mutagen.MutagenError, ValueError) as err:
            return TrackLabel(genre=None, artist=None, failed=True,
                              reason=f"not readable as audio with tags: {_error_text(err)}")
        except Exception as err:  # noqa: BLE001 - mutagen raises IndexError, struct.error ... on damaged files
            return TrackLabel(genre=None, artist=None, failed=True,
                              reason=f"not readable as audio with tags: {type(err).__name__}: {err}")
        artist = next((normalize_text(a) for a in artists if normalize_text(a)), None)
        names = candidate_genres(genres)
        genre = choose_genre(names, self.taxonomy)
        if genre is not None:
            return TrackLabel(genre=genre, artist=artist)
        if names:
            shown = ", ".join(repr(name) for name in names[:3])
            reason = f"genre {shown} is not in the genre taxonomy (add it with --genre-map)"
        elif genres:
            reason = f"unknown genre tag ({', '.join(repr(g) for g in genres[:3])})"
        else:
            reason = "no genre tag"
        return TrackLabel(genre=None, artist=artist, reason=reason)


def _error_text(err: BaseException) -> str:
    """An exception's message, or its wrapped error's; mutagen reports a tag cut off inside the file as an error
    wrapping a bare ``OSError()``, whose message is empty."""
    for candidate in (err, *err.args, err.__cause__, err.__context__):
        text = str(candidate).strip() if candidate is not None else ""
        if text:
            return text
    return "the tag or the audio data is damaged or cut off (no details given)"

"""Genre and artist from the tags inside audio files (ID3v2, ID3v1, Vorbis comments, MP4 atoms).

ID3 numeric genres, such as ``(17)`` or a bare ``17`` (how ID3v1 stores them), are resolved to names with
mutagen's ID3v1 genre table. When a tag holds several genres the first usable one is the label.
"""
from __future__ import annotations

from pathlib import Path

import mutagen
from mutagen.id3 import ID3
from mutagen.mp4 import MP4Tags

from genre_getters.base import TrackLabel, normalize_text

#: Genre values that say "no genre" rather than naming one (compared case-insensitively).
UNUSABLE_GENRES = frozenset({"", "unknown", "<unknown>", "none", "n/a", "na", "genre", "undefined"})
_MP4_GENRE, _MP4_ARTIST = "\xa9gen", "\xa9ART"


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
        return [], []
    if isinstance(tags, ID3):
        genres = [genre for frame in tags.getall("TCON") for genre in frame.genres]
        artists = [text for key in ("TPE1", "TPE2") for frame in tags.getall(key) for text in frame.text]
        return genres, artists
    if isinstance(tags, MP4Tags):
        return [str(v) for v in tags.get(_MP4_GENRE, [])], [str(v) for v in tags.get(_MP4_ARTIST, [])]
    # Vorbis comments (FLAC, Ogg): keys are case-insensitive in mutagen.
    return [str(v) for v in tags.get("genre", [])], [str(v) for v in tags.get("artist", [])]


def choose_genre(values: list[str]) -> str | None:
    """The first usable genre among tag values, normalised for spacing; None if there is none."""
    for value in values:
        for part in value.split("\x00"):
            genre = normalize_text(part)
            if genre.casefold() not in UNUSABLE_GENRES and not genre.strip("()").isdigit():
                return genre
    return None


class Id3LabelSource:
    """Labels from the tags embedded in each audio file."""

    name = "id3"

    def settings(self) -> dict:
        return {"source": self.name}

    def label(self, path: Path, rel_path: str) -> TrackLabel:
        try:
            genres, artists = read_tag_values(path)
        except (mutagen.MutagenError, OSError, ValueError) as err:
            return TrackLabel(genre=None, artist=None, reason=f"tags unreadable: {err}")
        except Exception as err:  # noqa: BLE001 - mutagen raises IndexError, struct.error ... on damaged files
            return TrackLabel(genre=None, artist=None, reason=f"tags unreadable: {type(err).__name__}: {err}")
        artist = next((normalize_text(a) for a in artists if normalize_text(a)), None)
        genre = choose_genre(genres)
        if genre is None:
            shown = ", ".join(repr(g) for g in genres[:3])
            reason = f"unknown genre tag ({shown})" if genres else "no genre tag"
            return TrackLabel(genre=None, artist=artist, reason=reason)
        return TrackLabel(genre=genre, artist=artist)

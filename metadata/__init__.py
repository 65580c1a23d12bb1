"""Data tables shipped with genreslice (genre taxonomy, tag maps) and the small loaders that read them.

Tables (see ``metadata/README.md`` for their sources and licences):

* ``fma_genres.csv``: the FMA genre hierarchy, 163 genres under 16 top-level genres (CC BY 4.0).
* ``jamendo_genre_map.csv``: MTG-Jamendo genre tag -> FMA top-level genre; its row order breaks ties.
* ``genre_aliases.csv``: other common genre names (the ID3v1 list, spellings) -> FMA top-level genre.

This package imports nothing else of genreslice.
"""
from __future__ import annotations

import contextlib
import csv
import importlib.resources
import io
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TextIO

from genreslice.errors import GenresliceError

FMA_GENRES = "fma_genres.csv"
JAMENDO_GENRE_MAP = "jamendo_genre_map.csv"
GENRE_ALIASES = "genre_aliases.csv"
GENRE_MAP_HEADER = ("tag", "genre")
#: The longest line a genre map may hold: the csv module's default field limit, 128 KiB.
MAX_GENRE_MAP_LINE = 128 * 1024

_NOT_ALNUM = re.compile(r"[\W_]+")


class MetadataError(GenresliceError, ValueError):
    """A metadata file or table is missing, unreadable or malformed; the message names the file and line."""


@dataclass(frozen=True)
class FmaGenre:
    """One row of the FMA genre hierarchy."""

    genre_id: int
    parent: int
    title: str
    top_level: int


@dataclass(frozen=True)
class Taxonomy:
    """The top-level genres labels are drawn from, and every name that resolves to one of them.

    Attributes
    ----------
    genres : tuple of str
        Top-level genre names, sorted.
    aliases : Mapping of str to str
        ``genre_key(name) -> top-level genre`` for every known name, the top-level names included.
    """

    genres: tuple[str, ...]
    aliases: Mapping[str, str]

    @classmethod
    def of_classes(cls, names: Iterable[str]) -> Taxonomy:
        """The taxonomy of classes that are names of their own (folder names, a CSV's labels): sorted, each its
        own top level; where two differ only in case and punctuation, the first sorted is the alias."""
        genres = tuple(sorted(set(names)))
        return cls(genres=genres, aliases={genre_key(name): name for name in reversed(genres)})

    def resolve(self, name: str) -> str | None:
        """The top-level genre ``name`` belongs to (case, spacing and punctuation ignored), or None."""
        return self.aliases.get(genre_key(name))

    def top_level(self, name: str) -> str | None:
        """The top-level genre called ``name``: exactly, else the one whose name differs only in case, spacing and
        punctuation; None when there is none, or several (:meth:`alike` lists them)."""
        if name in self.genres:
            return name
        alike = self.alike(name)
        return alike[0] if len(alike) == 1 else None

    def alike(self, name: str) -> list[str]:
        """The top-level genres whose names differ from ``name`` only in case, spacing and punctuation."""
        key = genre_key(name)
        return [genre for genre in self.genres if genre_key(genre) == key]


def genre_key(name: str) -> str:
    """Compare genre names by letters and digits only: ``"Hip Hop"``, ``"hip-hop"`` and ``"HIPHOP"`` are one.

    ``&`` counts as "n", so ``"Drum & Bass"`` and ``"drumnbass"`` match; accents are dropped.
    """
    text = unicodedata.normalize("NFKD", name.replace("&", "n")).casefold()
    text = "".join(char for char in text if not unicodedata.combining(char))
    return _NOT_ALNUM.sub("", text)


@contextlib.contextmanager
def open_metadata(path: str | os.PathLike) -> Iterator[TextIO]:
    """Open a metadata file for reading as UTF-8 text: a leading byte-order mark is dropped, line endings are kept
    (``newline=""``, as the csv module wants).

    Raises
    ------
    MetadataError
        The file cannot be read, or is not UTF-8, also when that is found while the ``with`` block reads it; the
        message names the line and the first byte that is not UTF-8 (not an offset into a read buffer).
    """
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield handle
    except UnicodeDecodeError as err:
        raise MetadataError(_describe_non_utf8(path) or f"{os.fspath(path)}: not UTF-8: {err}") from err
    except OSError as err:
        raise MetadataError(f"{os.fspath(path)}: cannot read: {err}") from err


def _describe_non_utf8(path: str | os.PathLike) -> str | None:
    """The line and byte where ``path`` stops being UTF-8, or None if it is UTF-8 after all."""
    # Latin-1 turns each byte into one character, and line endings are the same ASCII bytes in both encodings, so
    # lines split (and are numbered) exactly as when the file is read as UTF-8 with newline="".
    with open(path, encoding="latin-1", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            raw = line.encode("latin-1")
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return (f"{os.fspath(path)}: line {number}: byte 0x{raw[err.start]:02x} is not UTF-8 "
                        "(saved as Latin-1 or Windows-1252?); metadata files must be UTF-8")
    return None


def _table_text(name: str) -> str:
    return importlib.resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def read_fma_genres(handle: Iterable[str], *, source: str = FMA_GENRES) -> list[FmaGenre]:
    """Parse FMA's ``genres.csv`` (``genre_id,#tracks,parent,title,top_level``).

    Raises
    ------
    MetadataError
        A missing column, a non-numeric id, or a parent or top-level id that names no genre.
    """
    reader = csv.DictReader(handle)
    missing = {"genre_id", "parent", "title", "top_level"} - set(reader.fieldnames or ())
    if missing:
        raise MetadataError(f"{source}: line 1: header lacks {', '.join(sorted(missing))}")
    genres = []
    for row in reader:
        try:
            genres.append(FmaGenre(int(row["genre_id"]), int(row["parent"]), row["title"].strip(),
                                   int(row["top_level"])))
        except (TypeError, ValueError):
            raise MetadataError(f"{source}: line {reader.line_num}: bad genre row {row!r}") from None
    ids = {genre.genre_id for genre in genres}
    for genre in genres:
        if genre.top_level not in ids or (genre.parent and genre.parent not in ids):
            raise MetadataError(f"{source}: genre {genre.genre_id} ({genre.title}) has an unknown parent")
    return genres


def read_genre_map(handle: Iterable[str], *, source: str) -> dict[str, str]:
    """Parse a ``tag,genre`` table (lines starting with ``#`` are comments) into ``{tag_key: genre}``.

    Keys are :func:`genre_key` of the tag; the value is the genre's name as written, or ``""`` for a tag to
    ignore. Row order is kept: it is the priority that breaks ties.

    Each line is one row (a quoted field cannot span lines), so a stray quote spoils only its own line.

    Raises
    ------
    MetadataError
        Wrong header, a line longer than :data:`MAX_GENRE_MAP_LINE`, a line the csv module rejects, a row without
        exactly two fields, an empty or repeated tag.
    """
    mapping: dict[str, str] = {}
    header_seen = False
    for number, line in enumerate(handle, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(line) > MAX_GENRE_MAP_LINE:
            raise MetadataError(f"{source}: line {number}: {len(line):,} characters long, over the "
                                f"{MAX_GENRE_MAP_LINE:,} a genre map row may hold; expected 'tag,genre'")
        try:
            row = next(csv.reader([line]))
        except csv.Error as err:
            raise MetadataError(f"{source}: line {number}: {err}") from err
        fields = tuple(field.strip() for field in row)
        if not header_seen:
            if tuple(field.casefold() for field in fields) != GENRE_MAP_HEADER:
                raise MetadataError(f"{source}: line {number}: header must be 'tag,genre', found {','.join(row)!r}")
            header_seen = True
            continue
        if len(fields) != 2:
            raise MetadataError(f"{source}: line {number}: expected 2 fields (tag,genre), found {len(fields)}")
        tag, genre = fields
        key = genre_key(tag.removeprefix("genre---"))
        if not key:
            raise MetadataError(f"{source}: line {number}: empty tag")
        if key in mapping:
            raise MetadataError(f"{source}: line {number}: tag {tag!r} appears twice")
        mapping[key] = " ".join(genre.split())
    if not header_seen:
        raise MetadataError(f"{source}: empty: expected a header 'tag,genre' and one row per tag")
    return mapping


def load_fma_genres() -> list[FmaGenre]:
    """The FMA genre hierarchy shipped with genreslice."""
    return read_fma_genres(io.StringIO(_table_text(FMA_GENRES)))


def load_genre_map(path: str | os.PathLike | None = None) -> dict[str, str]:
    """The MTG-Jamendo tag map shipped with genreslice, or the user's replacement at ``path``."""
    if path is None:
        return read_genre_map(io.StringIO(_table_text(JAMENDO_GENRE_MAP)), source=JAMENDO_GENRE_MAP)
    with open_metadata(path) as handle:
        mapping = read_genre_map(handle, source=os.fspath(path))
    if not any(mapping.values()):
        raise MetadataError(f"{os.fspath(path)}: maps no tag to a genre; expected rows such as 'punkrock,Rock'")
    return mapping


def fma_taxonomy(extra: Mapping[str, str] | None = None) -> Taxonomy:
    """FMA's 16 top-level genres; every FMA genre title resolves to its top-level genre.

    Names from ``genre_aliases.csv`` and the MTG-Jamendo tag map resolve too. ``extra`` (``tag_key -> genre``,
    e.g. a user's ``--genre-map``) comes first and may add genres of its own.
    """
    genres = load_fma_genres()
    titles = {genre.genre_id: genre.title for genre in genres}
    aliases: dict[str, str] = {}
    for table in (extra or {}, {genre_key(g.title): titles[g.top_level] for g in genres},
                  read_genre_map(io.StringIO(_table_text(GENRE_ALIASES)), source=GENRE_ALIASES),
                  load_genre_map()):
        for key, genre in table.items():
            if genre:
                aliases.setdefault(key, genre)
    top_levels = {titles[g.genre_id] for g in genres if g.parent == 0} | set(aliases.values())
    for top in top_levels:
        aliases.setdefault(genre_key(top), top)
    return Taxonomy(genres=tuple(sorted(top_levels)), aliases=aliases)


def map_taxonomy(mapping: Mapping[str, str]) -> Taxonomy:
    """The taxonomy a tag map defines: its genres, with each tag and each genre name resolving to its genre."""
    aliases = {key: genre for key, genre in mapping.items() if genre}
    genres = tuple(sorted(set(aliases.values())))
    for genre in genres:
        aliases.setdefault(genre_key(genre), genre)
    return Taxonomy(genres=genres, aliases=aliases)

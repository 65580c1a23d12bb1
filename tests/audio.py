"""Test audio made offline at test time: SoX synthesises it, mutagen tags it."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mutagen.id3 import ID3, TCON, TPE1, TIT2


def synth(path: str | os.PathLike, seconds: float, *sources: str, rate: int = 44100, channels: int = 2,
          volume: float = 0.5, extra: tuple[str, ...] = ()) -> Path:
    """Write ``seconds`` of SoX ``synth`` audio (e.g. ``"sine", "440"``) to ``path``; format from its extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sources = sources or ("sine", "440")
    command = ["sox", "-R", "-n", "-r", str(rate), "-c", str(channels), "--no-glob", os.path.abspath(path),
               "synth", f"{seconds}", *sources, "vol", f"{volume}", *extra]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return path


def silence(path: str | os.PathLike, seconds: float, *, rate: int = 44100, channels: int = 2) -> Path:
    """Write digital silence."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["sox", "-n", "-r", str(rate), "-c", str(channels), "--no-glob", os.path.abspath(path),
                    "trim", "0", f"{seconds}"], check=True, capture_output=True, timeout=120)
    return path


def tag_id3(path: str | os.PathLike, *, genre: str | None = None, artist: str | None = None,
            title: str | None = None) -> Path:
    """Write an ID3v2 tag with the given frames (replacing any existing tag)."""
    tags = ID3()
    if genre is not None:
        tags.add(TCON(encoding=3, text=[genre]))
    if artist is not None:
        tags.add(TPE1(encoding=3, text=[artist]))
    if title is not None:
        tags.add(TIT2(encoding=3, text=[title]))
    tags.save(path)
    return Path(path)


def append_id3v1(path: str | os.PathLike, *, genre_byte: int, artist: str = "", title: str = "") -> Path:
    """Append a raw 128-byte ID3v1 tag, as old rippers wrote them (no ID3v2 at all)."""
    def field(text: str, size: int) -> bytes:
        return text.encode("latin-1")[:size].ljust(size, b"\x00")

    block = b"TAG" + field(title, 30) + field(artist, 30) + field("", 30) + b"2001" + field("", 30)
    block += bytes([genre_byte])
    with open(path, "ab") as handle:
        handle.write(block)
    return Path(path)


def tagged_mp3(path: str | os.PathLike, seconds: float, genre: str | None, artist: str | None,
               *sources: str, **synth_options) -> Path:
    """A tagged MP3 of synthesised audio."""
    synth(path, seconds, *sources, **synth_options)
    return tag_id3(path, genre=genre, artist=artist)

"""``python -m genreslice.scripts.example [DIR]``: make a small tagged music folder offline and build it.

Twelve 20-second MP3s in three genres by six artists (SoX synthesises them, mutagen tags them), then the real
``genreslice build`` on them. A first look at the data set layout; ``genreslice demo`` runs the whole job.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from mutagen.id3 import ID3, TCON, TPE1, TIT2

from genreslice.scripts.cli import main as genreslice

STYLES = {
    "Rock": ("square", "sawtooth"),
    "Jazz": ("triangle", "sine"),
    "Electronic": ("sawtooth", "square"),
}


def make_music_folder(folder: Path) -> Path:
    for index in range(12):
        genre = list(STYLES)[index % 3]
        wave_a, wave_b = STYLES[genre]
        root = 110 * 2 ** ((index * 5 % 12) / 12)
        artist = f"{genre} Band {index % 2 + 1}"
        path = folder / artist / f"Song {index + 1:02d}.mp3"
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = ["pinknoise"] if genre == "Rock" else []
        subprocess.run(["sox", "-R", "-n", "-r", "44100", "-c", "2", os.fspath(path), "synth", "20",
                        wave_a, f"{root:.1f}", wave_b, f"{root * 1.5:.1f}", *extra,
                        "tremolo", f"{2 + index % 4}", "50", "vol", "0.3"], check=True, capture_output=True)
        tags = ID3()
        tags.add(TCON(encoding=3, text=[genre]))
        tags.add(TPE1(encoding=3, text=[artist]))
        tags.add(TIT2(encoding=3, text=[f"Song {index + 1}"]))
        tags.save(path)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m genreslice.scripts.example", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", type=Path, default=Path("example"),
                        help="where to put the music folder and the data set (default: ./example)")
    args = parser.parse_args(argv)
    music = args.dir / "music"
    if not music.exists():
        print(f"Making 12 tagged songs in {music} ...")
        make_music_folder(music)
    return genreslice(["build", os.fspath(music), os.fspath(args.dir / "dataset")])


if __name__ == "__main__":
    sys.exit(main())

"""Write files in the layout of FMA's ``fma_metadata/tracks.csv``: three header rows, then one row per track.

The real file is not in the repository (342 MiB archive); this reproduces its columns and header shape, so the
FMA label source reads generated files exactly as it reads the real one.
"""
from __future__ import annotations

import csv
from pathlib import Path

#: FMA's tracks.csv columns, in order (index column ``track_id`` first, not listed).
COLUMNS = [
    *(("album", name) for name in ("comments", "date_created", "date_released", "engineer", "favorites", "id",
                                   "information", "listens", "producer", "tags", "title", "tracks", "type")),
    *(("artist", name) for name in ("active_year_begin", "active_year_end", "associated_labels", "bio", "comments",
                                    "date_created", "favorites", "id", "latitude", "location", "longitude",
                                    "members", "name", "related_projects", "tags", "website", "wikipedia_page")),
    ("set", "split"), ("set", "subset"),
    *(("track", name) for name in ("bit_rate", "comments", "composer", "date_created", "date_recorded", "duration",
                                   "favorites", "genre_top", "genres", "genres_all", "information", "interest",
                                   "language_code", "license", "listens", "lyricist", "number", "publisher", "tags",
                                   "title")),
]


def write_tracks_csv(path: Path, tracks: list[dict]) -> Path:
    """Write ``tracks`` (dicts with ``track_id`` and any of ``genre_top``, ``artist_id``, ``split``, ``subset``,
    ``title``, ``bio``, ``genres_all``) as an FMA ``tracks.csv``; other columns get plausible filler."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["", *(group for group, _ in COLUMNS)])
        writer.writerow(["", *(name for _, name in COLUMNS)])
        writer.writerow(["track_id", *([""] * len(COLUMNS))])
        for track in tracks:
            values = {
                ("artist", "id"): track.get("artist_id", ""),
                ("artist", "name"): track.get("artist_name", f"Artist {track.get('artist_id', '')}"),
                ("artist", "bio"): track.get("bio", "<p>Plays \"loud\", quiet,\nand in between.</p>"),
                ("set", "split"): track.get("split", "training"),
                ("set", "subset"): track.get("subset", "large"),
                ("track", "genre_top"): track.get("genre_top", ""),
                ("track", "genres"): "[12]",
                ("track", "genres_all"): track.get("genres_all", "[12, 25]"),
                ("track", "title"): track.get("title", f"Track {track['track_id']}"),
                ("track", "duration"): "30",
                ("album", "tags"): "[]",
            }
            writer.writerow([track["track_id"], *(values.get(column, "") for column in COLUMNS)])
    return path

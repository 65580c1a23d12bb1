"""``genreslice inspect``: a built data set at a glance, in text and pictures.

:func:`inspect_dataset` reads a data set's ``dataset.json``, ``tracks.csv`` and ``duplicates.csv`` (under the
data set's reader lock, so no build changes them meanwhile) into a :class:`DatasetReport`: tracks, artists and
slices per class and split, the classes missing from a split, failures and skips by reason, the distribution of
durations, the groups of copies, the label source and the split method. :func:`report_text` prints it;
:func:`write_pictures` draws a class-balance chart, a duration histogram and a grid of example slices per class,
and one self-contained HTML page holding the tables and the pictures.
"""
from __future__ import annotations

import base64
import collections
import csv
import html
import io
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from genreslice.pipeline import layout
from genreslice.pipeline.plan import reasons_counted
from genreslice.pipeline.png import decode_gray_png
from genreslice.pipeline.splits import SPLITS, split_key, split_warnings
from genreslice.pipeline.tracks import TAG_SEPARATOR
from genreslice.training.dataset import reading_dataset
from genreslice.training.errors import DatasetError
from genreslice.training.plots import font_of_size, nice_ticks, write_png_atomic

#: The pictures :func:`write_pictures` draws, and the page that holds them.
CLASS_BALANCE_PNG = "class-balance.png"
DURATIONS_PNG = "durations.png"
EXAMPLES_PNG = "examples.png"
REPORT_HTML = "report.html"
#: Classes the example grid shows at most (a multi-label data set may have hundreds of tags).
MAX_EXAMPLE_CLASSES = 40
#: What a group's action did, in the report's words.
_ACTIONS = {"group": "kept in one split with their artists", "keep": "left where they fall",
            "drop-extra": "only the copies in the last split built"}
#: Durations beyond this many seconds (a week) are not real ones (a damaged tracks.csv): left out of the figures.
_LONGEST_S = 7 * 24 * 3600.0
#: Classes the class-balance chart shows at most.
MAX_CHART_CLASSES = 100
_SPLIT_COLOURS = {"train": (31, 119, 180), "validation": (255, 127, 14), "test": (44, 160, 44)}
_TEXT = (40, 40, 40)
_GRID = (225, 225, 225)


@dataclass
class DatasetReport:
    """What ``genreslice inspect`` shows of a data set.

    Attributes
    ----------
    root : Path
        The data set folder.
    task : str
        ``single`` or ``multilabel``.
    classes : list of str
        The classes of the tracks built, sorted.
    tracks, artists, slices : dict
        ``{class: {split: count}}`` over the tracks built (a multi-label track counts for each of its tags);
        ``artists`` counts distinct artist names, a track without one as an artist of its own.
    warnings : list of str
        Classes missing from a split, or with few tracks there.
    not_built : list of tuple
        ``(status, reason pattern, count, an example reason, its file)``, most frequent first.
    status_counts : dict
        Files of each status.
    durations : dict
        ``split -> seconds of each track built``.
    duplicates : list of dict
        One per group of copies: ``group``, ``kind``, ``action``, ``files``, ``splits`` (of the files built),
        ``paths``.
    settings : dict
        ``dataset.json`` as written (the label source, the split method and ratios, the spectrogram).
    problems : list of str
        What could not be read (a missing ``duplicates.csv`` of an older build), shown with the report.
    """

    root: Path
    task: str
    classes: list[str]
    tracks: dict[str, dict[str, int]]
    artists: dict[str, dict[str, int]]
    slices: dict[str, dict[str, int]]
    warnings: list[str]
    not_built: list[tuple[str, str, int, str, str]]
    status_counts: dict[str, int]
    durations: dict[str, list[float]]
    duplicates: list[dict]
    settings: dict
    problems: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list, repr=False)

    @property
    def label_source(self) -> str:
        return str(_mapping(self.settings, "labels").get("source", "unknown"))

    @property
    def split_method(self) -> str:
        splits = _mapping(self.settings, "splits")
        method = str(splits.get("method", "unknown"))
        ratios = _mapping(splits, "ratios")
        shown = "/".join(f"{_float(ratios.get(split)) or 0:g}" for split in SPLITS) if ratios else ""
        described = {"official": "the metadata's official splits",
                     "official+artist_hash": "official splits, other tracks by a hash of their artist",
                     "artist_hash": "a hash of the artist (no artist in two splits)"}.get(method, method)
        return described + (f", ratios {shown} (train/validation/test)" if shown and method != "official" else "")

    def leaking_groups(self) -> list[dict]:
        """Groups of copies built in more than one split."""
        return [group for group in self.duplicates if len(group["splits"]) > 1]


def inspect_dataset(dataset_dir: str | os.PathLike) -> DatasetReport:
    """Read a data set's tables into a report.

    Raises
    ------
    DatasetError
        No such folder, no readable ``dataset.json`` or ``tracks.csv``, or a build is changing the data set.
    """
    root = Path(dataset_dir)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such data set folder")
    with reading_dataset(root):
        settings = _read_json(root / layout.DATASET_JSON)
        rows = _read_csv(root / layout.TRACKS_CSV, required=True, columns=("path", "status", "split"))
        problems = []
        try:
            duplicate_rows = _read_csv(root / layout.DUPLICATES_CSV, required=False, columns=("group", "path"))
        except DatasetError as err:
            duplicate_rows, problems = [], [str(err)]
        if duplicate_rows is None:
            duplicate_rows = []
            problems.append(f"no {layout.DUPLICATES_CSV}: the data set was built by an older genreslice, which did "
                            "not look for copies; build it again (nothing is rendered again) to find them")
    built = [row for row in rows if row.get("status") == "ok" and row.get("split") in SPLITS]
    classes_of = {id(row): _classes(row) for row in built}
    classes = sorted({name for row in built for name in classes_of[id(row)]})
    tracks = {name: dict.fromkeys(SPLITS, 0) for name in classes}
    slices = {name: dict.fromkeys(SPLITS, 0) for name in classes}
    artist_sets: dict[str, dict[str, set[str]]] = {name: {split: set() for split in SPLITS} for name in classes}
    durations: dict[str, list[float]] = {split: [] for split in SPLITS}
    for row in built:
        split = row["split"]
        for name in classes_of[id(row)]:
            tracks[name][split] += 1
            slices[name][split] += _int(row.get("n_slices"))
            artist_sets[name][split].add(_artist_key(row))
        seconds = _float(row.get("duration_s"))
        if seconds is not None and 0 <= seconds <= _LONGEST_S:
            durations[split].append(seconds)
    artists = {name: {split: len(names) for split, names in by_split.items()} for name, by_split in artist_sets.items()}
    ratios = _mapping(_mapping(settings, "splits"), "ratios")
    expected = tuple(1.0 if (_float(ratios.get(split)) or 0) > 0 or any(tracks[name][split] for name in classes)
                     else 0.0 for split in SPLITS)
    status_counts = collections.Counter(row.get("status", "") for row in rows)
    return DatasetReport(
        root=root, task=str(settings.get("task", "single")), classes=classes, tracks=tracks, artists=artists,
        slices=slices, warnings=split_warnings(tracks, expected), not_built=_not_built(rows),
        status_counts={status: status_counts.get(status, 0) for status in layout.STATUSES},
        durations=durations, duplicates=_groups(duplicate_rows), settings=settings, problems=problems, rows=built)


def _read_json(path: Path) -> dict:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{path.parent}: no {path.name}; is this the output folder of 'genreslice build'?") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f"{path}: cannot be read as JSON ({err}); build the data set again to rewrite it") from err
    if not isinstance(record, dict):
        raise DatasetError(f"{path}: not a JSON object; build the data set again to rewrite it")
    return record


def _read_csv(path: Path, *, required: bool, columns: tuple[str, ...]) -> list[dict] | None:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: a file saved by a spreadsheet
            reader = csv.DictReader(handle)
            missing = [column for column in columns if column not in (reader.fieldnames or ())]
            if missing:
                raise DatasetError(f"{path}: no {', '.join(missing)} column{'s' if len(missing) > 1 else ''} in its "
                                   "first line (damaged or not a genreslice table); build the data set again to "
                                   "rewrite it")
            # A row cut short has None for its missing fields, one too long a list under None: text only.
            return [{key: value if isinstance(value, str) else "" for key, value in record.items()
                     if isinstance(key, str)} for record in reader]
    except FileNotFoundError:
        if required:
            raise DatasetError(f"{path.parent}: no {path.name}; build the data set again to write it") from None
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DatasetError(f"{path}: cannot be read ({err}); build the data set again to rewrite it") from err


def _artist_key(row: dict) -> str:
    """What the splits count as one artist (names equal but for case and spacing); a track without one is its own."""
    return split_key(row.get("artist") or None, row.get("track_id") or row.get("path", ""))


def _classes_more(count: int) -> str:
    return f"{count} more class{'es' if count != 1 else ''}"


def _mapping(record: dict, key: str) -> dict:
    """``record[key]`` when it is a JSON object, else an empty one (a damaged ``dataset.json`` is shown as far as it
    can be read)."""
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _classes(row: dict) -> tuple[str, ...]:
    if row.get("tags"):
        return tuple(tag for tag in row["tags"].split(TAG_SEPARATOR) if tag)
    return (row["genre"],) if row.get("genre") else ()


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0


def _float(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _not_built(rows: list[dict]) -> list[tuple[str, str, int, str, str]]:
    return reasons_counted((row.get("status", ""), row.get("reason", ""), row.get("path", "")) for row in rows
                           if row.get("status") in ("failed", "skipped", "too_short"))


def _groups(rows: list[dict]) -> list[dict]:
    groups: dict[str, dict] = {}
    for row in rows:
        group = groups.setdefault(row.get("group", ""), {"group": row.get("group", ""), "kind": row.get("kind", ""),
                                                        "action": row.get("action", ""), "files": 0, "splits": set(),
                                                        "paths": []})
        group["files"] += 1
        group["paths"].append(row.get("path", ""))
        if row.get("status") == "ok" and row.get("split"):
            group["splits"].add(row["split"])
    for group in groups.values():
        group["splits"] = sorted(group["splits"], key=lambda split: SPLITS.index(split) if split in SPLITS else 9)
    return list(groups.values())


def duration_summary(seconds: Sequence[float]) -> str:
    """``n tracks, min ..., median ..., max ..., total ...``; ``no tracks`` for none."""
    if not len(seconds):
        return "no tracks"
    values = np.asarray(seconds, dtype=float)
    low, p10, median, p90, high = np.percentile(values, (0, 10, 50, 90, 100))
    return (f"{len(values)} track{'s' if len(values) != 1 else ''}: min {low:.1f} s, 10% {p10:.1f} s, median {median:.1f} s, 90% {p90:.1f} s, "
            f"max {high:.1f} s; {values.sum() / 3600:.2f} h in all")


def report_text(report: DatasetReport, *, max_classes: int = 60) -> str:
    """The report as plain text for the terminal."""
    lines = [f"Data set {report.root}",
             f"  task: {'multi-label (tags)' if report.task == 'multilabel' else 'one class per track'}; "
             f"{len(report.classes)} {'tags' if report.task == 'multilabel' else 'classes'}; label source: "
             f"{report.label_source}; splits: {report.split_method}",
             "  files: " + ", ".join(f"{count} {status.replace('_', ' ')}"
                                     for status, count in report.status_counts.items())]
    spectrogram = _mapping(report.settings, "spectrogram")
    if spectrogram:
        lines.append(f"  slices: {spectrogram.get('features', 'sox')} spectrogram, {spectrogram.get('slice_size')} px "
                     f"of {_float(spectrogram.get('slice_seconds')) or 0:.2f} s each")
    lines += ["", "Tracks, artists and slices per class and split" + (" (a track counts for each of its tags)"
                                                                      if report.task == "multilabel" else "")]
    width = max([len(name) for name in report.classes] + [5])
    lines.append(f"  {'':<{width}}  " + "  ".join(f"{split:^22}" for split in SPLITS))
    lines.append(f"  {'class':<{width}}  " + "  ".join(f"{'tracks':>6} {'artists':>7} {'slices':>7}" for _ in SPLITS))
    shown = report.classes[:max_classes]
    for name in [*shown, "total"]:
        cells = []
        for split in SPLITS:
            if name == "total":
                rows = [row for row in report.rows if row["split"] == split]
                track_count = len(rows)
                artist_count = len({_artist_key(row) for row in rows})
                slice_count = sum(_int(row.get("n_slices")) for row in rows)
            else:
                track_count, artist_count = report.tracks[name][split], report.artists[name][split]
                slice_count = report.slices[name][split]
            cells.append(f"{track_count:>6} {artist_count:>7} {slice_count:>7}")
        lines.append(f"  {name:<{width}}  " + "  ".join(cells))
    if len(report.classes) > max_classes:
        lines.append(f"  ... and {_classes_more(len(report.classes) - max_classes)} (all in {REPORT_HTML}, unless "
                     "--no-pictures)")
    if report.warnings:
        lines += ["", "Warning: classes missing from a split, or with few tracks there (scores of that split on them "
                      "mean little; more artists of the class, or other --split-ratios, help):"]
        lines += [f"  {warning}" for warning in report.warnings[:40]]
        if len(report.warnings) > 40:
            lines.append(f"  ... and {len(report.warnings) - 40} more")
    lines += ["", "Durations of the tracks built"]
    lines += [f"  {split:<10} {duration_summary(report.durations[split])}" for split in SPLITS]
    lines += ["", "Files not built, by reason"]
    if not report.not_built:
        lines.append("  none: every file was built")
    for status, _, count, reason, path in report.not_built[:20]:
        shown_path = os.fsencode(path).decode("utf-8", errors="backslashreplace")
        lines.append(f"  {count:>7}  {status.replace('_', ' ')}: {reason or '(no reason recorded)'} (e.g. {shown_path})")
    if len(report.not_built) > 20:
        lines.append(f"  ... and {len(report.not_built) - 20} other kinds of reason")
    lines += ["", "Copies of one recording (duplicates.csv)"]
    lines += [f"  {problem}" for problem in report.problems]
    if not report.problems:
        kinds = collections.Counter((group["kind"], group["action"]) for group in report.duplicates)
        if not kinds:
            lines.append("  none found")
        for (kind, action), count in sorted(kinds.items()):
            what = "identical files" if kind == "exact" else "the same recording"
            lines.append(f"  {count} {kind} group{'s' if count != 1 else ''} ({what}): "
                         f"{_ACTIONS.get(action, action)} (--duplicates {action})")
        leaks = report.leaking_groups()
        if leaks:
            lines.append(f"  Warning: {len(leaks)} group{'s' if len(leaks) != 1 else ''} of copies built in more than one "
                         "split (test scores partly measure memory); e.g. " + ", ".join(
                             f"group {group['group']} in {'+'.join(group['splits'])}" for group in leaks[:3])
                         + "; build with --duplicates group or drop-extra")
    return "\n".join(lines) + "\n"


def write_pictures(report: DatasetReport, out_dir: str | os.PathLike, *, examples: int = 6,
                   seed: int = 0) -> list[Path]:
    """Draw the class balance, the durations and ``examples`` slices of each class (from as many tracks as
    possible, at random with ``seed``) as PNGs, and the HTML page with the text report and the pictures; returns
    the files written (each written atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {CLASS_BALANCE_PNG: draw_class_balance(report), DURATIONS_PNG: draw_durations(report),
              EXAMPLES_PNG: draw_examples(report, examples=examples, seed=seed)}
    written = []
    for name, image in images.items():
        write_png_atomic(image, out / name)
        written.append(out / name)
    layout.write_text_atomic(out / REPORT_HTML, report_html(report, images))
    written.append(out / REPORT_HTML)
    return written


def draw_class_balance(report: DatasetReport) -> Image.Image:
    """Horizontal bars: tracks of each class in each split, a bar per split (the first
    :data:`MAX_CHART_CLASSES` classes)."""
    classes = report.classes[:MAX_CHART_CLASSES] or ["(none)"]
    more = len(report.classes) - len(classes) if report.classes else 0
    title_font, font = font_of_size(18), font_of_size(13)
    label_width = min(260, 20 + 8 * max(len(name) for name in classes))
    bar, gap = 9, 8
    height = 90 + len(classes) * (3 * bar + gap) + 40 + (20 if more > 0 else 0)
    width = 1000
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 12), "tracks per class and split", fill=_TEXT, font=title_font, anchor="mt")
    left, right, top = label_width, width - 40, 70
    largest = max([report.tracks[name][split] for name in report.classes for split in SPLITS] + [1])
    ticks = [tick for tick in nice_ticks(0, largest) if tick >= 0]
    scale = (right - left) / max(ticks[-1], 1)
    bottom = height - 40 - (20 if more > 0 else 0)
    for tick in ticks:
        x = left + tick * scale
        draw.line([(x, top - 5), (x, bottom)], fill=_GRID)
        draw.text((x, bottom + 4), f"{tick:g}", fill=_TEXT, font=font, anchor="mt")
    for index, split in enumerate(SPLITS):
        x = left + index * 130
        draw.rectangle([x, 42, x + 14, 54], fill=_SPLIT_COLOURS[split])
        draw.text((x + 20, 48), split, fill=_TEXT, font=font, anchor="lm")
    for row, name in enumerate(classes):
        y = top + row * (3 * bar + gap)
        draw.text((left - 8, y + 1.5 * bar), _shorten(name, 30), fill=_TEXT, font=font, anchor="rm")
        for index, split in enumerate(SPLITS):
            count = report.tracks.get(name, {}).get(split, 0)
            if count:
                draw.rectangle([left, y + index * bar, left + max(1, count * scale), y + (index + 1) * bar - 1],
                               fill=_SPLIT_COLOURS[split])
            elif name in report.tracks:
                draw.text((left + 3, y + index * bar + bar // 2), "none", fill=(200, 30, 30), font=font, anchor="lm")
    if more > 0:
        draw.text((10, height - 12), f"... and {_classes_more(more)} (in the report)", fill=_TEXT, font=font,
                  anchor="lm")
    return image


def draw_durations(report: DatasetReport) -> Image.Image:
    """A histogram of the tracks' durations, the splits stacked."""
    width, height = 1000, 420
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    title_font, font = font_of_size(18), font_of_size(13)
    draw.text((width // 2, 12), "track durations (seconds)", fill=_TEXT, font=title_font, anchor="mt")
    values = [seconds for split in SPLITS for seconds in report.durations[split]]
    left, right, top, bottom = 70, width - 30, 60, height - 50
    if not values:
        draw.text((width // 2, height // 2), "no tracks built", fill=_TEXT, font=font, anchor="mm")
        return image
    low, high = min(values), max(values)
    if high - low < 1:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, 31)
    counts = {split: np.histogram(report.durations[split], bins=edges)[0] for split in SPLITS}
    total = sum(counts.values())
    ticks = nice_ticks(0, max(int(total.max()), 1))
    y_scale = (bottom - top) / max(ticks[-1], 1)
    for tick in ticks:
        y = bottom - tick * y_scale
        draw.line([(left, y), (right, y)], fill=_GRID)
        draw.text((left - 6, y), f"{tick:g}", fill=_TEXT, font=font, anchor="rm")
    column = (right - left) / (len(edges) - 1)
    for index in range(len(edges) - 1):
        base = bottom
        for split in SPLITS:
            count = int(counts[split][index])
            if count:
                draw.rectangle([left + index * column + 1, base - count * y_scale, left + (index + 1) * column - 1,
                                base], fill=_SPLIT_COLOURS[split])
                base -= count * y_scale
    for tick in nice_ticks(low, high):
        if low <= tick <= high:
            x = left + (tick - low) / (high - low) * (right - left)
            draw.text((x, bottom + 6), f"{tick:g}", fill=_TEXT, font=font, anchor="mt")
    for index, split in enumerate(SPLITS):
        x = right - 390 + index * 130
        draw.rectangle([x, 40, x + 14, 52], fill=_SPLIT_COLOURS[split])
        draw.text((x + 20, 46), split, fill=_TEXT, font=font, anchor="lm")
    return image


def draw_examples(report: DatasetReport, *, examples: int = 6, seed: int = 0) -> Image.Image:
    """A row per class (at most :data:`MAX_EXAMPLE_CLASSES`): ``examples`` slices of random tracks of it, each from
    another track where the class has enough, low frequencies at the bottom as in the data set."""
    rng = random.Random(seed)
    classes = report.classes[:MAX_EXAMPLE_CLASSES]
    size = 96
    label_width = min(240, 20 + 8 * max([len(name) for name in classes] + [6]))
    font, title_font = font_of_size(13), font_of_size(18)
    width = label_width + max(examples, 1) * (size + 6) + 10
    height = 50 + max(len(classes), 1) * (size + 8) + (24 if len(report.classes) > len(classes) else 0)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 12), f"example slices per class (random, seed {seed})", fill=_TEXT, font=title_font,
              anchor="mt")
    by_class: dict[str, list[dict]] = collections.defaultdict(list)
    for row in report.rows:
        for name in _classes(row):
            by_class[name].append(row)
    for line, name in enumerate(classes):
        y = 44 + line * (size + 8)
        draw.text((label_width - 8, y + size // 2), _shorten(name, 28), fill=_TEXT, font=font, anchor="rm")
        tracks = sorted(by_class[name], key=lambda row: row.get("track_id", ""))
        chosen = rng.sample(tracks, min(examples, len(tracks)))
        picks = [(row, rng.randrange(max(_int(row.get("n_slices")), 1))) for row in chosen]
        while chosen and len(picks) < examples:  # fewer tracks than examples: more slices of them
            row = rng.choice(chosen)
            picks.append((row, rng.randrange(max(_int(row.get("n_slices")), 1))))
        for column, (row, index) in enumerate(picks):
            x = label_width + column * (size + 6)
            tile = _slice_image(report.root, row.get("track_id", ""), index, size)
            if tile is None:
                draw.rectangle([x, y, x + size - 1, y + size - 1], outline=(200, 30, 30))
                draw.text((x + size // 2, y + size // 2), "unreadable", fill=(200, 30, 30), font=font, anchor="mm")
            else:
                image.paste(tile, (x, y))
    if len(report.classes) > len(classes):
        draw.text((10, height - 16), f"... and {_classes_more(len(report.classes) - len(classes))}", fill=_TEXT,
                  font=font, anchor="lm")
    return image


def _slice_image(root: Path, track_id: str, index: int, size: int) -> Image.Image | None:
    if not layout.is_safe_track_id(track_id):
        return None
    try:
        pixels = decode_gray_png((root / layout.slice_path(track_id, index)).read_bytes())
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR).convert("RGB")


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def report_html(report: DatasetReport, images: dict[str, Image.Image]) -> str:
    """One self-contained page: the text report and the pictures (embedded, so the file can be mailed alone)."""
    embedded = []
    for name, image in images.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        embedded.append(f'<h2>{html.escape(name)}</h2>\n<img alt="{html.escape(name)}" '
                        f'src="data:image/png;base64,{data}" style="max-width:100%">')
    text = report_text(report, max_classes=10_000)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>genreslice inspect: {html.escape(str(report.root))}</title></head>\n<body style=\"font-family:"
            f"sans-serif\">\n<h1>{html.escape(str(report.root))}</h1>\n<pre>{html.escape(text)}</pre>\n"
            + "\n".join(embedded) + "\n</body></html>\n")

"""Plots drawn with Pillow: training curves (and, for evaluation, heat maps) as PNG files.

Pillow is already a dependency for slices; a plotting library would add a large install for two figures.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from genreslice.pipeline.layout import write_bytes_atomic

_SERIES_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))
_GRID = (225, 225, 225)
_AXIS = (60, 60, 60)


def font_of_size(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round numbers spanning ``[low, high]``."""
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        high = low + 1.0
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    return [start + i * step for i in range(int(math.ceil((high - start) / step)) + 1)]


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    *,
    title: str,
    x_values: Sequence[float],
    series: dict[str, Sequence[float]],
    fonts: tuple[ImageFont.ImageFont, ImageFont.ImageFont],
) -> None:
    """One line chart inside ``box`` (left, top, right, bottom), with grid, ticks, title and legend."""
    title_font, tick_font = fonts
    left, top, right, bottom = box
    draw.text(((left + right) // 2, top), title, fill=_AXIS, font=title_font, anchor="mt")
    plot_left, plot_top, plot_right, plot_bottom = left + 60, top + 30, right - 10, bottom - 40
    finite = [v for values in series.values() for v in values if v is not None and math.isfinite(v)]
    y_low, y_high = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if y_high - y_low < 1e-9:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    y_ticks = nice_ticks(y_low, y_high)
    y_low, y_high = min(y_ticks[0], y_low), max(y_ticks[-1], y_high)
    x_low, x_high = (min(x_values), max(x_values)) if len(x_values) else (0, 1)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1

    def to_pixel(x: float, y: float) -> tuple[float, float]:
        px = plot_left + (x - x_low) / (x_high - x_low) * (plot_right - plot_left)
        py = plot_bottom - (y - y_low) / (y_high - y_low) * (plot_bottom - plot_top)
        return px, py

    for tick in y_ticks:
        _, py = to_pixel(x_low, tick)
        draw.line([(plot_left, py), (plot_right, py)], fill=_GRID)
        draw.text((plot_left - 6, py), f"{tick:g}", fill=_AXIS, font=tick_font, anchor="rm")
    x_step = max(1, int(math.ceil((x_high - x_low) / 10)))
    for tick in range(int(math.ceil(x_low)), int(x_high) + 1, x_step):
        px, _ = to_pixel(tick, y_low)
        draw.line([(px, plot_bottom), (px, plot_bottom + 4)], fill=_AXIS)
        draw.text((px, plot_bottom + 6), str(tick), fill=_AXIS, font=tick_font, anchor="mt")
    draw.text(((plot_left + plot_right) // 2, bottom - 4), "epoch", fill=_AXIS, font=tick_font, anchor="mb")
    draw.rectangle([plot_left, plot_top, plot_right, plot_bottom], outline=_AXIS)
    for position, (name, values) in enumerate(series.items()):
        colour = _SERIES_COLOURS[position % len(_SERIES_COLOURS)]
        points = [to_pixel(x, y) for x, y in zip(x_values, values) if y is not None and math.isfinite(y)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        legend_y = plot_top + 8 + 18 * position
        draw.line([(plot_right - 120, legend_y), (plot_right - 100, legend_y)], fill=colour, width=3)
        draw.text((plot_right - 94, legend_y), name, fill=_AXIS, font=tick_font, anchor="lm")


def plot_training_curves(history: Sequence[dict], path: str | os.PathLike) -> None:
    """Draw loss and accuracy per epoch, training and validation, side by side, as a PNG.

    Parameters
    ----------
    history : sequence of dict
        One row per epoch with ``epoch`` (1-based) and any of ``loss``, ``val_loss``, ``accuracy``,
        ``val_accuracy``; missing values are left out of the lines.
    path : str or os.PathLike
        Where the PNG goes (written atomically).
    """
    width, height = 1200, 480
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    fonts = (font_of_size(18), font_of_size(13))
    epochs = [float(row["epoch"]) for row in history]

    def column(key: str) -> list[float | None]:
        return [None if row.get(key) in (None, "") else float(row[key]) for row in history]

    _draw_panel(draw, (0, 10, width // 2, height), title="loss", x_values=epochs,
                series={"train": column("loss"), "validation": column("val_loss")}, fonts=fonts)
    _draw_panel(draw, (width // 2, 10, width, height), title="accuracy", x_values=epochs,
                series={"train": column("accuracy"), "validation": column("val_accuracy")}, fonts=fonts)
    write_png_atomic(image, path)


def _heat_colour(fraction: float) -> tuple[int, int, int]:
    """White at 0 to dark blue at 1."""
    low, high = np.array((247, 251, 255)), np.array((8, 48, 107))
    return tuple(int(round(v)) for v in low + (high - low) * min(max(fraction, 0.0), 1.0))


def plot_confusion_matrix(confusion: np.ndarray, classes: Sequence[str], path: str | os.PathLike, *,
                          title: str = "") -> None:
    """Draw a confusion matrix as a labelled heat map PNG.

    Each cell shows its count; its colour is the count's share of its row (the true genre), so the diagonal
    reads as per-genre recall whatever the class sizes.

    Parameters
    ----------
    confusion : np.ndarray
        ``(n, n)`` counts, row = true class, column = predicted class.
    classes : sequence of str
        The ``n`` class names, in matrix order.
    path : str or os.PathLike
        Where the PNG goes (written atomically).
    title : str
        Drawn above the matrix.
    """
    confusion = np.asarray(confusion)
    n = len(classes)
    if confusion.shape != (n, n):
        raise ValueError(f"confusion must be {n}x{n} for {n} classes. Received: shape {confusion.shape}")
    title_font, label_font, cell_font = font_of_size(18), font_of_size(14), font_of_size(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_width(text: str, font) -> int:
        left, _, right, _ = measure.textbbox((0, 0), text, font=font)
        return int(right - left)

    cell = max(36, max((text_width(str(int(v)), cell_font) for v in confusion.ravel()), default=0) + 12)
    label_space = max((text_width(name, label_font) for name in classes), default=0) + 16
    left, top = label_space + 30, label_space + 70
    width, height = max(left + n * cell + 20, text_width(title, title_font) + 40), top + n * cell + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 10), title, fill=_AXIS, font=title_font, anchor="mt")
    draw.text((left + n * cell // 2, 40), "predicted genre", fill=_AXIS, font=label_font, anchor="mt")
    rows = confusion.sum(axis=1)
    for row in range(n):
        y = top + row * cell
        draw.text((left - 8, y + cell // 2), classes[row], fill=_AXIS, font=label_font, anchor="rm")
        for column in range(n):
            x = left + column * cell
            count = int(confusion[row, column])
            fraction = count / rows[row] if rows[row] else 0.0
            draw.rectangle([x, y, x + cell, y + cell], fill=_heat_colour(fraction), outline=_GRID)
            draw.text((x + cell // 2, y + cell // 2), str(count), font=cell_font, anchor="mm",
                      fill="white" if fraction > 0.5 else _AXIS)
    for column, name in enumerate(classes):
        # Column labels read bottom to top: drawn on a strip, then turned.
        strip = Image.new("RGB", (text_width(name, label_font) + 4, cell), "white")
        ImageDraw.Draw(strip).text((0, cell // 2), name, fill=_AXIS, font=label_font, anchor="lm")
        turned = strip.rotate(90, expand=True)
        image.paste(turned, (left + column * cell, top - 8 - turned.height))
    axis = Image.new("RGB", (text_width("true genre", label_font) + 4, 24), "white")
    ImageDraw.Draw(axis).text((0, 12), "true genre", fill=_AXIS, font=label_font, anchor="lm")
    axis = axis.rotate(90, expand=True)
    image.paste(axis, (4, top + max(0, (n * cell - axis.height) // 2)))
    draw.rectangle([left, top, left + n * cell, top + n * cell], outline=_AXIS)
    write_png_atomic(image, path)


def write_png_atomic(image: Image.Image, path: str | os.PathLike) -> None:
    """Save a Pillow image as PNG so readers never see a half-written file."""
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())



def time_unit(seconds: float) -> tuple[str, float]:
    """The unit a duration reads best in (``s`` below 10 minutes, ``min`` below 10 hours, else ``h``), and its
    length in seconds."""
    if seconds < 600:
        return "s", 1.0
    if seconds < 36000:
        return "min", 60.0
    return "h", 3600.0


def duration_text(seconds: float) -> str:
    """Seconds for reading: ``73 s``, ``12.5 min``, ``2.3 h``; ``-`` for a number that is not finite."""
    if not math.isfinite(seconds):
        return "-"
    unit, length = time_unit(seconds)
    return f"{seconds:.0f} s" if unit == "s" else f"{seconds / length:.1f} {unit}"


def plot_comparison(labels: Sequence[str], accuracies: dict[str, Sequence[float | None]],
                    seconds: Sequence[float | None], path: str | os.PathLike, *, title: str = "") -> None:
    """Draw grouped accuracy bars per model, with each model's training time on a second axis, as a PNG.

    Parameters
    ----------
    labels : sequence of str
        One name per model, drawn under its bars (turned upright when too long for its slot).
    accuracies : dict
        Series name (e.g. ``"majority vote"``) -> one accuracy in [0, 1] per model; None draws no bar.
    seconds : sequence of float or None
        Each model's training time in seconds, drawn as a diamond against the right axis and written beside it;
        None draws nothing.
    path : str or os.PathLike
        Where the PNG goes (written atomically).
    title : str
        Drawn above the chart.
    """
    n = len(labels)
    if any(len(values) != n for values in accuracies.values()) or len(seconds) != n:
        raise ValueError(f"every series needs one value per label ({n}). Received: "
                         f"{[len(v) for v in accuracies.values()]} accuracies and {len(seconds)} times")
    title_font, label_font, small_font = font_of_size(18), font_of_size(14), font_of_size(12)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_width(text: str, font) -> int:
        left, _, right, _ = measure.textbbox((0, 0), text, font=font)
        return int(right - left)

    slot = 150
    upright = any(text_width(label, label_font) > slot - 10 for label in labels)
    label_space = (max((text_width(label, label_font) for label in labels), default=0) + 16) if upright else 30
    plot_left, plot_top = 80, 90
    width = max(plot_left + n * slot + 90, text_width(title, title_font) + 40, 640)
    plot_right = width - 90
    slot = (plot_right - plot_left) / max(n, 1)
    plot_bottom = plot_top + 320
    height = plot_bottom + label_space + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((width // 2, 10), title, fill=_AXIS, font=title_font, anchor="mt")

    def accuracy_y(value: float) -> float:
        return plot_bottom - min(max(value, 0.0), 1.0) * (plot_bottom - plot_top)

    for step in range(6):
        y = accuracy_y(step / 5)
        draw.line([(plot_left, y), (plot_right, y)], fill=_GRID)
        draw.text((plot_left - 6, y), f"{step / 5:.1f}", fill=_AXIS, font=small_font, anchor="rm")
    axis = Image.new("RGB", (text_width("song accuracy", label_font) + 4, 22), "white")
    ImageDraw.Draw(axis).text((0, 11), "song accuracy", fill=_AXIS, font=label_font, anchor="lm")
    axis = axis.rotate(90, expand=True)
    image.paste(axis, (6, plot_top + (plot_bottom - plot_top - axis.height) // 2))

    known = [value for value in seconds if value is not None and math.isfinite(value)]
    unit, unit_seconds = time_unit(max(known, default=0.0))
    time_ticks = nice_ticks(0.0, max(known, default=1.0) / unit_seconds or 1.0)
    time_top = time_ticks[-1] if time_ticks else 1.0
    for tick in time_ticks:
        y = plot_bottom - tick / time_top * (plot_bottom - plot_top)
        draw.line([(plot_right, y), (plot_right + 4, y)], fill=_AXIS)
        draw.text((plot_right + 7, y), f"{tick:g}", fill=_AXIS, font=small_font, anchor="lm")
    axis = Image.new("RGB", (text_width(f"training time ({unit})", label_font) + 4, 22), "white")
    ImageDraw.Draw(axis).text((0, 11), f"training time ({unit})", fill=_AXIS, font=label_font, anchor="lm")
    axis = axis.rotate(270, expand=True)
    image.paste(axis, (width - 28, plot_top + (plot_bottom - plot_top - axis.height) // 2))

    time_colour = _SERIES_COLOURS[3]
    n_series = max(len(accuracies), 1)
    bar = min(48.0, slot * 0.7 / n_series)
    for index, label in enumerate(labels):
        centre = plot_left + (index + 0.5) * slot
        for position, values in enumerate(accuracies.values()):
            value = values[index]
            left = centre + (position - n_series / 2) * bar
            if value is None or not math.isfinite(value):
                draw.text((left + bar / 2, plot_bottom - 4), "-", fill=_AXIS, font=small_font, anchor="mb")
                continue
            draw.rectangle([left + 1, accuracy_y(value), left + bar - 1, plot_bottom],
                           fill=_SERIES_COLOURS[position % len(_SERIES_COLOURS)])
            draw.text((left + bar / 2, accuracy_y(value) - 3), f"{value:.2f}", fill=_AXIS, font=small_font,
                      anchor="mb")
        value = seconds[index]
        if value is not None and math.isfinite(value):
            y = plot_bottom - value / unit_seconds / time_top * (plot_bottom - plot_top)
            draw.polygon([(centre, y - 7), (centre + 7, y), (centre, y + 7), (centre - 7, y)], fill=time_colour,
                         outline="white")
            shown = duration_text(value)
            # On a white box: the label may fall on a bar.
            box = draw.textbbox((centre + 11, y), shown, font=small_font, anchor="lm")
            draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill="white", outline=time_colour)
            draw.text((centre + 11, y), shown, fill=time_colour, font=small_font, anchor="lm")
        if upright:
            strip = Image.new("RGB", (text_width(label, label_font) + 4, 22), "white")
            ImageDraw.Draw(strip).text((0, 11), label, fill=_AXIS, font=label_font, anchor="lm")
            turned = strip.rotate(90, expand=True)
            image.paste(turned, (int(centre - turned.width / 2), plot_bottom + 8))
        else:
            draw.text((centre, plot_bottom + 8), label, fill=_AXIS, font=label_font, anchor="mt")
    draw.rectangle([plot_left, plot_top, plot_right, plot_bottom], outline=_AXIS)

    legend = [(name, _SERIES_COLOURS[position % len(_SERIES_COLOURS)], "bar")
              for position, name in enumerate(accuracies)] + [("training time", time_colour, "diamond")]
    x = plot_left
    for name, colour, kind in legend:
        y = 52
        if kind == "bar":
            draw.rectangle([x, y - 7, x + 16, y + 7], fill=colour)
        else:
            draw.polygon([(x + 8, y - 7), (x + 15, y), (x + 8, y + 7), (x + 1, y)], fill=colour)
        draw.text((x + 22, y), name, fill=_AXIS, font=label_font, anchor="lm")
        x += 22 + text_width(name, label_font) + 24
    write_png_atomic(image, path)

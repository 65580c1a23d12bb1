"""A model's card: everything needed to use its network correctly outside ``genreslice train``'s folder.

A network file without its preprocessing is a trap: the same network fed slices of 44.1 kHz audio instead of
22.05 kHz, or of another spectrogram, answers wrongly and says nothing. The card names the classes in output order,
the task, the spectrogram settings (representation, sample rate, columns per second, the ``mel`` settings), how
slices are cut and scaled, how a song's slices are voted, the tag thresholds, the genreslice version and the data
set's fingerprint. ``genreslice export`` writes it beside the exported network (``genreslice-model.json``) and
``genreslice serve`` answers it at ``GET /model``.

>>> from genreslice.training.model_dir import load_trained_model
>>> card = model_card(load_trained_model("model/"))                # doctest: +SKIP
>>> card["classes"], card["spectrogram"]["sample_rate"]             # doctest: +SKIP
"""
from __future__ import annotations

import math

from genreslice import __version__
from genreslice.pipeline.png import GRAY_MAX
from genreslice.training.model_dir import TrainedModel
from genreslice.training.tagging import recorded_thresholds

#: The card's format: a reader refuses a card of another version.
CARD_FORMAT = "genreslice-model"
CARD_FORMAT_VERSION = 1

#: How a spectrogram becomes slices, for the card (the rule of :func:`genreslice.pipeline.slicing.slice_spectrogram`).
SLICING_RULE = ("the spectrogram has slice_size + 1 rows, row 0 the highest frequency (SoX's Nyquist row; black for "
                "mel), the last row the lowest; drop row 0, then cut the columns from the start into consecutive, "
                "non-overlapping slices of slice_size columns and drop a trailing partial slice. A clip with fewer "
                "columns than one slice (but at least one) is repeated along time to fill one slice")
#: How gray levels become the network's input (:func:`genreslice.pipeline.png.to_model_input`).
SCALING_RULE = f"float32 = gray level (0..{GRAY_MAX}) / {GRAY_MAX}"
MAJORITY_RULE = ("each slice votes for its most probable class (a tie between slices' classes goes to the lower "
                 "class index); the class with the most votes wins, a tie going to the higher mean probability over "
                 "the slices, then to the lower class index")
MEAN_RULE = "the class with the highest probability averaged over the song's slices (a tie: the lower class index)"
TAGS_RULE = ("a sigmoid per tag; a song's probability of a tag is the mean over its slices; the song has each tag whose "
             "probability is at or above that tag's threshold")


def model_card(trained: TrainedModel) -> dict:
    """The card of a trained model: a JSON-ready dict (see the module's docstring).

    Parameters
    ----------
    trained : TrainedModel
        A model loaded by :func:`genreslice.training.model_dir.load_trained_model`.

    Returns
    -------
    dict
        ``format``, ``format_version``, ``genreslice_version``, ``task`` (``"single"`` or ``"multilabel"``),
        ``classes`` (output order), ``input`` (shape, dtype, scaling and layout), ``output`` (activation),
        ``spectrogram`` (the data set's settings, as ``model.json`` records them), ``slicing`` (slice size and
        seconds, the cutting rule), ``voting`` (the rule and its alternatives; the thresholds of a multi-label model),
        ``dataset`` (its fingerprint and slice counts; not its path) and ``training`` (the preset and settings, the
        status and final metrics).
    """
    record = trained.record
    spectrogram = dict(record.get("spectrogram") or {})
    size = int(spectrogram.get("slice_size", 128))
    columns_per_second = spectrogram.get("columns_per_second") or spectrogram.get("pixels_per_second")
    slice_seconds = spectrogram.get("slice_seconds") or (size / columns_per_second if columns_per_second else None)
    multilabel = record.get("task") == "multilabel"
    classes = list(trained.classes)
    if multilabel:
        thresholds, tuned = recorded_thresholds(record, classes)
        voting = {"rule": "mean", "description": TAGS_RULE,
                  "thresholds": {name: round(float(value), 6) for name, value in zip(classes, thresholds)},
                  "thresholds_tuned": bool(tuned)}
    else:
        voting = {"rule": "majority", "description": MAJORITY_RULE, "alternatives": {"mean": MEAN_RULE}}
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    return {
        "format": CARD_FORMAT,
        "format_version": CARD_FORMAT_VERSION,
        "genreslice_version": __version__,
        "task": "multilabel" if multilabel else "single",
        "classes": classes,
        "input": {"shape": [None, size, size, 1], "dtype": "float32", "scaling": SCALING_RULE,
                  "layout": "(slices, frequency rows, time columns, 1)"},
        "output": {"shape": [None, len(classes)], "activation": "sigmoid" if multilabel else "softmax"},
        "spectrogram": spectrogram,
        "slicing": {"slice_size": size, "slice_seconds": _number(slice_seconds),
                    "columns_per_second": _number(columns_per_second), "rule": SLICING_RULE},
        "voting": voting,
        "dataset": {key: dataset[key] for key in ("fingerprint", "train_slices", "validation_slices")
                    if key in dataset},
        "training": {"status": record.get("status"), **(record.get("training") or {}),
                     "metrics": record.get("metrics") or {},
                     "keras_version": record.get("keras_version"),
                     "tensorflow_version": record.get("tensorflow_version")},
    }


def _number(value) -> float | None:
    """A finite positive number as a float, else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    return None

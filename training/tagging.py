"""Multi-label tagging (``--task multilabel``): song scores, per-tag ROC-AUC and PR-AUC, and tuned thresholds.

A multi-label model has a sigmoid per tag; a song's probability of a tag is the mean of its slices' probabilities.
The scores are those MTG-Jamendo's published baselines report, per tag and averaged:

* ROC-AUC: the probability that a song with the tag scores above one without it (ties count one half): the
  Mann-Whitney statistic, computed exactly from average ranks.
* PR-AUC: average precision, ``sum over thresholds of (R_n - R_(n-1)) * P_n`` at every distinct score (the
  definition of scikit-learn's ``average_precision_score``, which the baselines used).
* macro: the mean over tags (those with songs of both kinds in the split; a tag without is listed in
  ``undefined`` and left out); micro: the score of all (song, tag) pairs pooled.

Thresholds: for each tag, the score of the validation songs that gives the highest F-score when the tag is
predicted at and above it (a tag without validation songs keeps 0.5). Precision, recall and F-score at those
thresholds are reported macro (mean over tags; a tag never predicted has precision 0) and micro (pooled counts).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The threshold of a tag the validation split cannot tune (no song has it).
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class SongTags:
    """Songs of one split with their true tags and mean slice probabilities.

    Attributes
    ----------
    song_ids : np.ndarray
        Object array, songs in order of their first slice.
    truth : np.ndarray
        ``bool`` ``(n_songs, n_tags)``: the song's tags.
    probability : np.ndarray
        ``float64`` ``(n_songs, n_tags)``: each tag's probability averaged over the song's slices.
    n_slices : np.ndarray
        Slices per song.
    """

    song_ids: np.ndarray
    truth: np.ndarray
    probability: np.ndarray
    n_slices: np.ndarray


def song_tags(probabilities, labels, song_ids) -> SongTags:
    """Average the slice probabilities of each song.

    Parameters
    ----------
    probabilities : array_like
        ``(n_slices, n_tags)`` sigmoid outputs.
    labels : array_like
        ``(n_slices, n_tags)`` multi-hot tags of each slice's song (every slice of a song has the same).
    song_ids : array_like
        ``(n_slices,)`` the song of each slice.

    Raises
    ------
    ValueError
        Shapes disagree, there is no slice, or a probability is not finite (a diverged model).
    """
    probabilities = np.asarray(probabilities)  # not copied: millions of slices of dozens of tags are large
    labels = np.asarray(labels)
    song_ids = np.asarray(song_ids, dtype=object)
    if probabilities.ndim != 2 or labels.shape != probabilities.shape or song_ids.shape != probabilities.shape[:1]:
        raise ValueError(f"probabilities, labels and song_ids must be (n, k), (n, k) and (n,). Received: "
                         f"{probabilities.shape}, {labels.shape}, {song_ids.shape}")
    if not len(probabilities):
        raise ValueError("no slices to score")
    numbers: dict = {}
    song = np.fromiter((numbers.setdefault(song_id, len(numbers)) for song_id in song_ids), dtype=np.int64,
                       count=len(song_ids))
    n_songs = len(numbers)
    counts = np.bincount(song, minlength=n_songs)
    sums = np.stack([np.bincount(song, weights=probabilities[:, tag], minlength=n_songs)
                     for tag in range(probabilities.shape[1])], axis=1)
    if not np.isfinite(sums).all():
        raise ValueError("probabilities must be finite. Received: NaN or infinite values (a model whose training "
                         "diverged?)")
    truth = np.zeros((n_songs, labels.shape[1]), dtype=bool)
    truth[song] = labels > 0.5
    ids = np.empty(n_songs, dtype=object)
    ids[:] = list(numbers)
    return SongTags(song_ids=ids, truth=truth, probability=sums / counts[:, None], n_slices=counts)


def roc_auc(truth, score) -> float:
    """ROC-AUC of one tag (NaN when the songs are all of one kind).

    >>> roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1])
    0.75
    """
    truth, score = np.asarray(truth, dtype=bool), np.asarray(score, dtype=np.float64)
    positives = int(truth.sum())
    negatives = truth.size - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = _average_ranks(score)
    return float((ranks[truth].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def average_precision(truth, score) -> float:
    """PR-AUC (average precision) of one tag (NaN when no song has it).

    >>> average_precision([1, 0, 1, 0], [0.9, 0.8, 0.4, 0.1])
    0.8333333333333333
    """
    truth, score = np.asarray(truth, dtype=bool), np.asarray(score, dtype=np.float64)
    if not truth.any():
        return float("nan")
    true_positives, false_positives, _ = _cumulative_counts(truth, score)
    precision = true_positives / (true_positives + false_positives)
    recall = true_positives / true_positives[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def tune_thresholds(truth, probability) -> np.ndarray:
    """Each tag's threshold: the song score at and above which predicting it gives the best F-score on these songs
    (the highest such score on a tie); :data:`DEFAULT_THRESHOLD` for a tag no song has."""
    truth, probability = np.asarray(truth, dtype=bool), np.asarray(probability, dtype=np.float64)
    thresholds = np.full(truth.shape[1], DEFAULT_THRESHOLD)
    for tag in range(truth.shape[1]):
        if not truth[:, tag].any():
            continue
        true_positives, false_positives, scores = _cumulative_counts(truth[:, tag], probability[:, tag])
        false_negatives = true_positives[-1] - true_positives
        f_score = 2 * true_positives / (2 * true_positives + false_positives + false_negatives)
        thresholds[tag] = scores[int(np.argmax(f_score))]  # the first maximum: the highest threshold
    return thresholds


def slice_scores(truth, probability) -> dict:
    """Macro ROC-AUC and PR-AUC over slices, one tag (column) at a time: bounded memory for millions of slices."""
    roc = np.array([roc_auc(truth[:, tag], probability[:, tag]) for tag in range(truth.shape[1])])
    pr = np.array([average_precision(truth[:, tag], probability[:, tag]) for tag in range(truth.shape[1])])
    defined = np.isfinite(roc)
    return {"roc_auc_macro": _mean(roc[defined]), "pr_auc_macro": _mean(pr[defined])}


def tag_scores(truth, probability, thresholds) -> dict:
    """Every figure of a split's songs: per tag and macro/micro ROC-AUC and PR-AUC, and precision, recall and
    F-score at ``thresholds`` (JSON-ready; NaN scores of undefined tags become None).

    ROC-AUC and PR-AUC macro average the tags with songs of both kinds (``undefined`` counts the others);
    precision, recall and F-score macro average every tag, one never predicted or with no song counting 0 (as
    scikit-learn's ``zero_division=0``)."""
    truth, probability = np.asarray(truth, dtype=bool), np.asarray(probability, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    per_tag_roc = np.array([roc_auc(truth[:, k], probability[:, k]) for k in range(truth.shape[1])])
    per_tag_pr = np.array([average_precision(truth[:, k], probability[:, k]) for k in range(truth.shape[1])])
    predicted = probability >= thresholds[None, :]
    true_positives = (predicted & truth).sum(axis=0)
    false_positives = (predicted & ~truth).sum(axis=0)
    false_negatives = (~predicted & truth).sum(axis=0)
    precision, recall, f_score = _prf(true_positives, false_positives, false_negatives)
    defined = np.isfinite(per_tag_roc)
    micro_p, micro_r, micro_f = _prf(true_positives.sum(), false_positives.sum(), false_negatives.sum())
    return {
        "roc_auc_macro": _mean(per_tag_roc[defined]),
        "pr_auc_macro": _mean(per_tag_pr[defined]),
        "precision_macro": _mean(precision),
        "recall_macro": _mean(recall),
        "f_score_macro": _mean(f_score),
        "roc_auc_micro": _number(roc_auc(truth.ravel(), probability.ravel())),
        "pr_auc_micro": _number(average_precision(truth.ravel(), probability.ravel())),
        "precision_micro": _number(micro_p),
        "recall_micro": _number(micro_r),
        "f_score_micro": _number(micro_f),
        "per_tag": {
            "roc_auc": [_number(value) for value in per_tag_roc],
            "pr_auc": [_number(value) for value in per_tag_pr],
            "precision": [_number(value) for value in precision],
            "recall": [_number(value) for value in recall],
            "f_score": [_number(value) for value in f_score],
            "threshold": [float(value) for value in thresholds],
            "support": [int(value) for value in truth.sum(axis=0)],
        },
        "undefined": int((~defined).sum()),
    }


def recorded_thresholds(record: dict, classes: list[str]) -> tuple[np.ndarray, bool]:
    """The per-tag thresholds ``model.json`` records (and True), or :data:`DEFAULT_THRESHOLD` for every tag (and
    False) when it lacks a number from 0 to 1 for some tag: a run that has not finished, or a damaged record."""
    by_tag = record.get("thresholds", {}).get("by_tag") if isinstance(record.get("thresholds"), dict) else None
    if isinstance(by_tag, dict) and all(_is_threshold(by_tag.get(name)) for name in classes):
        return np.array([float(by_tag[name]) for name in classes]), True
    return np.full(len(classes), DEFAULT_THRESHOLD), False


def _is_threshold(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


#: The rows of the summary TSV, as MediaEval's mood/theme baseline files name them, and the keys they show.
SUMMARY_ROWS = (
    ("ROC-AUC-macro", "roc_auc_macro"), ("PR-AUC-macro", "pr_auc_macro"), ("precision-macro", "precision_macro"),
    ("recall-macro", "recall_macro"), ("F-score-macro", "f_score_macro"), ("ROC-AUC-micro", "roc_auc_micro"),
    ("PR-AUC-micro", "pr_auc_micro"), ("precision-micro", "precision_micro"), ("recall-micro", "recall_micro"),
    ("F-score-micro", "f_score_micro"),
)


def per_tag_tsv(tags, scores: dict) -> str:
    """``tag roc_auc pr_auc`` rows, tab-separated, as MTG-Jamendo's published per-tag baseline files (an undefined
    score is empty)."""
    lines = ["tag\troc_auc\tpr_auc"]
    for tag, roc, pr in zip(tags, scores["per_tag"]["roc_auc"], scores["per_tag"]["pr_auc"]):
        lines.append(f"{tag}\t{_cell(roc)}\t{_cell(pr)}")
    return "\n".join(lines) + "\n"


def summary_tsv(scores: dict) -> str:
    """``name value`` rows, tab-separated, as MediaEval's mood/theme baseline files."""
    return "".join(f"{name}\t{_cell(scores[key], 6)}\n" for name, key in SUMMARY_ROWS)


def _cell(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def _cumulative_counts(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when predicting at and above each distinct score, highest first, and the scores."""
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order]
    last_of_each = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    true_positives = np.cumsum(truth)[last_of_each].astype(np.float64)
    false_positives = last_of_each + 1 - true_positives
    return true_positives, false_positives, score[last_of_each]


def _prf(true_positives, false_positives, false_negatives):
    """Precision, recall and F-score; 0 where undefined (nothing predicted, or no true song)."""
    tp, fp, fn = (np.asarray(value, dtype=np.float64) for value in (true_positives, false_positives, false_negatives))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f_score = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return precision, recall, f_score


def _mean(values: np.ndarray) -> float | None:
    return float(np.mean(values)) if len(values) else None


def _number(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None

"""A song's genre from its slices' predictions, and the scores of song-level predictions. Plain numpy: no model.

Two aggregations over a song's slices, given each slice's class probabilities:

- **majority**: each slice votes for its most probable class; the class with the most votes wins. A tie in
  votes goes to the tied class with the higher mean probability, and a tie in that to the lower class index
  (classes are sorted genre names, so the alphabetically first).
- **mean**: the class with the highest mean probability wins (a tie goes to the lower class index).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreslice.errors import ParameterError

VOTES = ("majority", "mean")


def _checked_probabilities(probabilities) -> np.ndarray:
    array = np.asarray(probabilities, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"probabilities must be a 2-D array of slices x classes with at least one slice. "
                         f"Received: shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("probabilities must be finite. Received: an array with NaN or infinite values")
    return array


def check_vote(vote: str) -> str:
    """Return ``vote`` if it names an aggregation; raise ParameterError otherwise (a bad setting)."""
    if vote not in VOTES:
        raise ParameterError(f"vote={vote!r} must be one of {', '.join(VOTES)}")
    return vote


@dataclass(frozen=True)
class SongVotes:
    """The slices' verdicts on several songs, one row per song.

    Attributes
    ----------
    song_ids : np.ndarray
        Object array of the songs, in order of their first slice.
    votes : np.ndarray
        ``int64`` array ``(n_songs, n_classes)``: slices whose most probable class is each class.
    mean_probability : np.ndarray
        ``float64`` array ``(n_songs, n_classes)``: each class's probability averaged over the song's slices.
    """

    song_ids: np.ndarray
    votes: np.ndarray
    mean_probability: np.ndarray

    @property
    def n_slices(self) -> np.ndarray:
        """Slices per song."""
        return self.votes.sum(axis=1)

    def winners(self, vote: str = "majority") -> np.ndarray:
        """Each song's class index under ``vote`` (``"majority"`` or ``"mean"``)."""
        if check_vote(vote) == "mean":
            return np.argmax(self.mean_probability, axis=1)  # the first maximum: the lower class index
        most = self.votes.max(axis=1, keepdims=True)
        # Among the classes with the most votes, the higher mean probability; argmax takes the first of equals.
        return np.argmax(np.where(self.votes == most, self.mean_probability, -np.inf), axis=1)

    def vote_share(self, winners: np.ndarray) -> np.ndarray:
        """Fraction of each song's slices that voted for its class in ``winners``."""
        rows = np.arange(len(self.votes))
        return self.votes[rows, winners] / self.n_slices


def vote_songs(probabilities, song_ids) -> SongVotes:
    """Tally the slices of many songs at once.

    Parameters
    ----------
    probabilities : array_like
        ``(n_slices, n_classes)`` class probabilities of each slice (a softmax output); finite.
    song_ids : array_like
        ``(n_slices,)`` the song each slice belongs to; a song's slices need not be adjacent.

    Returns
    -------
    SongVotes
        Songs in order of their first slice. A slice whose largest probability is shared by several classes
        votes for the lowest of them.

    Raises
    ------
    ValueError
        Shapes disagree, there is no slice, or a probability is not finite.
    """
    probabilities = _checked_probabilities(probabilities)
    song_ids = np.asarray(song_ids, dtype=object)
    if song_ids.shape != probabilities.shape[:1]:
        raise ValueError(f"song_ids must name the song of each of the {probabilities.shape[0]} slices. "
                         f"Received: shape {song_ids.shape}")
    # Songs numbered in order of their first slice; ids compare as Python values (1 and "1" are two songs).
    numbers: dict = {}
    song = np.fromiter((numbers.setdefault(song_id, len(numbers)) for song_id in song_ids), dtype=np.int64,
                       count=len(song_ids))
    n_songs, n_classes = len(numbers), probabilities.shape[1]
    choices = np.argmax(probabilities, axis=1)
    votes = np.bincount(song * n_classes + choices, minlength=n_songs * n_classes).reshape(n_songs, n_classes)
    counts = np.bincount(song, minlength=n_songs)
    sums = np.stack([np.bincount(song, weights=probabilities[:, c], minlength=n_songs) for c in range(n_classes)],
                    axis=1)
    ids = np.empty(n_songs, dtype=object)
    for position, song_id in enumerate(numbers):
        ids[position] = song_id
    return SongVotes(song_ids=ids, votes=votes.astype(np.int64),
                     mean_probability=sums / counts[:, None])


def vote_song(probabilities, vote: str = "majority") -> int:
    """The class index one song's slices choose under ``vote``; see :func:`vote_songs`."""
    probabilities = _checked_probabilities(probabilities)
    return int(vote_songs(probabilities, np.zeros(len(probabilities), dtype=object)).winners(vote)[0])


def confusion_matrix(true, predicted, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts: row = true class, column = predicted class."""
    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if true.shape != predicted.shape or true.ndim != 1:
        raise ValueError(f"true and predicted must be 1-D and of the same length. "
                         f"Received: shapes {true.shape} and {predicted.shape}")
    for name, values in (("true", true), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= n_classes):
            raise ValueError(f"{name} class indices must be in [0, {n_classes}). "
                             f"Received: {values.min()} to {values.max()}")
    return np.bincount(true * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class from a confusion matrix.

    A ratio with a zero denominator (a class never predicted, or absent from the truth) is 0, as
    scikit-learn's ``zero_division=0``.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (``float64``) and ``support`` (``int64``, true members), each of shape
        ``(n_classes,)``.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    correct = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=np.float64),
                         where=denominator > 0)

    precision, recall = ratio(correct, predicted), ratio(correct, support)
    f1 = ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


@dataclass(frozen=True)
class SongScores:
    """Slice- and song-level scores of one split.

    Attributes
    ----------
    tally : SongVotes
        Votes and mean probabilities per song.
    truth : np.ndarray
        Each song's true class index, in ``tally``'s song order.
    winners : dict
        ``"majority"`` and ``"mean"`` -> each song's predicted class index.
    vote : str
        The vote behind ``confusion`` and the per-genre scores.
    confusion : np.ndarray
        Song-level confusion matrix under ``vote`` (row = true class, column = predicted class).
    metrics : dict
        ``n_songs``, ``n_slices``, ``slice_accuracy``, ``song_accuracy_majority``, ``song_accuracy_mean``, ``vote``,
        ``macro_f1``, ``per_genre`` ({genre: precision, recall, f1, support}) and ``confusion_matrix``.
    """

    tally: SongVotes
    truth: np.ndarray
    winners: dict[str, np.ndarray]
    vote: str
    confusion: np.ndarray
    metrics: dict


def score_songs(probabilities, labels, song_ids, classes, *, vote: str = "majority") -> SongScores:
    """Score slice predictions per slice and, by voting, per song.

    Parameters
    ----------
    probabilities : array_like
        ``(n_slices, n_classes)`` class probabilities.
    labels : array_like
        ``(n_slices,)`` true class index of each slice; all slices of a song share it.
    song_ids : array_like
        ``(n_slices,)`` the song of each slice.
    classes : sequence of str
        Class names, in index order.
    vote : str
        Which vote the confusion matrix and per-genre scores use; both song accuracies are always computed.

    Raises
    ------
    ValueError
        Shapes disagree, or the slices of one song carry different labels.
    """
    check_vote(vote)
    probabilities = _checked_probabilities(probabilities)
    labels = np.asarray(labels, dtype=np.int64)
    classes = list(classes)
    if labels.shape != probabilities.shape[:1] or probabilities.shape[1] != len(classes):
        raise ValueError(f"labels must be ({probabilities.shape[0]},) and classes {probabilities.shape[1]}. "
                         f"Received: labels {labels.shape}, {len(classes)} classes")
    tally = vote_songs(probabilities, song_ids)
    per_song = vote_songs(np.eye(len(classes))[labels], song_ids)  # each song's labels, tallied like votes
    if (per_song.votes.max(axis=1) != per_song.n_slices).any():
        raise ValueError("the slices of a song must all carry the song's label. Received: songs with mixed labels")
    truth = per_song.votes.argmax(axis=1)
    winners = {name: tally.winners(name) for name in VOTES}
    confusion = confusion_matrix(truth, winners[vote], len(classes))
    scores = class_scores(confusion)
    metrics = {
        "n_songs": len(tally.song_ids),
        "n_slices": len(labels),
        "slice_accuracy": float(np.mean(np.argmax(probabilities, axis=1) == labels)),
        "song_accuracy_majority": float(np.mean(winners["majority"] == truth)),
        "song_accuracy_mean": float(np.mean(winners["mean"] == truth)),
        "vote": vote,
        # Over the genres in the split or among its predictions, as scikit-learn's average="macro".
        "macro_f1": float(scores["f1"][(confusion.sum(axis=0) + confusion.sum(axis=1)) > 0].mean()),
        "per_genre": {
            name: {"precision": float(scores["precision"][i]), "recall": float(scores["recall"][i]),
                   "f1": float(scores["f1"][i]), "support": int(scores["support"][i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion.tolist(),
    }
    return SongScores(tally=tally, truth=truth, winners=winners, vote=vote, confusion=confusion, metrics=metrics)

"""Slice voting and song-level scores, on hand-made probability arrays (no model)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genreslice.training.voting import class_scores, confusion_matrix, score_songs, vote_song, vote_songs


def test_majority_counts_each_slices_top_class():
    probabilities = [[0.6, 0.3, 0.1],
                     [0.1, 0.5, 0.4],
                     [0.2, 0.7, 0.1],
                     [0.1, 0.2, 0.7]]
    assert vote_song(probabilities, "majority") == 1  # 2 votes for class 1, one each for 0 and 2


def test_mean_can_disagree_with_the_majority():
    # Two slices lean weakly to class 0, one is certain of class 1: majority says 0, the mean says 1.
    probabilities = [[0.55, 0.45],
                     [0.55, 0.45],
                     [0.00, 1.00]]
    assert vote_song(probabilities, "majority") == 0
    assert vote_song(probabilities, "mean") == 1
    tally = vote_songs(probabilities, ["a", "a", "a"])
    np.testing.assert_array_equal(tally.votes, [[2, 1]])
    np.testing.assert_allclose(tally.mean_probability, [[1.1 / 3, 1.9 / 3]])


def test_a_tie_in_votes_goes_to_the_higher_mean_probability():
    # Classes 0 and 2 have two votes each; class 2's mean probability is higher (0.5 against 0.4).
    probabilities = [[0.6, 0.1, 0.3],
                     [0.5, 0.1, 0.4],
                     [0.2, 0.1, 0.7],
                     [0.3, 0.1, 0.6]]
    tally = vote_songs(probabilities, [7, 7, 7, 7])
    np.testing.assert_array_equal(tally.votes, [[2, 0, 2]])
    np.testing.assert_allclose(tally.mean_probability[0], [0.4, 0.1, 0.5])
    assert tally.winners("majority").tolist() == [2]
    # The higher mean probability of a class outside the tie does not matter.
    probabilities = [[0.40, 0.00, 0.35, 0.25],
                     [0.00, 0.40, 0.35, 0.25],
                     [0.40, 0.00, 0.35, 0.25],
                     [0.00, 0.45, 0.30, 0.25]]
    assert vote_song(probabilities, "majority") == 1  # 0 and 1 tie at 2 votes; class 1's mean (0.2125) > 0.2
    assert vote_song(probabilities, "mean") == 2  # but class 2's mean, 0.3375, is the highest of all


def test_a_tie_in_votes_and_mean_goes_to_the_first_class():
    probabilities = [[0.1, 0.5, 0.4],   # one vote for class 1
                     [0.1, 0.4, 0.5]]   # one for class 2; means 0.45 and 0.45
    assert vote_song(probabilities, "majority") == 1
    assert vote_song(probabilities, "mean") == 1
    # A slice whose top probability is shared votes for the lower class.
    tally = vote_songs([[0.4, 0.4, 0.2]], ["s"])
    np.testing.assert_array_equal(tally.votes, [[1, 0, 0]])


def test_many_songs_at_once_in_order_of_first_slice():
    probabilities = np.array([[0.9, 0.1],   # song "b"
                              [0.2, 0.8],   # song "a"
                              [0.7, 0.3],   # song "b"
                              [0.4, 0.6],   # song "c"
                              [0.1, 0.9]])  # song "a"
    tally = vote_songs(probabilities, ["b", "a", "b", "c", "a"])
    assert tally.song_ids.tolist() == ["b", "a", "c"]
    np.testing.assert_array_equal(tally.votes, [[2, 0], [0, 2], [0, 1]])
    np.testing.assert_array_equal(tally.n_slices, [2, 2, 1])
    np.testing.assert_allclose(tally.mean_probability, [[0.8, 0.2], [0.15, 0.85], [0.4, 0.6]])
    winners = tally.winners("majority")
    assert winners.tolist() == [0, 1, 1] and tally.winners("mean").tolist() == [0, 1, 1]
    np.testing.assert_allclose(tally.vote_share(winners), [1.0, 1.0, 1.0])
    # Every song voted alone gives the same winners as the batch.
    for song, winner in zip(tally.song_ids, winners):
        rows = [i for i, s in enumerate(["b", "a", "b", "c", "a"]) if s == song]
        assert vote_song(probabilities[rows]) == winner


def test_vote_share_of_a_split_song():
    tally = vote_songs([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]], ["x"] * 4)
    assert tally.vote_share(tally.winners()).tolist() == [0.75]


def test_bad_probabilities_are_refused():
    with pytest.raises(ValueError, match=r"Received: shape \(0,\)"):
        vote_song([])
    with pytest.raises(ValueError, match=r"Received: shape \(3,\)"):
        vote_song([0.1, 0.2, 0.7])
    with pytest.raises(ValueError, match="NaN"):
        vote_song([[0.5, np.nan]])
    with pytest.raises(ValueError, match="song_ids"):
        vote_songs([[0.5, 0.5], [0.1, 0.9]], ["a"])
    with pytest.raises(ValueError, match="vote='median'"):
        vote_song([[0.5, 0.5]], "median")


def test_confusion_matrix_and_class_scores_by_hand():
    true = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 0, 0]
    confusion = confusion_matrix(true, predicted, 3)
    np.testing.assert_array_equal(confusion, [[2, 1, 0], [1, 1, 0], [1, 0, 0]])
    scores = class_scores(confusion)
    # class 0: 2 right of 4 predicted, 2 of 3 found; class 1: 1 of 2, 1 of 2; class 2: never predicted, 0 of 1.
    np.testing.assert_allclose(scores["precision"], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(scores["recall"], [2 / 3, 0.5, 0.0])
    np.testing.assert_allclose(scores["f1"], [2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), 0.5, 0.0])
    np.testing.assert_array_equal(scores["support"], [3, 2, 1])
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        confusion_matrix([0, 3], [0, 0], 3)


def test_voting_needs_no_tensorflow():
    code = "import genreslice.training.voting, sys; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_song_scores_when_the_votes_disagree():
    classes = ["Jazz", "Pop", "Rock"]
    # Song "s1" (Jazz): three slices weakly Pop, two strongly Jazz -> majority Pop, mean Jazz.
    # Song "s2" (Rock): clearly Rock. Song "s3" (Pop): two slices weakly Rock, one strongly Pop -> majority Rock,
    # mean Pop. Song "s4" (Jazz): one slice, Rock.
    probabilities = [
        [0.30, 0.40, 0.30], [0.30, 0.40, 0.30], [0.30, 0.40, 0.30], [0.95, 0.05, 0.00], [0.95, 0.05, 0.00],
        [0.10, 0.10, 0.80], [0.00, 0.20, 0.80],
        [0.10, 0.40, 0.50], [0.10, 0.40, 0.50], [0.00, 0.95, 0.05],
        [0.20, 0.20, 0.60],
    ]
    labels = [0, 0, 0, 0, 0, 2, 2, 1, 1, 1, 0]
    songs = ["s1"] * 5 + ["s2"] * 2 + ["s3"] * 3 + ["s4"]
    majority = score_songs(probabilities, labels, songs, classes, vote="majority")
    mean = score_songs(probabilities, labels, songs, classes, vote="mean")
    assert majority.winners["majority"].tolist() == [1, 2, 2, 2] and majority.winners["mean"].tolist() == [0, 2, 1, 2]
    for scores in (majority, mean):
        metrics = scores.metrics
        assert metrics["n_songs"] == 4 and metrics["n_slices"] == 11
        assert metrics["slice_accuracy"] == pytest.approx(5 / 11)  # 2 Jazz slices, 2 Rock, 1 Pop
        assert metrics["song_accuracy_majority"] == 0.25 and metrics["song_accuracy_mean"] == 0.75
    # Rows are the true genre, columns the predicted one.
    assert majority.metrics["confusion_matrix"] == [[0, 1, 1], [0, 0, 1], [0, 0, 1]]
    assert mean.metrics["confusion_matrix"] == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert majority.metrics["vote"] == "majority" and mean.metrics["vote"] == "mean"
    assert majority.metrics["per_genre"]["Rock"] == {"precision": 1 / 3, "recall": 1.0, "f1": 0.5, "support": 1}
    assert majority.metrics["per_genre"]["Jazz"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}
    assert mean.metrics["per_genre"]["Jazz"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3),
                                                 "support": 2}
    assert majority.metrics["macro_f1"] == pytest.approx(0.5 / 3)  # Jazz 0, Pop 0, Rock 0.5
    assert majority.truth.tolist() == [0, 2, 1, 0]
    with pytest.raises(ValueError, match="mixed labels"):
        score_songs(probabilities, [0] * 10 + [1], ["s1"] * 11, classes)


def test_song_ids_keep_their_type():
    tally = vote_songs([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], np.array([1, "1", 1], dtype=object))
    assert tally.song_ids.tolist() == [1, "1"] and tally.votes.tolist() == [[1, 1], [0, 1]]


def test_a_model_output_problem_is_not_reported_as_a_bad_setting():
    """NaN probabilities (a broken model) are a data error: a ValueError, never the ParameterError the command
    line reports as a usage error (exit 2); a bad vote name is a setting."""
    from genreslice.errors import GenresliceError, ParameterError

    with pytest.raises(ValueError, match="finite") as raised:
        vote_song(np.full((2, 3), np.nan, dtype=np.float32))
    assert not isinstance(raised.value, GenresliceError)
    with pytest.raises(ValueError, match="song_ids") as raised:
        vote_songs(np.full((2, 3), 1 / 3, dtype=np.float32), ["a"])
    assert not isinstance(raised.value, GenresliceError)
    with pytest.raises(ParameterError, match="vote='median'"):
        vote_song(np.full((2, 3), 1 / 3, dtype=np.float32), vote="median")

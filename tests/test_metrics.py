"""Tests for neuroflow.metrics: accuracy and confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.metrics import accuracy, confusion_matrix


def test_hand_computed_example() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [2.0, -1.0, 0.5], [0.0, 0.1, 0.9], [0.3, 0.3, 0.1], [0.2, 0.5, 0.3]])
    # predicted: 1, 0, 2, 0 (tie -> lowest index), 1
    labels = np.array([1, 0, 1, 2, 1])
    assert accuracy(scores, labels) == pytest.approx(3 / 5)
    expected = np.array([[1, 0, 0], [0, 2, 1], [1, 0, 0]])
    cm = confusion_matrix(scores, labels)
    assert cm.dtype == np.int64 and cm.shape == (3, 3)
    np.testing.assert_array_equal(cm, expected)
    one_hot = np.eye(3)[labels]
    assert accuracy(scores, one_hot) == pytest.approx(0.6)
    np.testing.assert_array_equal(confusion_matrix(np.array([1, 0, 2, 0, 1]), one_hot), expected)
    np.testing.assert_array_equal(confusion_matrix([1, 0], [1, 1], num_classes=4), [[0, 0, 0, 0], [1, 1, 0, 0], [0] * 4, [0] * 4])


@pytest.mark.parametrize("trial", range(5))
def test_random_against_plain_loop(trial: int, rng: np.random.Generator) -> None:
    n, k = int(rng.integers(1, 300)), int(rng.integers(2, 12))
    scores = rng.normal(size=(n, k))
    labels = rng.integers(0, k, n)
    pred = [max(range(k), key=lambda j: (scores[i, j], -j)) for i in range(n)]
    hits = sum(p == t for p, t in zip(pred, labels))
    expected = np.zeros((k, k), dtype=np.int64)
    for p, t in zip(pred, labels):
        expected[t, p] += 1
    assert accuracy(scores, labels) == pytest.approx(hits / n)
    assert accuracy(np.array(pred), labels) == pytest.approx(hits / n)
    np.testing.assert_array_equal(confusion_matrix(scores, labels), expected)
    np.testing.assert_array_equal(confusion_matrix(scores, np.eye(k)[labels]), expected)
    assert confusion_matrix(scores, labels).sum() == n
    assert np.trace(confusion_matrix(scores, labels)) == hits


def test_inferred_class_count_and_integral_floats() -> None:
    cm = confusion_matrix(np.array([0.0, 3.0]), np.array([3, 3]))
    assert cm.shape == (4, 4) and cm[3, 0] == 1 and cm[3, 3] == 1
    assert accuracy([2, 1, 1], [2.0, 1.0, 0.0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("pred", "labels", "kwargs", "err", "match"),
    [
        (np.ones((3, 2)), np.array([0, 1]), {}, ValueError, "3 samples but labels has 2"),
        (np.ones((2, 3)), np.eye(4)[[0, 1]], {}, ValueError, "3 score columns but labels has 4"),
        (np.ones((2, 2, 2)), np.array([0, 1]), {}, ValueError, r"shape \(N,\)"),
        (np.array([0.5, 1.0]), np.array([0, 1]), {}, TypeError, "integer class ids"),
        (np.array([-1, 1]), np.array([0, 1]), {}, ValueError, "negative class id"),
        (np.array([[np.nan, 1.0]]), np.array([0]), {}, ValueError, "NaN"),
        (np.array(["a", "b"]), np.array([0, 1]), {}, TypeError, "numeric"),
        (np.array([0, 5]), np.array([0, 1]), {"num_classes": 3}, ValueError, "class id 5, outside 0..2"),
        (np.ones((2, 3)), np.array([0, 1]), {"num_classes": 4}, ValueError, "num_classes=4 but"),
        (np.array([0, 1]), np.array([0, 1]), {"num_classes": 0}, ValueError, "positive int"),
        (np.ones((2, 3)), np.array([0, 3]), {}, ValueError, "labels holds class id 3, outside 0..2"),
    ],
)
def test_errors(pred: np.ndarray, labels: np.ndarray, kwargs: dict, err: type, match: str) -> None:
    with pytest.raises(err, match=match):
        confusion_matrix(pred, labels, **kwargs)
    if not kwargs:
        with pytest.raises(err, match=match):
            accuracy(pred, labels)


def test_empty_inputs() -> None:
    with pytest.raises(ValueError, match="zero samples"):
        accuracy(np.array([], dtype=int), np.array([], dtype=int))
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix(np.array([], dtype=int), np.array([], dtype=int))
    np.testing.assert_array_equal(confusion_matrix(np.array([], dtype=int), np.array([], dtype=int), num_classes=2), np.zeros((2, 2)))

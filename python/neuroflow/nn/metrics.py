"""Classification metrics: accuracy and confusion matrix.

Both take ``predictions`` as ``(N, K)`` scores (any monotone scores: logits, softmax
probabilities, ...; the class is the arg-max, ties going to the lowest index) or ``(N,)``
class ids, and ``labels`` as ``(N,)`` class ids or ``(N, K)`` one-hot / probability rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["accuracy", "confusion_matrix"]


def _class_ids(a: Any, name: str) -> tuple[np.ndarray, int | None]:
    """(N,) int64 class ids from ids or score rows, and K when rows give it."""
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 2:
        if arr.shape[1] == 0:
            raise ValueError(f"{name} has shape {arr.shape}: score rows need at least one column")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite scores")
        return np.argmax(arr, axis=1).astype(np.int64), arr.shape[1]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) of class ids or (N, K) of scores, got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise TypeError(f"{name} of shape (N,) must hold integer class ids, got non-integer floats")
    ids = arr.astype(np.int64)
    if ids.size and ids.min() < 0:
        raise ValueError(f"{name} holds a negative class id ({ids.min()}); class ids must be >= 0")
    return ids, None


def _pair(predictions: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, int | None]:
    pred, kp = _class_ids(predictions, "predictions")
    true, kl = _class_ids(labels, "labels")
    if pred.shape[0] != true.shape[0]:
        raise ValueError(f"predictions has {pred.shape[0]} samples but labels has {true.shape[0]}; they must match")
    if kp is not None and kl is not None and kp != kl:
        raise ValueError(f"predictions has {kp} score columns but labels has {kl}; the class counts must match")
    k = kp if kp is not None else kl
    if k is not None:
        _check_range(pred, "predictions", k)
        _check_range(true, "labels", k)
    return pred, true, k


def _check_range(ids: np.ndarray, name: str, k: int) -> None:
    if ids.size and ids.max() >= k:
        raise ValueError(f"{name} holds class id {ids.max()}, outside 0..{k - 1} for {k} classes")


def accuracy(predictions: Any, labels: Any) -> float:
    """Fraction of samples whose predicted class equals the true class, in [0, 1].

    Raises ValueError for empty inputs (accuracy of nothing is undefined).
    """
    pred, true, _ = _pair(predictions, labels)
    if pred.size == 0:
        raise ValueError("accuracy of zero samples is undefined; predictions and labels are empty")
    return float(np.mean(pred == true))


def confusion_matrix(predictions: Any, labels: Any, num_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` int64 counts: ``cm[i, j]`` = samples of true class i predicted as class j.

    K is ``num_classes`` if given, else the width of any ``(N, K)`` argument, else the
    largest class id seen + 1. Ids outside 0..K-1 raise ValueError.
    """
    pred, true, k = _pair(predictions, labels)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int or None, got {num_classes!r}")
        if k is not None and k != num_classes:
            raise ValueError(f"num_classes={num_classes} but the score/one-hot rows have {k} columns")
        k = int(num_classes)
    elif k is None:
        k = int(max(pred.max(initial=-1), true.max(initial=-1))) + 1
        if k == 0:
            raise ValueError("cannot infer the number of classes from empty inputs; pass num_classes")
    _check_range(pred, "predictions", k)
    _check_range(true, "labels", k)
    return np.bincount(true * k + pred, minlength=k * k).astype(np.int64).reshape(k, k)

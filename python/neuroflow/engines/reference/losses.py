"""Losses on the last layer's activated output y (N, K) and targets t (N, K), per sample."""

from __future__ import annotations

import numpy as np


def log_softmax(y: np.ndarray) -> np.ndarray:
    m = y.max(axis=1, keepdims=True)
    return y - m - np.log(np.exp(y - m).sum(axis=1, keepdims=True))


def sample_losses(loss: dict, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample losses (N,) and ∂L/∂y (N, K), before the reduction.

    softmax_log_entropy: t′ = (1 − ε)t + ε/K, L = −Σ t′·log_softmax(y) (t′ = 0 terms are 0), ∂ = p − t′;
    softmax_log_mult_entropy(n): t′ = (1 − ε)t + εn/K, ∂ = n·p − t′;
    squared_error: ½Σ(y − t)², ∂ = y − t; abs_cubic_error: ½Σ|y − t|³, ∂ = 3/2 (y − t)|y − t|."""
    name, K = loss["name"], y.shape[1]
    if name in ("softmax_log_entropy", "softmax_log_mult_entropy"):
        n = 1.0 if name == "softmax_log_entropy" else loss["n"]
        eps = loss["label_smoothing"]
        tt = (1.0 - eps) * t + eps * n / K
        lp = log_softmax(y)
        return -np.where(tt != 0, tt * lp, 0.0).sum(axis=1), n * np.exp(lp) - tt
    r = y - t
    if name == "squared_error":
        return 0.5 * (r * r).sum(axis=1), r
    if name == "abs_cubic_error":
        return 0.5 * (np.abs(r) ** 3).sum(axis=1), 1.5 * r * np.abs(r)
    raise ValueError(f"unknown loss {name!r}")

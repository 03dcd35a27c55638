"""Activators, applied as act(s + bias) (docs/engine.md, "Activators")."""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1/(1+e^−x), computed without overflow on either side."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activate(act: dict, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(act(x), f′(x)) at x = s + bias, for an activator spec {name, alpha, bias}."""
    x = s + act["bias"]
    name, alpha = act["name"], act["alpha"]
    if name == "relu":
        return np.maximum(x, 0.0), (x > 0).astype(np.float64)
    if name == "leaky_relu":
        return np.where(x > 0, x, alpha * x), np.where(x > 0, 1.0, alpha)
    if name == "sigmoid":
        sg = sigmoid(x)
        return sg, sg * (1.0 - sg)
    if name == "tanh":
        th = np.tanh(x)
        return th, 1.0 - th * th
    if name == "linear":
        return x, np.ones_like(x)
    if name == "softplus":
        return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x))), sigmoid(x)
    if name == "square":
        return x * x, 2.0 * x
    if name == "gelu":
        cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return x * cdf, cdf + x * pdf
    raise ValueError(f"unknown activator {name!r}")

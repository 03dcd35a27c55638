"""global_avg_pool: (N, X, Y, Z) → (N, Z), the mean over the X·Y positions of each channel."""

from __future__ import annotations

import numpy as np


def forward(layer, x, params, state, ps):
    return x.mean(axis=(1, 2)), {"shape": x.shape}


def backward(layer, g, params, cache, ps):
    n, X, Y, Z = cache["shape"]
    return np.broadcast_to(g[:, None, None, :] / (X * Y), (n, X, Y, Z)).copy(), []

"""batchnorm over the last dimension (C channels), statistics over the batch's M = N·P values.

train: μ = mean, σ² = mean((x − μ)²) (biased); eval: the running statistics.
x̂ = (x − μ)/√(σ² + eps); out = scale·x̂ + shift (the engine then applies the activator).
The running statistics are updated by the engine after a training step (`running_update`)."""

from __future__ import annotations

import numpy as np


def _scale_shift(cfg: dict, params: list):
    scale = params[0] if cfg["scale"] else None
    shift = params[-1] if cfg["shift"] else None
    return scale, shift


def forward(layer, x, params, state, ps):
    cfg, C = layer.cfg, x.shape[-1]
    sync = getattr(ps, "sync", None)
    M = x.size // C
    if ps.train and sync is not None:  # synchronised: statistics over every process's values
        flat = x.reshape(-1, C)
        s = _summed(sync, np.append(flat.sum(axis=0), float(M)))
        M, mu = int(round(s[-1])), s[:-1] / s[-1]
        var = _summed(sync, ((flat - mu) ** 2).sum(axis=0)) / M
    elif ps.train:
        flat = x.reshape(-1, C)
        mu = flat.mean(axis=0)
        var = ((flat - mu) ** 2).mean(axis=0)
    else:
        mu, var = state
    xhat = (x - mu) / np.sqrt(var + cfg["eps"])
    scale, shift = _scale_shift(cfg, params)
    out = xhat * (1.0 if scale is None else scale) + (0.0 if shift is None else shift)
    return out, {"xhat": xhat, "mean": mu, "var": var, "M": M}


def _summed(sync, v: np.ndarray) -> np.ndarray:
    """`v` summed over the processes of a data-parallel step (sync all-reduces in place)."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    sync(v)
    return v


def backward(layer, g, params, cache, ps):
    """Train mode, g = ∂L/∂y ⊙ act′: ∂shift = Σg, ∂scale = Σg·x̂,
    ∂x = scale/√(σ² + eps)·(g − ∂shift/M − x̂·∂scale/M)."""
    cfg, xhat, M, C = layer.cfg, cache["xhat"], cache["M"], g.shape[-1]
    dshift = g.reshape(-1, C).sum(axis=0)
    dscale = (g * xhat).reshape(-1, C).sum(axis=0)
    scale, _ = _scale_shift(cfg, params)
    gshift, gscale = dshift, dscale
    sync = getattr(ps, "sync", None)
    if sync is not None:  # the sums of every process; the parameter gradients stay this one's share
        both = _summed(sync, np.stack([dshift, dscale], axis=1).reshape(-1)).reshape(-1, 2)
        gshift, gscale = both[:, 0], both[:, 1]
    dx = (1.0 if scale is None else scale) / np.sqrt(cache["var"] + cfg["eps"]) * (g - gshift / M - xhat * gscale / M)
    return dx, ([dscale] if cfg["scale"] else []) + ([dshift] if cfg["shift"] else [])


def running_update(layer, state: list, cache: dict) -> list:
    """running ← (1 − m)·running + m·batch, the variance unbiased by M/(M − 1) (σ² itself when M = 1)."""
    m, M = layer.cfg["momentum"], cache["M"]
    mean, var = state
    unbiased = cache["var"] * M / (M - 1) if M > 1 else cache["var"]
    return [(1 - m) * mean + m * cache["mean"], (1 - m) * var + m * unbiased]

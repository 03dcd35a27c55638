"""dropout (train mode only; eval is the identity): y = x·keep/(1 − rate), with
keep = bits(i) ≥ ⌊rate·2³²⌋ for the element's index i = n·D + j in the batch, and

    key     = fmix(fmix(fmix(fmix(seed_lo) ^ seed_hi) ^ step) ^ uid)
    bits(i) = fmix(key ^ fmix(i))

in wrapping u32 arithmetic (fmix: murmur3's fmix32)."""

from __future__ import annotations

import math

import numpy as np

M32 = 0xFFFFFFFF


def fmix(h):
    """murmur3's fmix32 on a Python int or a uint64 array holding u32 values."""
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & M32
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def keep_mask(seed: int, step: int, uid: int, n: int, d: int, rate: float, offset: int = 0) -> np.ndarray:
    """(n, d) booleans: which elements the layer `uid` keeps at update count `step`, for the
    samples at positions offset..offset+n of the batch (a data-parallel shard's)."""
    key = fmix(fmix(fmix(fmix(seed & M32) ^ (seed >> 32)) ^ (step & M32)) ^ (uid & M32))
    i = np.arange(offset * d, (offset + n) * d, dtype=np.uint64) & np.uint64(M32)
    bits = fmix(np.uint64(key) ^ fmix(i))
    return (bits >= np.uint64(math.floor(rate * 2.0**32))).reshape(n, d)


def forward(layer, x, params, state, ps):
    if not ps.train:
        return x, {"factor": None}
    rate = layer.cfg["rate"]
    keep = keep_mask(ps.seed, ps.step, layer.uid, len(x), x[0].size, rate, getattr(ps, "offset", 0))
    factor = keep.reshape(x.shape) / (1.0 - rate)
    return x * factor, {"factor": factor}


def backward(layer, g, params, cache, ps):
    return (g if cache["factor"] is None else g * cache["factor"]), []

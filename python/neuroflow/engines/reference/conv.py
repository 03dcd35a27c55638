"""conv: s[n, ox, oy, f] = Σ_{kx,ky,c} in[n, ox·sx + kx − px, oy·sy + ky − py, c]·W[kx, ky, c, f] (+ b[f]);
reads outside the input are 0. Computed as one matrix product per tap over shifted slices."""

from __future__ import annotations

import numpy as np

from .windows import pad, taps, unpad


def forward(layer, x, params, state, ps):
    cfg = layer.cfg
    xp = pad(x, cfg["padding"], 0.0)
    w = params[0]
    s = np.zeros((len(x), *cfg["dim_out"]))
    for kx, ky, index in taps(cfg, xp):
        s += xp[index] @ w[kx, ky]
    if cfg["bias"]:
        s += params[1]
    return s, {"xp": xp}


def backward(layer, g, params, cache, ps):
    """Each tap: ∂W[kx, ky] = sliceᵀ·g summed over the batch, and its slice of ∂x gets g·W[kx, ky]ᵀ."""
    cfg, xp, w = layer.cfg, cache["xp"], params[0]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for kx, ky, index in taps(cfg, xp):
        dw[kx, ky] = np.einsum("nxyc,nxyf->cf", xp[index], g)
        dxp[index] += g @ w[kx, ky].T
    grads = [dw] + ([g.sum(axis=(0, 1, 2))] if cfg["bias"] else [])
    return unpad(dxp, cfg["padding"]), grads

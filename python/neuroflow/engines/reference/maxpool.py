"""maxpool: the window's maximum over the elements inside the input.

Padding reads −inf, so it never wins; a tap replaces the running best only when strictly
greater, so ties go to the first tap in window order (kx outer, ky inner). Backward routes
each output's gradient to the element that won, summed where windows overlap."""

from __future__ import annotations

import numpy as np

from .windows import pad, taps, unpad


def forward(layer, x, params, state, ps):
    cfg = layer.cfg
    xp = pad(x, cfg["padding"], -np.inf)
    best = np.full((len(x), *cfg["dim_out"]), -np.inf)
    which = np.full(best.shape, -1)
    for kx, ky, index in taps(cfg, xp):
        wins = xp[index] > best
        best = np.where(wins, xp[index], best)
        which = np.where(wins, kx * cfg["field"][1] + ky, which)
    if (which < 0).any():
        raise ValueError(f"{cfg['name']}: a window holds no element of the input (NaN, or all padding)")
    return best, {"shape": xp.shape, "which": which}


def backward(layer, g, params, cache, ps):
    cfg = layer.cfg
    dxp = np.zeros(cache["shape"])
    for kx, ky, index in taps(cfg, dxp):
        dxp[index] += np.where(cache["which"] == kx * cfg["field"][1] + ky, g, 0.0)
    return unpad(dxp, cfg["padding"]), []

"""avgpool: the window's sum divided by fx·fy (padding counts, as zeros)."""

from __future__ import annotations

import numpy as np

from .windows import pad, taps, unpad


def forward(layer, x, params, state, ps):
    cfg = layer.cfg
    xp = pad(x, cfg["padding"], 0.0)
    out = np.zeros((len(x), *cfg["dim_out"]))
    for _, _, index in taps(cfg, xp):
        out += xp[index]
    return out / (cfg["field"][0] * cfg["field"][1]), {"shape": xp.shape}


def backward(layer, g, params, cache, ps):
    cfg = layer.cfg
    dxp = np.zeros(cache["shape"])
    for _, _, index in taps(cfg, dxp):
        dxp[index] += g / (cfg["field"][0] * cfg["field"][1])
    return unpad(dxp, cfg["padding"]), []

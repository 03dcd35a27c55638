"""Padding and the per-tap slices that conv, maxpool and avgpool share."""

from __future__ import annotations

import numpy as np


def pad(x: np.ndarray, padding: tuple, value: float) -> np.ndarray:
    """(N, X, Y, Z) → (N, X + 2px, Y + 2py, Z), the border filled with `value`."""
    (px, py), (n, X, Y, Z) = padding, x.shape
    xp = np.full((n, X + 2 * px, Y + 2 * py, Z), value)
    xp[:, px : px + X, py : py + Y] = x
    return xp


def unpad(xp: np.ndarray, padding: tuple) -> np.ndarray:
    (px, py), X, Y = padding, xp.shape[1], xp.shape[2]
    return xp[:, px : X - px, py : Y - py]


def taps(cfg: dict, xp: np.ndarray):
    """For every tap (kx, ky) of the window, kx outer and ky inner: (kx, ky, index), where
    xp[index] is what that tap reads for every output position (ox·sx + kx, oy·sy + ky)."""
    (ox, oy), (fx, fy), (sx, sy) = cfg["dim_out"][:2], cfg["field"], cfg["stride"]
    for kx in range(fx):
        for ky in range(fy):
            index = (slice(None), slice(kx, kx + sx * (ox - 1) + 1, sx), slice(ky, ky + sy * (oy - 1) + 1, sy))
            if xp[index].shape[1:3] != (ox, oy):
                raise ValueError(f"{cfg['name']}: dim_out {cfg['dim_out']} does not fit the padded input {xp.shape[1:3]}")
            yield kx, ky, index

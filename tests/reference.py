"""Plain NumPy float64 references, written from the definitions in docs/engine.md and
independent of the engines: direct convolution (shifted slices, no im2col), dense
layers, activators, losses and the reduced loss of a whole network."""

from __future__ import annotations

import math

import numpy as np

from neuroflow import Convolution, Dense, SoftmaxLogEntropy, SoftmaxLogMultEntropy, SquaredError


def conv_forward(x: np.ndarray, w: np.ndarray, padding, stride) -> np.ndarray:
    """x (N, X, Y, Z), w (fx, fy, Z, F) → (N, X', Y', F): a sum of shifted slices."""
    n, X, Y, Z = x.shape
    fx, fy, _, F = w.shape
    (px, py), (sx, sy) = padding, stride
    xp = np.zeros((n, X + 2 * px, Y + 2 * py, Z))
    xp[:, px : px + X, py : py + Y] = x
    ox, oy = (X + 2 * px - fx) // sx + 1, (Y + 2 * py - fy) // sy + 1
    out = np.zeros((n, ox, oy, F))
    for kx in range(fx):
        for ky in range(fy):
            patch = xp[:, kx : kx + sx * (ox - 1) + 1 : sx, ky : ky + sy * (oy - 1) + 1 : sy, :]
            out += np.einsum("nxyz,zf->nxyf", patch, w[kx, ky].astype(np.float64))
    return out


def forward(layout, weights, x) -> list[np.ndarray]:
    """Activations of every layer (float64)."""
    a = np.asarray(x, dtype=np.float64)
    if a.dtype == np.uint8:
        a = a / 255.0
    outs = []
    for layer, w in zip(layout[:-1], weights):
        if isinstance(layer, Convolution):
            s = conv_forward(a, w, layer.padding, layer.stride)
        else:
            s = a.reshape(len(a), -1) @ np.asarray(w, dtype=np.float64)
        a = layer.activator(s)
        outs.append(a)
    return outs


def log_softmax(y: np.ndarray) -> np.ndarray:
    m = y.max(axis=1, keepdims=True)
    return y - m - np.log(np.exp(y - m).sum(axis=1, keepdims=True))


def sample_losses(loss, y: np.ndarray, t: np.ndarray) -> np.ndarray:
    if isinstance(loss, (SoftmaxLogEntropy, SoftmaxLogMultEntropy)):
        lp = log_softmax(y)
        return -np.where(t != 0, t * lp, 0.0).sum(axis=1)
    r = y - t
    if isinstance(loss, SquaredError):
        return 0.5 * (r * r).sum(axis=1)
    return 0.5 * (np.abs(r) ** 3).sum(axis=1)


def network_loss(layout, weights, x, t, reduction: str = "sum") -> float:
    y = forward(layout, weights, x)[-1].reshape(len(x), -1)
    per = sample_losses(layout[-1], y, np.asarray(t, dtype=np.float64))
    return float(per.sum() if reduction == "sum" else per.mean())


def predict(layout, weights, x) -> np.ndarray:
    y = forward(layout, weights, x)[-1].reshape(len(x), -1)
    if isinstance(layout[-1], (SoftmaxLogEntropy, SoftmaxLogMultEntropy)):
        return np.exp(log_softmax(y))
    return y


def fd_gradients(f, weights: list[np.ndarray], h: float = 1e-6) -> list[np.ndarray]:
    """Central finite differences of f(weights) in float64."""
    ws = [np.array(w, dtype=np.float64) for w in weights]
    grads = []
    for w in ws:
        g = np.zeros_like(w)
        flat, gf = w.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            w0 = flat[i]
            flat[i] = w0 + h
            up = f(ws)
            flat[i] = w0 - h
            down = f(ws)
            flat[i] = w0
            gf[i] = (up - down) / (2 * h)
        grads.append(g)
    return grads


def relative_error(got, want) -> float:
    """‖got − want‖ / ‖want‖ over a list of arrays (or one array)."""
    if isinstance(want, (list, tuple)):
        num = math.sqrt(sum(float(((np.asarray(g, np.float64) - w) ** 2).sum()) for g, w in zip(got, want)))
        den = math.sqrt(sum(float((np.asarray(w, np.float64) ** 2).sum()) for w in want))
    else:
        num = float(np.linalg.norm(np.asarray(got, np.float64) - want))
        den = float(np.linalg.norm(want))
    return num / den if den else num

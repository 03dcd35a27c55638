"""dense: s[n, o] = Σ_d in[n, d]·W[d, o] (+ b[o]); a 3-D input is read flattened in (x, y, z) order."""

from __future__ import annotations


def forward(layer, x, params, state, ps):
    s = x.reshape(len(x), -1) @ params[0]
    if layer.cfg["bias"]:
        s = s + params[1]
    return s, {"x": x}


def backward(layer, g, params, cache, ps):
    x = cache["x"]
    grads = [x.reshape(len(x), -1).T @ g] + ([g.sum(axis=0)] if layer.cfg["bias"] else [])
    return (g @ params[0].T).reshape(x.shape), grads

"""Plain-NumPy references for the GPU ops, written straight from docs/engine.md, in float64.

`NumpyEngine` puts them together into the engine contract; the GPU tests compare against
it always, and against the Rust CPU engine (`neuroflow._core.Engine`) when it is built.
"""

from __future__ import annotations

import json

import numpy as np

# ---- convolution ----


def out_dims(x, y, px, py, fx, fy, sx, sy):
    return (x + 2 * px - fx) // sx + 1, (y + 2 * py - fy) // sy + 1


def im2col(inp, px, py, fx, fy, sx, sy):
    """inp (N, X, Y, Z) -> col (N·OX·OY, fx·fy·Z), k = (kx·fy + ky)·Z + c, zero padding."""
    n, x, y, z = inp.shape
    ox, oy = out_dims(x, y, px, py, fx, fy, sx, sy)
    padded = np.zeros((n, x + 2 * px, y + 2 * py, z), inp.dtype)
    padded[:, px : px + x, py : py + y] = inp
    col = np.empty((n, ox, oy, fx, fy, z), inp.dtype)
    for kx in range(fx):
        for ky in range(fy):
            col[:, :, :, kx, ky] = padded[:, kx : kx + sx * ox : sx, ky : ky + sy * oy : sy]
    return col.reshape(n * ox * oy, fx * fy * z)


def col2im(dcol, shape, px, py, fx, fy, sx, sy):
    """The transpose of im2col: scatter-add dcol back onto an input of `shape`."""
    n, x, y, z = shape
    ox, oy = out_dims(x, y, px, py, fx, fy, sx, sy)
    d = dcol.reshape(n, ox, oy, fx, fy, z)
    padded = np.zeros((n, x + 2 * px, y + 2 * py, z), dcol.dtype)
    for kx in range(fx):
        for ky in range(fy):
            padded[:, kx : kx + sx * ox : sx, ky : ky + sy * oy : sy] += d[:, :, :, kx, ky]
    return padded[:, px : px + x, py : py + y]


def gemm(a, b, c=None, trans_a=False, trans_b=False, alpha=1.0, beta=0.0):
    out = alpha * ((a.T if trans_a else a) @ (b.T if trans_b else b))
    return out + beta * c if beta else out


# ---- activators, losses, updates ----


def sigmoid(x):
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def act(name, x, alpha=0.0):
    return {
        "relu": lambda: np.maximum(x, 0),
        "leaky_relu": lambda: np.where(x > 0, x, alpha * x),
        "sigmoid": lambda: sigmoid(x),
        "tanh": lambda: np.tanh(x),
        "linear": lambda: x,
        "softplus": lambda: np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))),
        "square": lambda: x * x,
    }[name]()


def act_grad(name, x, alpha=0.0):
    return {
        "relu": lambda: (x > 0).astype(x.dtype),
        "leaky_relu": lambda: np.where(x > 0, 1.0, alpha),
        "sigmoid": lambda: sigmoid(x) * (1 - sigmoid(x)),
        "tanh": lambda: 1 - np.tanh(x) ** 2,
        "linear": lambda: np.ones_like(x),
        "softplus": lambda: sigmoid(x),
        "square": lambda: 2 * x,
    }[name]()


def log_softmax(y):
    m = y.max(axis=1, keepdims=True)
    return y - m - np.log(np.exp(y - m).sum(axis=1, keepdims=True))


def softmax(y):
    return np.exp(log_softmax(y))


def loss(name, y, t, n=1.0):
    """Per-sample losses (N,) and ∂L/∂y (N, K)."""
    if name in ("softmax_log_entropy", "softmax_log_mult_entropy"):
        ls = log_softmax(y)
        values = -np.where(t != 0, t * ls, 0.0).sum(axis=1)
        mult = n if name == "softmax_log_mult_entropy" else 1.0
        return values, mult * np.exp(ls) - t
    r = y - t
    if name == "squared_error":
        return 0.5 * (r * r).sum(axis=1), r
    if name == "abs_cubic_error":
        return 0.5 * (np.abs(r) ** 3).sum(axis=1), 1.5 * r * np.abs(r)
    raise ValueError(name)


def update(rule, w, g, m, lr, mu):
    """Returns (w, m) after one step."""
    if rule == "vanilla":
        return w - lr * g, m
    m1 = mu * m - lr * g
    if rule == "momentum":
        return w + m1, m1
    return w - mu * m + (1 + mu) * m1, m1


# ---- the whole engine ----


class NumpyEngine:
    """The engine contract in float64 NumPy (slow, small nets only)."""

    def __init__(self, spec_json: str):
        s = json.loads(spec_json)
        self.layers, self.loss_spec, self.upd = s["layers"], s["loss"], s["update"]
        self.mean = s.get("reduction", "sum") == "mean"
        self.weights = [np.zeros(self._shape(l)) for l in self.layers]
        self.state = [np.zeros_like(w) for w in self.weights] if self.upd["name"] != "vanilla" else []

    @staticmethod
    def _shape(l):
        if l["kind"] == "conv":
            return (*l["field"], l["dim_in"][2], l["filters"])
        return (l["dim_in"], l["neurons"])

    def num_weights(self):
        return sum(w.size for w in self.weights)

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [np.asarray(w, np.float64).copy() for w in ws]

    def get_state(self):
        return [m.copy() for m in self.state]

    def set_state(self, ms):
        self.state = [np.asarray(m, np.float64).copy() for m in ms]

    def _input(self, x):
        x = x.astype(np.float64) / 255 if x.dtype == np.uint8 else x.astype(np.float64)
        first = self.layers[0]
        return x.reshape(-1, *first["dim_in"]) if first["kind"] == "conv" else x.reshape(-1, first["dim_in"])

    def _run(self, x, upto=None):
        """Forward; returns per layer (input, col or None, s) and the activations."""
        a, trace, outs = self._input(x), [], []
        for l, w in list(zip(self.layers, self.weights))[: None if upto is None else upto + 1]:
            f = l["activator"]
            if l["kind"] == "conv":
                (px, py), (fx, fy), (sx, sy) = l["padding"], l["field"], l["stride"]
                col = im2col(a, px, py, fx, fy, sx, sy)
                ox, oy = out_dims(*l["dim_in"][:2], px, py, fx, fy, sx, sy)
                s = (col @ w.reshape(-1, l["filters"])).reshape(len(a), ox, oy, l["filters"])
            else:
                col, s = None, a.reshape(len(a), -1) @ w
            trace.append((a, col, s))
            a = act(f["name"], s + f.get("bias", 0.0), f.get("alpha", 0.0))
            outs.append(a)
        return trace, outs

    def forward(self, x):
        return self._run(x)[1][-1]

    def focus(self, x, layer):
        return self._run(x, layer)[1][layer]

    def predict(self, x):
        y = self.forward(x)
        return softmax(y) if self.loss_spec["name"].startswith("softmax") else y

    def _losses(self, y, t):
        return loss(self.loss_spec["name"], y, t.astype(np.float64), self.loss_spec.get("n", 1.0))

    def loss(self, x, t):
        values, _ = self._losses(self.forward(x), t)
        return values.mean() if self.mean else values.sum()

    def _backprop(self, x, t):
        trace, outs = self._run(x)
        values, g = self._losses(outs[-1], t)
        scale = 1 / len(values) if self.mean else 1.0
        grads = [None] * len(self.layers)
        delta = g * scale
        for i in reversed(range(len(self.layers))):
            l, (inp, col, s) = self.layers[i], trace[i]
            f = l["activator"]
            delta = delta.reshape(s.shape) * act_grad(f["name"], s + f.get("bias", 0.0), f.get("alpha", 0.0))
            w = self.weights[i]
            if l["kind"] == "conv":
                d2 = delta.reshape(-1, l["filters"])
                grads[i] = (col.T @ d2).reshape(w.shape)
                (px, py), (fx, fy), (sx, sy) = l["padding"], l["field"], l["stride"]
                delta = col2im(d2 @ w.reshape(-1, l["filters"]).T, inp.shape, px, py, fx, fy, sx, sy)
            else:
                flat = inp.reshape(len(inp), -1)
                grads[i] = flat.T @ delta
                delta = (delta @ w.T).reshape(inp.shape)
        return values, grads

    def gradients(self, x, t):
        return self._backprop(x, t)[1]

    def train_step(self, x, t, lr):
        values, grads = self._backprop(x, t)
        rule, mu = self.upd["name"], self.upd.get("mu", 0.0)
        for i, g in enumerate(grads):
            m = self.state[i] if self.state else None
            self.weights[i], m = update(rule, self.weights[i], g, m, lr, mu)
            if self.state:
                self.state[i] = m
        return values.mean()

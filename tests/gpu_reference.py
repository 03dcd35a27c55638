"""References for the GPU tests, in float64.

The layer kinds, activators, losses and update rules come from the NumPy reference engine
(neuroflow.engines.reference, written from docs/engine.md), so each formula is written
once; this module adds what only the GPU kernels have (the im2col matrix, its transpose,
gemm) and adapters that call the reference engine's layer functions on bare arrays. Specs
are built and resolved with the conformance suite's helpers (tests/conformance/cases.py:
neuroflow._core.resolve when the build has it, else its stand-in).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np

_CONFORMANCE = str(Path(__file__).resolve().parent / "conformance")
if _CONFORMANCE not in sys.path:
    sys.path.insert(0, _CONFORMANCE)

from cases import act, avgpool, bn, conv, dense, dropout, gap, loss, maxpool, residual, resolve, update  # noqa: E402

from neuroflow.engines.reference import (  # noqa: E402
    activators,
    avgpool as ref_avgpool,
    batchnorm as ref_batchnorm,
    global_avg_pool as ref_gap,
    losses,
    maxpool as ref_maxpool,
    updates,
)
from neuroflow.engines.reference.dropout import keep_mask  # noqa: E402
from neuroflow.engines.reference import ReferenceEngine  # noqa: E402

__all__ = ["act", "avgpool", "bn", "conv", "dense", "dropout", "gap", "loss", "maxpool", "residual", "update",
           "ReferenceEngine", "keep_mask", "spec_json", "layer_spec", "kink_margins"]

# ---- specs ----


def spec_json(input_shape, layers, loss_spec=None, update_spec=None, reduction="sum", seed=0, mults=None) -> str:
    """A resolved f32 spec; `mults` maps full parameter names ("r3.c4.bias") to their
    (lr_mult, wd_mult), set as their layers' lr_mult/wd_mult maps before resolving."""
    layers = json.loads(json.dumps(layers))
    for full, (lr, wd) in (mults or {}).items():
        *path, param = full.split(".")
        chain, d = layers, None
        for name in path:
            d = next(layer for layer in chain if layer["name"] == name)
            chain = d.get("layers", [])
        d.setdefault("lr_mult", {})[param] = lr
        d.setdefault("wd_mult", {})[param] = wd
    spec = {"version": 2, "dtype": "f32", "input": list(input_shape), "layers": layers,
            "loss": loss_spec or loss(), "update": update_spec or update(), "reduction": reduction, "seed": seed}
    return json.dumps(resolve(spec))


def layer_spec(input_shape, layer: dict) -> dict:
    """One layer, resolved for the given input shape."""
    return json.loads(spec_json(input_shape, [layer]))["layers"][0]


def _layer(d: dict, uid: int = 0) -> SimpleNamespace:
    """What the reference engine's layer functions read: cfg (the resolved fields), uid."""
    cfg = dict(d)
    cfg["dim_in"], cfg["dim_out"] = tuple(d["dim_in"]), tuple(d["dim_out"])
    return SimpleNamespace(cfg=cfg, uid=uid, name=d["name"], inner=[])


def _pass(train=True, seed=0, step=0):
    return SimpleNamespace(train=train, seed=seed, step=step)


# ---- convolution as the GPU computes it ----


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


# ---- element-wise and row-wise (the reference engine's formulas) ----


def act_f(name, x, alpha=0.0):
    return activators.activate({"name": name, "alpha": alpha, "bias": 0.0}, x)[0]


def act_df(name, x, alpha=0.0):
    return activators.activate({"name": name, "alpha": alpha, "bias": 0.0}, x)[1]


def sample_losses(name, y, t, n=1.0, smoothing=0.0):
    """Per-sample losses (N,) and ∂L/∂y (N, K), before the reduction."""
    return losses.sample_losses({"name": name, "n": n, "label_smoothing": smoothing}, y, t)


def softmax(y):
    return np.exp(losses.log_softmax(y))


def apply_update(rule: dict, w, g, slots, lr, wd, t):
    """(w, slots) after one step of `rule` on copies of the arrays."""
    w, slots = w.astype(np.float64).copy(), [s.astype(np.float64).copy() for s in slots]
    updates.apply(rule, w, g.astype(np.float64), slots, lr, wd, t)
    return w, slots


# ---- layers on bare arrays (the reference engine's layer modules) ----


def bn_forward(d: dict, x, params, state, train: bool):
    """(y before the activator, cache) of a resolved batchnorm layer `d`."""
    return ref_batchnorm.forward(_layer(d), x, params, state, _pass(train))


def bn_backward(d: dict, g, params, cache):
    """(∂x, [∂scale?, ∂shift?]) for g = ∂L/∂y ⊙ f′."""
    return ref_batchnorm.backward(_layer(d), g, params, cache, _pass())


def bn_running(d: dict, state, cache):
    return ref_batchnorm.running_update(_layer(d), state, cache)


def pool_forward(d: dict, x):
    mod = {"maxpool": ref_maxpool, "avgpool": ref_avgpool, "global_avg_pool": ref_gap}[d["kind"]]
    return mod.forward(_layer(d), x, [], [], _pass())


def pool_backward(d: dict, g, cache):
    mod = {"maxpool": ref_maxpool, "avgpool": ref_avgpool, "global_avg_pool": ref_gap}[d["kind"]]
    return mod.backward(_layer(d), g, [], cache, _pass())[0]


# ---- how far a computation stays from the activators' kinks ----

KINKED = ("relu", "leaky_relu")  # f′ jumps at 0


@contextmanager
def kink_margins():
    """Collects, for every ReLU or leaky ReLU the reference engine applies while the block
    runs (any Network(..., backend="reference") or ReferenceEngine call), the smallest
    |s + bias| over the layer's inputs relative to their largest. Exact zeros are left out:
    they come from all-zero terms (a window of dead inputs), which every engine computes
    exactly. An input within f32 rounding of 0 lets two correct f32 engines take other
    sides of the kink (f′ = 0 or 1), and their gradients then part by the whole
    contribution of that element."""
    from neuroflow.engines.reference import engine as ref_engine

    margins: list[float] = []
    activate = ref_engine.activate

    def spy(act: dict, s):
        if act["name"] in KINKED:
            x = np.abs(s + act["bias"])
            x = x[x != 0]
            if x.size:
                margins.append(float(x.min() / x.max()))
        return activate(act, s)

    ref_engine.activate = spy
    try:
        yield margins
    finally:
        ref_engine.activate = activate

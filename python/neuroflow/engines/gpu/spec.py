"""The engine spec (docs/engine.md) parsed into the shapes the GPU engine works with.

Checks mirror the CPU engine's, with ValueError for anything the spec gets wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ACTIVATORS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softplus", "square")
LOSSES = ("softmax_log_entropy", "softmax_log_mult_entropy", "squared_error", "abs_cubic_error")
UPDATES = ("vanilla", "momentum", "nesterov")


@dataclass(frozen=True)
class Activator:
    id: int  # index into ACTIVATORS, as act.wgsl numbers them
    alpha: float
    bias: float


@dataclass(frozen=True)
class Conv:
    x: int
    y: int
    z: int
    px: int
    py: int
    fx: int
    fy: int
    sx: int
    sy: int
    filters: int
    act: Activator

    @property
    def ox(self) -> int:
        return (self.x + 2 * self.px - self.fx) // self.sx + 1

    @property
    def oy(self) -> int:
        return (self.y + 2 * self.py - self.fy) // self.sy + 1

    @property
    def k(self) -> int:  # columns of the im2col matrix = rows of W as a matrix
        return self.fx * self.fy * self.z

    @property
    def positions(self) -> int:  # output positions of one sample
        return self.ox * self.oy

    @property
    def in_size(self) -> int:
        return self.x * self.y * self.z

    @property
    def out_size(self) -> int:
        return self.positions * self.filters

    @property
    def out_shape(self) -> tuple:
        return (self.ox, self.oy, self.filters)

    @property
    def weight_shape(self) -> tuple:
        return (self.fx, self.fy, self.z, self.filters)

    @property
    def pointwise(self) -> bool:
        """1×1, stride 1, no padding: the input itself is the im2col matrix."""
        return (self.fx, self.fy, self.sx, self.sy, self.px, self.py) == (1, 1, 1, 1, 0, 0)

    @property
    def col_size(self) -> int:  # im2col floats per sample (0 when pointwise needs none)
        return 0 if self.pointwise else self.positions * self.k


@dataclass(frozen=True)
class Dense:
    d: int
    o: int
    act: Activator

    in_size = property(lambda self: self.d)
    out_size = property(lambda self: self.o)
    out_shape = property(lambda self: (self.o,))
    weight_shape = property(lambda self: (self.d, self.o))
    col_size = property(lambda self: 0)


@dataclass(frozen=True)
class Spec:
    layers: tuple
    loss: int  # index into LOSSES, as loss.wgsl numbers them
    mult: float  # n of softmax_log_mult_entropy
    update: str
    mu: float
    mean: bool  # reduction: mean (else sum)

    @property
    def softmax(self) -> bool:
        return self.loss <= 1


def _field(obj: dict, key: str, where: str):
    if key not in obj:
        raise ValueError(f"spec: {where} lacks {key!r}")
    return obj[key]


def _ints(v, n: int, where: str) -> tuple:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if len(vals) != n or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in vals):
        raise ValueError(f"spec: {where} must be {n} non-negative integer(s), got {v!r}")
    return tuple(vals)


def _activator(a, where: str) -> Activator:
    if not isinstance(a, dict) or a.get("name") not in ACTIVATORS:
        raise ValueError(f"spec: {where}.activator must name one of {', '.join(ACTIVATORS)}, got {a!r}")
    return Activator(ACTIVATORS.index(a["name"]), float(a.get("alpha", 0.0)), float(a.get("bias", 0.0)))


def _conv(l: dict, w: str) -> Conv:
    x, y, z = _ints(_field(l, "dim_in", w), 3, f"{w}.dim_in")
    px, py = _ints(_field(l, "padding", w), 2, f"{w}.padding")
    fx, fy = _ints(_field(l, "field", w), 2, f"{w}.field")
    sx, sy = _ints(_field(l, "stride", w), 2, f"{w}.stride")
    (f,) = _ints(_field(l, "filters", w), 1, f"{w}.filters")
    if 0 in (x, y, z, fx, fy, sx, sy, f):
        raise ValueError(f"spec: {w}: dimensions, field, stride and filters must be positive")
    wx, wy = x + 2 * px, y + 2 * py
    if fx > wx or fy > wy:
        raise ValueError(f"spec: {w}: field {fx}*{fy} is larger than the padded input {wx}*{wy}")
    if (wx - fx) % sx or (wy - fy) % sy:
        raise ValueError(
            f"spec: {w}: stride {sx}*{sy} does not divide the padded input {wx}*{wy} minus the field {fx}*{fy}"
        )
    return Conv(x, y, z, px, py, fx, fy, sx, sy, f, _activator(_field(l, "activator", w), w))


def _dense(l: dict, w: str) -> Dense:
    (d,) = _ints(_field(l, "dim_in", w), 1, f"{w}.dim_in")
    (o,) = _ints(_field(l, "neurons", w), 1, f"{w}.neurons")
    if d == 0 or o == 0:
        raise ValueError(f"spec: {w}: dense sizes must be positive")
    return Dense(d, o, _activator(_field(l, "activator", w), w))


def parse(spec_json: str) -> Spec:
    try:
        s = json.loads(spec_json)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"spec: not valid JSON: {e}") from None
    if not isinstance(s, dict):
        raise ValueError("spec: expected a JSON object")
    dtype = s.get("dtype", "f32")
    if dtype != "f32":
        raise ValueError(f"dtype: the GPU engine computes in f32 only, got {dtype!r}; use the CPU engine for f64")
    layers = []
    for i, l in enumerate(_field(s, "layers", "the spec") or []):
        w = f"layers[{i}]"
        kind = l.get("kind") if isinstance(l, dict) else None
        if kind == "conv":
            layer = _conv(l, w)
        elif kind == "dense":
            layer = _dense(l, w)
        else:
            raise ValueError(f"spec: {w}.kind must be 'conv' or 'dense', got {kind!r}")
        if layers:
            prev = layers[-1]
            if prev.out_size != layer.in_size:
                raise ValueError(f"spec: layer {i}: takes {layer.in_size} inputs but layer {i - 1} gives {prev.out_size}")
            if isinstance(prev, Dense) and isinstance(layer, Conv):
                raise ValueError(f"spec: layer {i}: a convolution cannot follow a dense layer")
        layers.append(layer)
    if not layers:
        raise ValueError("spec: a network needs at least one layer")
    loss = _field(s, "loss", "the spec")
    if not isinstance(loss, dict) or loss.get("name") not in LOSSES:
        raise ValueError(f"spec: loss must name one of {', '.join(LOSSES)}, got {loss!r}")
    upd = _field(s, "update", "the spec")
    if not isinstance(upd, dict) or upd.get("name") not in UPDATES:
        raise ValueError(f"spec: update must name one of {', '.join(UPDATES)}, got {upd!r}")
    if upd["name"] != "vanilla" and "mu" not in upd:
        raise ValueError(f"spec: update {upd['name']!r} needs 'mu'")
    reduction = s.get("reduction", "sum")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"spec: reduction must be 'sum' or 'mean', got {reduction!r}")
    return Spec(
        layers=tuple(layers),
        loss=LOSSES.index(loss["name"]),
        mult=float(loss.get("n", 1)),
        update=upd["name"],
        mu=float(upd.get("mu", 0.0)),
        mean=reduction == "mean",
    )

"""ReferenceEngine: the layout walk, activators, loss, reduction, finite differences and
training step of docs/engine.md; the layer kinds are the sibling modules."""

from __future__ import annotations

import json
import math
import numbers
from typing import Optional, Sequence

import numpy as np

from . import avgpool, batchnorm, conv, dense, dropout, global_avg_pool, maxpool, residual, updates
from .activators import activate
from .losses import log_softmax, sample_losses
from .spec import ACTIVATED, IDS, Layer, ints, parse_layers, read_loss, read_update, walk

KINDS = {
    "conv": conv,
    "dense": dense,
    "batchnorm": batchnorm,
    "maxpool": maxpool,
    "avgpool": avgpool,
    "global_avg_pool": global_avg_pool,
    "dropout": dropout,
    "residual": residual,
}
assert list(KINDS) == IDS["layers"]


class Pass:
    """One walk through the layout: mode, dropout seed and step, each layer's output and
    backward cache, and the parameters' gradients as the backward produces them."""

    def __init__(self, engine: "ReferenceEngine", train: bool, offset: int = 0, sync=None):
        self.engine, self.train = engine, train
        self.seed, self.step = engine._seed, engine._step
        self.offset, self.sync = offset, sync  # a data-parallel shard's place; BatchNorm's all-reduce
        self.outs: dict[int, np.ndarray] = {}
        self.caches: dict[int, dict] = {}
        self.grads: list = [None] * len(engine._params)

    def run(self, layers: list[Layer], a: np.ndarray) -> np.ndarray:
        params, state = self.engine._params, self.engine._state
        for layer in layers:
            P, S = [params[i] for i in layer.params], [state[i] for i in layer.state]
            a, cache = KINDS[layer.kind].forward(layer, a, P, S, self)
            if layer.kind in ACTIVATED:
                a, cache["fprime"] = activate(layer.cfg["activator"], a)
            self.outs[layer.uid], self.caches[layer.uid] = a, cache
        return a

    def back(self, layers: list[Layer], g: np.ndarray) -> np.ndarray:
        params = self.engine._params
        for layer in reversed(layers):
            cache = self.caches[layer.uid]
            if layer.kind in ACTIVATED:
                g = g * cache["fprime"]
            g, grads = KINDS[layer.kind].backward(layer, g, [params[i] for i in layer.params], cache, self)
            for i, gi in zip(layer.params, grads, strict=True):
                self.grads[i] = gi
        return g


def _real(v, what: str, *, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{what}: expected a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
    return float(v)


class ReferenceEngine:
    """The engine contract (neuroflow.engines.protocol.Engine) in float64 NumPy."""

    def __init__(self, spec_json: str):
        if not isinstance(spec_json, str):
            raise TypeError(f"spec_json: expected a JSON string, got {type(spec_json).__name__}")
        spec = json.loads(spec_json)
        if not isinstance(spec, dict) or spec.get("version") != 2:
            raise ValueError("spec: expected a JSON object with version 2")
        if spec.get("dtype") not in ("f32", "f64"):
            raise ValueError(f"spec: dtype must be 'f32' or 'f64', got {spec.get('dtype')!r}")
        self._spec_json = spec_json
        self._dtype = np.dtype(np.float32 if spec["dtype"] == "f32" else np.float64)
        self._input = ints(spec, "input", "spec", lo=1)
        norm = spec.get("input_norm")
        # (x − mean) / std per input channel (docs/engine.md), after bytes become x/255
        self._norm = None if norm is None else (np.asarray(norm["mean"], np.float64), np.asarray(norm["std"], np.float64))
        if len(self._input) not in (1, 3):
            raise ValueError(f"spec: input must be [X, Y, Z] or [D], got {list(self._input)}")
        seed = spec.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
            raise ValueError(f"spec: seed must be an integer in [0, 2^64), got {seed!r}")
        self._seed = seed
        self._loss, self._rule = read_loss(spec.get("loss")), read_update(spec.get("update"))
        if spec.get("reduction", "sum") not in IDS["reductions"]:
            raise ValueError(f"spec: reduction must be one of {IDS['reductions']}, got {spec.get('reduction')!r}")
        self._mean = spec.get("reduction", "sum") == "mean"
        self._pinfo: list[tuple] = []  # (full name, shape, lr_mult, wd_mult)
        self._sinfo: list[tuple] = []  # (full name, shape, init)
        self._layers = parse_layers(spec.get("layers"), self._input, "", [0], self._pinfo, self._sinfo)
        self._all = list(walk(self._layers))
        names = [layer.name for layer in self._all]
        if len(set(names)) != len(names):
            raise ValueError(f"spec: layer names must be unique, got {names}")
        self._k = math.prod(self._layers[-1].cfg["dim_out"])
        self._params = [np.zeros(shape) for _, shape, _, _ in self._pinfo]
        self._state = [np.full(shape, init, dtype=np.float64) for _, shape, init in self._sinfo]
        self._slots = [np.zeros(shape) for _, shape, _, _ in self._pinfo for _ in self.optimizer_slots()]
        self._step = 0

    # ---- description and state ----

    @property
    def spec(self) -> str:
        return self._spec_json

    def param_info(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(name, shape) for name, shape, _, _ in self._pinfo]

    def state_info(self) -> list[tuple[str, tuple[int, ...]]]:
        return [(name, shape) for name, shape, _ in self._sinfo]

    def _out(self, arrays: list) -> list[np.ndarray]:
        return [np.array(a, dtype=self._dtype) for a in arrays]

    def _in(self, arrays, shapes: list, what: str) -> list[np.ndarray]:
        if isinstance(arrays, (str, bytes, np.ndarray)) or not isinstance(arrays, Sequence):
            raise TypeError(f"{what}: expected a list of arrays, got {type(arrays).__name__}")
        if len(arrays) != len(shapes):
            raise ValueError(f"{what}: expected {len(shapes)} arrays, got {len(arrays)}")
        for i, (a, shape) in enumerate(zip(arrays, shapes)):
            if not isinstance(a, np.ndarray) or a.dtype != self._dtype:
                raise TypeError(f"{what}[{i}]: expected a numpy array of {self._dtype.name}, got {getattr(a, 'dtype', type(a).__name__)}")
            if a.shape != tuple(shape):
                raise ValueError(f"{what}[{i}]: shape {a.shape}, expected {tuple(shape)}")
        return [a.astype(np.float64) for a in arrays]

    def get_params(self) -> list[np.ndarray]:
        return self._out(self._params)

    def set_params(self, params: Sequence[np.ndarray]) -> None:
        self._params = self._in(params, [p[1] for p in self._pinfo], "params")

    def get_state(self) -> list[np.ndarray]:
        return self._out(self._state)

    def set_state(self, state: Sequence[np.ndarray]) -> None:
        self._state = self._in(state, [s[1] for s in self._sinfo], "state")

    def optimizer_slots(self) -> list[str]:
        return list(updates.SLOTS[self._rule["name"]])

    def get_optimizer_state(self) -> list[np.ndarray]:
        return self._out(self._slots)

    def set_optimizer_state(self, state: Sequence[np.ndarray]) -> None:
        shapes = [p[1] for p in self._pinfo for _ in self.optimizer_slots()]
        self._slots = self._in(state, shapes, "optimizer state")

    def get_step(self) -> int:
        return self._step

    def set_step(self, step: int) -> None:
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"step: expected an integer, got {type(step).__name__}")
        if not 0 <= step < 2**64:
            raise ValueError(f"step: expected an integer in [0, 2^64), got {step}")
        self._step = int(step)

    # ---- inputs ----

    def _x(self, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise TypeError(f"x: expected a numpy array, got {type(x).__name__}")
        if x.dtype != np.uint8 and x.dtype != self._dtype:
            raise TypeError(f"x: expected {self._dtype.name} or uint8, got {x.dtype}")
        if x.shape[1:] != self._input or len(x) == 0:
            raise ValueError(f"x: expected shape (N >= 1, {', '.join(map(str, self._input))}), got {x.shape}")
        if not x.flags.c_contiguous:
            raise ValueError("x: the array must be C-contiguous (np.ascontiguousarray)")
        v = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
        return v if self._norm is None else (v - self._norm[0]) / self._norm[1]

    def _t(self, t, n: int) -> np.ndarray:
        if not isinstance(t, np.ndarray) or t.dtype != self._dtype:
            raise TypeError(f"t: expected a numpy array of {self._dtype.name}, got {getattr(t, 'dtype', type(t).__name__)}")
        if t.shape != (n, self._k):
            raise ValueError(f"t: expected shape ({n}, {self._k}), got {t.shape}")
        if not t.flags.c_contiguous:
            raise ValueError("t: the array must be C-contiguous (np.ascontiguousarray)")
        return t.astype(np.float64)

    @staticmethod
    def _train(mode) -> bool:
        if mode not in IDS["modes"]:
            raise ValueError(f"mode: expected one of {IDS['modes']}, got {mode!r}")
        return mode == "train"

    # ---- the computations ----

    def _losses(self, x: np.ndarray, t: np.ndarray, train: bool, batch: Optional[int] = None, offset: int = 0,
                sync=None) -> tuple[np.ndarray, np.ndarray, Pass]:
        """Per-sample losses, the reduced ∂L/∂y of the last layer's output (over `batch`
        samples, default these), and the pass."""
        ps = Pass(self, train, offset, sync)
        y = ps.run(self._layers, x)
        per, dy = sample_losses(self._loss, y.reshape(len(y), -1), t)
        return per, (dy / (batch or len(y)) if self._mean else dy).reshape(y.shape), ps

    def _reduced(self, per: np.ndarray) -> float:
        return float(per.mean() if self._mean else per.sum())

    def _backprop(self, x: np.ndarray, t: np.ndarray, batch: Optional[int] = None, offset: int = 0,
                  sync=None) -> tuple[np.ndarray, list, Pass]:
        per, dy, ps = self._losses(x, t, True, batch, offset, sync)
        ps.back(self._layers, dy)
        return per, ps.grads, ps

    def _fd(self, x: np.ndarray, t: np.ndarray, delta) -> list[np.ndarray]:
        """Central differences of the train-mode reduced loss (same step, so the same masks)."""
        delta = _real(delta, "delta", positive=True)
        grads = []
        for w in self._params:
            g = np.zeros_like(w)
            flat = w.reshape(-1)  # a view: perturbing flat[i] perturbs the parameter
            for i in range(flat.size):
                w0 = flat[i]
                try:
                    flat[i] = w0 + delta
                    up = self._reduced(self._losses(x, t, True)[0])
                    flat[i] = w0 - delta
                    down = self._reduced(self._losses(x, t, True)[0])
                finally:
                    flat[i] = w0
                g.reshape(-1)[i] = (up - down) / (2.0 * delta)
            grads.append(g)
        return grads

    def forward(self, x: np.ndarray, layer: Optional[int] = None, mode: str = "eval") -> np.ndarray:
        train = self._train(mode)
        uid = self._layers[-1].uid if layer is None else layer
        if isinstance(uid, bool) or not isinstance(uid, numbers.Integral) or not 0 <= uid < len(self._all):
            raise ValueError(f"layer: expected a layer uid in [0, {len(self._all)}), got {layer!r}")
        ps = Pass(self, train)
        ps.run(self._layers, self._x(x))
        return ps.outs[int(uid)].astype(self._dtype)

    def predict(self, x: np.ndarray) -> np.ndarray:
        y = Pass(self, False).run(self._layers, self._x(x))
        if self._loss["name"].startswith("softmax"):
            y = np.exp(log_softmax(y.reshape(len(y), -1))).reshape(y.shape)
        return y.astype(self._dtype)

    def loss(self, x: np.ndarray, t: np.ndarray, mode: str = "eval") -> float:
        train, x = self._train(mode), self._x(x)
        return self._reduced(self._losses(x, self._t(t, len(x)), train)[0])

    def gradients(self, x: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
        x = self._x(x)
        return self._out(self._backprop(x, self._t(t, len(x)))[1])

    def fd_gradients(self, x: np.ndarray, t: np.ndarray, delta: float) -> list[np.ndarray]:
        x = self._x(x)
        return self._out(self._fd(x, self._t(t, len(x)), delta))

    def train_step(self, x: np.ndarray, t: np.ndarray, lr: float, fd_delta: Optional[float] = None) -> float:
        lr = _real(lr, "lr", positive=False)
        x = self._x(x)
        t = self._t(t, len(x))
        per, grads, ps = self._backprop(x, t)
        if fd_delta is not None:
            grads = self._fd(x, t, fd_delta)
        self._running_update(ps)
        self._update(grads, lr)
        return float(per.mean())

    def _running_update(self, ps: Pass) -> None:
        for layer in self._all:  # running statistics from this batch (PyTorch's momentum convention)
            if layer.kind == "batchnorm":
                new = batchnorm.running_update(layer, [self._state[i] for i in layer.state], ps.caches[layer.uid])
                for i, s in zip(layer.state, new):
                    self._state[i] = s

    def _update(self, grads: list, lr: float) -> None:
        self._step += 1
        k = len(self.optimizer_slots())
        for i, ((_, _, lr_mult, wd_mult), w, g) in enumerate(zip(self._pinfo, self._params, grads)):
            if lr_mult == 0:  # frozen: the parameter and its optimizer slots stay (docs/engine.md)
                continue
            slots = self._slots[i * k : (i + 1) * k]
            updates.apply(self._rule, w, g, slots, lr * lr_mult, self._rule["weight_decay"] * wd_mult, self._step)

    # ---- data-parallel steps (docs/engine.md) ----

    def _flat(self, grads, what: str, writable: bool) -> np.ndarray:
        total = sum(math.prod(shape) for _, shape, _, _ in self._pinfo)
        if not isinstance(grads, np.ndarray) or grads.dtype != self._dtype:
            raise TypeError(f"{what}: expected a numpy array of {self._dtype.name}, got {getattr(grads, 'dtype', type(grads).__name__)}")
        if grads.ndim != 1 or grads.size != total or not grads.flags.c_contiguous or (writable and not grads.flags.writeable):
            raise ValueError(f"{what}: expected a {'writable ' if writable else ''}C-contiguous 1-D array of {total} values "
                             f"(every parameter in order), got shape {grads.shape}")
        return grads

    def backward(self, x: np.ndarray, t: np.ndarray, grads: np.ndarray, batch: Optional[int] = None, offset: int = 0,
                 sync=None) -> float:
        """Train-mode forward and backward of a shard at `offset` of a global batch of
        `batch` samples: flat gradients into `grads`, running statistics moved; returns the
        sum of the shard's per-sample losses."""
        x = self._x(x)
        t = self._t(t, len(x))
        out = self._flat(grads, "grads", True)
        for v, what in ((batch, "batch"), (offset, "offset")):
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0):
                raise ValueError(f"{what}: expected a non-negative integer, got {v!r}")
        if (batch is None and offset) or (batch is not None and (batch < 1 or offset + len(x) > batch)):
            raise ValueError(f"batch: a shard of {len(x)} samples at offset {offset} does not fit in a global batch of {batch}")
        per, g, ps = self._backprop(x, t, batch, offset, sync)
        self._running_update(ps)
        # a training pass computes no gradient for a frozen parameter (lr_mult 0): zero
        g = [np.zeros_like(gi) if lr_mult == 0 else gi for (_, _, lr_mult, _), gi in zip(self._pinfo, g)]
        if out.size:
            out[:] = np.concatenate([gi.reshape(-1) for gi in g]).astype(self._dtype)
        return float(per.sum())

    def apply_update(self, grads: np.ndarray, lr: float) -> None:
        """One update with the flat reduced gradients `grads` (as `backward` writes them)."""
        lr = _real(lr, "lr", positive=False)
        g = self._flat(grads, "grads", False).astype(np.float64)
        if not np.isfinite(g).all():
            raise ValueError("grads: contains NaN or infinity (the step's loss or gradients were not finite; no update made)")
        parts, at = [], 0
        for _, shape, _, _ in self._pinfo:
            size = math.prod(shape)
            parts.append(g[at : at + size].reshape(shape))
            at += size
        self._update(parts, lr)

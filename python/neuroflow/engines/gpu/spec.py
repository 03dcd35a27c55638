"""The resolved engine spec (docs/engine.md) parsed into what the GPU engine works with.

Shapes are read from the resolved spec (`neuroflow._core.resolve` fills in every layer's
`dim_in`, `dim_out`, `params` and `state`), never recomputed from the configuration; the
layer classes (layers/) derive only their kernels' parameters. Names and ids come from
`neuroflow/ids.json`, the table Rust and WGSL share. Anything the spec gets wrong raises
ValueError naming the layer.
"""

from __future__ import annotations

import importlib.resources
import json
import math
from dataclasses import dataclass, field
from typing import NoReturn, Optional
from pathlib import Path


def _load_ids() -> dict:
    try:
        text = (importlib.resources.files("neuroflow") / "ids.json").read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, TypeError):
        text = (Path(__file__).resolve().parents[2] / "ids.json").read_text(encoding="utf-8")
    return json.loads(text)


IDS = _load_ids()
ACTIVATORS = tuple(IDS["activators"])
LOSSES = tuple(IDS["losses"])
UPDATES = tuple(IDS["updates"])
KINDS = tuple(IDS["layers"])
REDUCTIONS = tuple(IDS["reductions"])
MODES = tuple(IDS["modes"])

SOFTMAX_LOSSES = ("softmax_log_entropy", "softmax_log_mult_entropy")
# Optimizer slots per update rule (docs/engine.md), in the order get_optimizer_state gives them.
SLOTS = {"vanilla": (), "momentum": ("momentum",), "nesterov": ("momentum",), "adam": ("m", "v"), "adamw": ("m", "v"),
         "muon": ("momentum",)}
ALIGN = 4  # floats: every tensor in the flat buffers starts 16-byte aligned (gemm's vec4 loads)


@dataclass(frozen=True)
class Activator:
    id: int  # position in ids.json's "activators"
    alpha: float
    bias: float

    @property
    def name(self) -> str:
        return ACTIVATORS[self.id]

    @property
    def linear(self) -> bool:
        return self.name == "linear"


@dataclass
class Tensor:
    """A parameter or state tensor: its full name, shape, and where it lives in the
    engine's flat buffer (offset and size in floats)."""

    name: str
    shape: tuple
    offset: int = 0
    lr_mult: float = 1.0
    wd_mult: float = 1.0
    init: float = 0.0

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass
class Net:
    input: tuple
    input_norm: Optional[tuple]  # (means, standard deviations) per input channel, or None
    layers: list  # the top-level layers (layers/ classes)
    walk: list  # every layer in pre-order: walk[uid]
    params: list  # Tensor, layout order
    state: list  # Tensor, layout order
    loss: str
    mult: float  # n of softmax_log_mult_entropy
    smoothing: float  # label smoothing ε
    update: str
    hyper: dict  # mu, beta1, beta2, eps, weight_decay; Muon's muon_mu, steps, normalize
    mean: bool  # reduction: mean (else sum)
    seed: int
    param_floats: int = 0  # size of the flat parameter buffer (with alignment gaps)
    state_floats: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def softmax(self) -> bool:
        return self.loss in SOFTMAX_LOSSES

    @property
    def loss_id(self) -> int:
        return LOSSES.index(self.loss)

    @property
    def in_size(self) -> int:
        return math.prod(self.input)

    @property
    def last(self):
        return self.layers[-1]

    @property
    def batch_coupled(self) -> bool:
        """Whether a train-mode pass couples the samples of a batch (batch statistics)."""
        return any(layer.kind == "batchnorm" for layer in self.walk)


def fail(where: str, what: str) -> NoReturn:
    raise ValueError(f"spec: {where}: {what}")


def get(obj: dict, key: str, where: str):
    if key not in obj:
        fail(where, f"lacks {key!r}")
    return obj[key]


def ints(v, n: int | None, where: str, positive: bool = True) -> tuple:
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    ok = all(isinstance(i, int) and not isinstance(i, bool) and (i > 0 if positive else i >= 0) for i in vals)
    if (n is not None and len(vals) != n) or not vals or not ok:
        kind = "positive" if positive else "non-negative"
        fail(where, f"expected {n or 'some'} {kind} integer(s), got {v!r}")
    return tuple(vals)


def number(obj: dict, key: str, where: str, default=None, lo: float = -math.inf, hi: float = math.inf,
           open_lo: bool = False, open_hi: bool = False) -> float:
    """A finite number in [lo, hi] (an open end when open_lo / open_hi)."""
    v = obj.get(key, default)
    if v is None:
        fail(where, f"lacks {key!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        fail(where, f"{key} must be a finite number, got {v!r}")
    if v < lo or v > hi or (open_lo and v == lo) or (open_hi and v == hi):
        fail(where, f"{key} must be in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}, got {v!r}")
    return float(v)


def activator(a, where: str) -> Activator:
    if not isinstance(a, dict) or a.get("name") not in ACTIVATORS:
        fail(where, f"activator must name one of {', '.join(ACTIVATORS)}, got {a!r}")
    return Activator(ACTIVATORS.index(a["name"]), number(a, "alpha", where, 0.0), number(a, "bias", where, 0.0))


def _resolved(s: dict) -> bool:
    def done(layers):
        for layer in layers:
            if not isinstance(layer, dict) or "dim_out" not in layer or "params" not in layer:
                return False
            if layer.get("kind") == "residual" and not done(layer.get("layers") or []):
                return False
        return True

    return isinstance(s.get("layers"), list) and done(s["layers"])


def _object(spec_json: str) -> dict:
    try:
        s = json.loads(spec_json)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"spec: not valid JSON: {e}") from None
    if not isinstance(s, dict):
        raise ValueError("spec: expected a JSON object")
    return s


def resolve(spec_json: str) -> str:
    """The spec with its shapes filled in: unchanged when it is resolved already, else by
    `neuroflow._core.resolve` (the one place shapes are computed)."""
    s = _object(spec_json)
    if _resolved(s):
        return spec_json
    try:
        from neuroflow._core import resolve as core_resolve
    except ImportError:
        raise ValueError(
            "spec: not resolved (layers lack dim_out/params) and neuroflow._core.resolve is not "
            "available to resolve it"
        ) from None
    return core_resolve(spec_json)


def parse(spec_json: str) -> Net:
    from .layers import build_chain  # the layer classes import this module

    s = _object(spec_json)
    version = s.get("version", 2)
    if version != 2:
        raise ValueError(f"spec: version {version!r} is not one this engine reads (2)")
    dtype = s.get("dtype", "f32")
    if dtype != "f32":
        raise ValueError(f"dtype: the GPU engine computes in f32 only, got {dtype!r}; use the CPU engine for f64")
    layers_spec = get(s, "layers", "the spec")
    if not isinstance(layers_spec, list) or not layers_spec:
        raise ValueError("spec: a network needs at least one layer")
    walk: list = []
    first = layers_spec[0] if isinstance(layers_spec[0], dict) else {}
    inp = s.get("input", first.get("dim_in"))
    if inp is None:
        raise ValueError("spec: lacks 'input'")
    inp = ints(inp, None, "input")
    layers = build_chain(layers_spec, inp, walk, prefix="", where="layout")

    params, state = [], []
    p_off = s_off = 0
    for layer in walk:
        for t in layer.params:
            t.offset = p_off
            p_off += -(-t.size // ALIGN) * ALIGN
            params.append(t)
        for t in layer.state:
            t.offset = s_off
            s_off += -(-t.size // ALIGN) * ALIGN
            state.append(t)

    loss = get(s, "loss", "the spec")
    if not isinstance(loss, dict) or loss.get("name") not in LOSSES:
        raise ValueError(f"spec: loss must name one of {', '.join(LOSSES)}, got {loss!r}")
    smoothing = number(loss, "label_smoothing", "loss", 0.0, lo=0.0, hi=1.0, open_hi=True)
    if smoothing and loss["name"] not in SOFTMAX_LOSSES:
        raise ValueError(f"spec: loss: label_smoothing applies to the softmax losses only, not {loss['name']}")
    upd = get(s, "update", "the spec")
    if not isinstance(upd, dict) or upd.get("name") not in UPDATES:
        raise ValueError(f"spec: update must name one of {', '.join(UPDATES)}, got {upd!r}")
    rule = upd["name"]
    if rule in ("momentum", "nesterov", "muon") and "mu" not in upd:
        raise ValueError(f"spec: update {rule!r} needs 'mu'")
    if rule == "muon" and "fallback_mu" not in upd:
        raise ValueError("spec: update 'muon' needs 'fallback_mu'")
    hyper = {
        # the update kernel's μ: Muon's fallback (its filters' own μ is muon_mu)
        "mu": number(upd, "fallback_mu" if rule == "muon" else "mu", "update", 0.0, lo=0.0, hi=1.0, open_hi=True),
        "muon_mu": number(upd, "mu", "update", 0.0, lo=0.0, hi=1.0, open_hi=True),
        "steps": upd.get("steps", 5),
        "normalize": upd.get("normalize", False),
        "beta1": number(upd, "beta1", "update", 0.9, lo=0.0, hi=1.0, open_hi=True),
        "beta2": number(upd, "beta2", "update", 0.999, lo=0.0, hi=1.0, open_hi=True),
        "eps": number(upd, "eps", "update", 1e-8, lo=0.0, open_lo=True),
        "weight_decay": number(upd, "weight_decay", "update", 0.0, lo=0.0),
    }
    if isinstance(hyper["steps"], bool) or not isinstance(hyper["steps"], int) or not 1 <= hyper["steps"] <= 100:
        raise ValueError(f"spec: update: steps must be an integer from 1 to 100, got {hyper['steps']!r}")
    if not isinstance(hyper["normalize"], bool):
        raise ValueError(f"spec: update: normalize must be true or false, got {hyper['normalize']!r}")
    reduction = s.get("reduction", "sum")
    if reduction not in REDUCTIONS:
        raise ValueError(f"spec: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    seed = s.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"spec: seed must be an integer in [0, 2^64), got {seed!r}")
    norm = s.get("input_norm")
    if norm is not None:
        c = inp[-1]
        if not isinstance(norm, dict) or len(norm.get("mean", ())) != c or len(norm.get("std", ())) != c:
            raise ValueError(f"spec: input_norm must give {c} means and {c} standard deviations")
        norm = (tuple(float(v) for v in norm["mean"]), tuple(float(v) for v in norm["std"]))
    return Net(
        input=inp, input_norm=norm, layers=layers, walk=walk, params=params, state=state,
        loss=loss["name"], mult=number(loss, "n", "loss", 1.0, lo=1.0), smoothing=smoothing,
        update=rule, hyper=hyper, mean=reduction == "mean", seed=seed,
        param_floats=p_off, state_floats=s_off,
    )


@dataclass(frozen=True)
class Window:
    """A window sliding over a (X, Y, Z) input (convolution, pooling): the kernels' geometry.
    Output sizes come from the resolved spec's dim_out."""

    x: int
    y: int
    z: int
    fx: int
    fy: int
    sx: int
    sy: int
    px: int
    py: int
    ox: int
    oy: int

    @property
    def k(self) -> int:  # columns of the im2col matrix = rows of a conv's W as a matrix
        return self.fx * self.fy * self.z

    @property
    def positions(self) -> int:  # output positions of one sample
        return self.ox * self.oy

    @property
    def in_size(self) -> int:
        return self.x * self.y * self.z

    @property
    def pointwise(self) -> bool:
        """1×1, stride 1, no padding: the input itself is the im2col matrix."""
        return (self.fx, self.fy, self.sx, self.sy, self.px, self.py) == (1, 1, 1, 1, 0, 0)

    def uniforms(self, n: int) -> tuple:
        return (n, self.x, self.y, self.z, self.fx, self.fy, self.sx, self.sy, self.px, self.py, self.ox, self.oy)

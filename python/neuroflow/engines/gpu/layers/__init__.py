"""The GPU engine's layer kinds, one class per kind of docs/engine.md.

A layer reads its shapes from the resolved spec, owns its parameter and state tensors
(places in the engine's flat buffers), says which per-sample buffers it needs in the
workspace, and records its forward and backward dispatches. The engine walks the layers;
a Residual walks its inner layers the same way.

Conventions every layer keeps:
- `forward(ctx, inp)` records the layer's forward on the chunk's `ctx.rows` samples of
  buffer `inp` and returns the buffer holding its activated output (usually its own
  `a<uid>` buffer; Dropout in eval mode returns `inp` itself).
- `backward(ctx, inp, d_out, d_in)` records the backward pass: d_out holds ∂L/∂(its output);
  it adds its parameters' gradients (times `ctx.scale`, accumulated when
  `ctx.accumulate`) to the flat gradient buffer and writes ∂L/∂(its input) to `d_in`
  unless that is None (the network's input). A layer never writes `d_out`: a residual
  reads it again after its inner layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..spec import KINDS, Tensor, fail, get, ints, number

if TYPE_CHECKING:
    from ..device import Buffer, Gpu
    from ..ops import Recorder
    from ..workspace import Workspace


@dataclass
class Ctx:
    """What a layer's recording needs: the recorder, the buffers, and the call's settings."""

    rec: Recorder
    ws: Workspace  # per-sample buffers by name (`a3`, `d3`, …), fixed ones, scratch
    params: Buffer  # the flat parameter buffer
    grads: Buffer  # the flat gradient buffer
    state: Buffer  # the flat state buffer (running statistics)
    rate: Buffer  # the per-call uniform: lr, step, bias corrections
    seed: int
    rows: int  # samples in this chunk
    base: int  # index of the chunk's first sample in the batch
    train: bool  # train mode (batch statistics, dropout)
    update_state: bool = False  # train mode that also moves the running statistics
    scale: float = 1.0  # the reduction's factor for parameter gradients (1/N for mean)
    accumulate: bool = False  # add parameter gradients to what is there (later chunks)
    outputs: dict[int, Buffer] = field(default_factory=dict)  # uid -> the buffer holding its output

    @property
    def gpu(self) -> Gpu:
        return self.rec.gpu

    @property
    def beta(self) -> float:
        return 1.0 if self.accumulate else 0.0


class Layer:
    kind = ""

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        self.uid, self.name, self.where = uid, name, where
        self.dim_in = ints(get(spec, "dim_in", where), None, f"{where}.dim_in")
        self.dim_out = ints(get(spec, "dim_out", where), None, f"{where}.dim_out")
        if self.size(self.dim_in) != self.size(dim_in):
            fail(where, f"dim_in {list(self.dim_in)} does not match the {list(dim_in)} the layer before gives")
        self.params: list[Tensor] = []
        self.state: list[Tensor] = []
        self._spec_params = get(spec, "params", where)
        self._spec_state = get(spec, "state", where)

    @staticmethod
    def size(dim) -> int:
        n = 1
        for d in dim:
            n *= d
        return n

    @property
    def in_size(self) -> int:
        return self.size(self.dim_in)

    @property
    def out_size(self) -> int:
        return self.size(self.dim_out)

    # ---- parameters and state, as the resolved spec lists them ----

    def take_params(self, expected: list[tuple[str, tuple]]) -> dict:
        """The spec's params, checked against the (name, shape) list this kind computes
        with; returns name -> Tensor."""
        got = self._spec_params
        names = [n for n, _ in expected]
        if not isinstance(got, list) or [p.get("name") if isinstance(p, dict) else None for p in got] != names:
            fail(self.where, f"params must be {names}, got {got!r}")
        out = {}
        for p, (name, shape) in zip(got, expected):
            s = ints(p.get("shape"), None, f"{self.where}.params.{name}.shape")
            if s != tuple(shape):
                fail(self.where, f"param {name} has shape {list(s)}, expected {list(shape)}")
            lr_mult, wd_mult = (number(p, k, f"{self.where}.params.{name}", 1.0, lo=0.0) for k in ("lr_mult", "wd_mult"))
            t = Tensor(f"{self.name}.{name}", s, lr_mult=lr_mult, wd_mult=wd_mult)
            self.params.append(t)
            out[name] = t
        return out

    def take_state(self, expected: list[tuple[str, tuple]]) -> dict:
        got = self._spec_state
        names = [n for n, _ in expected]
        if not isinstance(got, list) or [p.get("name") if isinstance(p, dict) else None for p in got] != names:
            fail(self.where, f"state must be {names}, got {got!r}")
        out = {}
        for p, (name, shape) in zip(got, expected):
            s = ints(p.get("shape"), None, f"{self.where}.state.{name}.shape")
            if s != tuple(shape):
                fail(self.where, f"state {name} has shape {list(s)}, expected {list(shape)}")
            t = Tensor(f"{self.name}.{name}", s, init=number(p, "init", f"{self.where}.state.{name}", 0.0))
            self.state.append(t)
            out[name] = t
        return out

    def link(self, walk: list) -> None:
        """Called once the layer has its uid in the walk (Residual builds its inner layers)."""

    # ---- workspace ----

    def buffers(self) -> dict[str, int]:
        """Per-sample floats of each workspace buffer this layer needs (named <key><uid>)."""
        return {"a": self.out_size, "d": self.out_size}

    def fixed(self) -> dict[str, int]:
        """Floats of the workspace buffers whose size does not grow with the batch."""
        return {}

    def buf(self, ctx: Ctx, key: str):
        return ctx.ws[f"{key}{self.uid}"]

    # ---- recording ----

    def run_forward(self, ctx: Ctx, inp, stop: int | None) -> tuple:
        """Record the forward; returns (the output buffer, whether this is layer `stop`)."""
        out = ctx.outputs[self.uid] = self.forward(ctx, inp)
        return out, stop == self.uid

    def forward(self, ctx: Ctx, inp):
        raise NotImplementedError

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, uid {self.uid}, {list(self.dim_in)} -> {list(self.dim_out)})"


def _classes() -> dict:
    from .batchnorm import BatchNorm
    from .conv import Conv
    from .dense import Dense
    from .dropout import Dropout
    from .pool import AvgPool, GlobalAvgPool, MaxPool
    from .residual import Residual

    classes = {c.kind: c for c in (Conv, Dense, BatchNorm, MaxPool, AvgPool, GlobalAvgPool, Dropout, Residual)}
    assert set(classes) == set(KINDS), "every layer kind of ids.json has its GPU class"
    return classes


def build_chain(specs: list, dim_in: tuple, walk: list, prefix: str, where: str) -> list:
    """The layer objects of one chain (the network's, or a residual's), appended to `walk`
    in pre-order: a residual before its inner layers."""
    classes = _classes()
    chain = []
    for i, l in enumerate(specs):
        if not isinstance(l, dict):
            fail(f"{where}[{i}]", f"expected a layer object, got {l!r}")
        name = l.get("name")
        w = f"{where}[{i}] ({name})"
        if not isinstance(name, str) or not name or "." in name:
            fail(w, f"a layer name must be a non-empty string without '.', got {name!r}")
        cls = classes.get(l.get("kind"))
        if cls is None:
            fail(w, f"kind must be one of {', '.join(KINDS)}, got {l.get('kind')!r}")
        layer = cls(l, len(walk), prefix + name, w, dim_in)
        walk.append(layer)
        layer.link(walk)
        chain.append(layer)
        dim_in = layer.dim_out
    from .dense import fold_chain

    fold_chain(chain)
    return chain


def forward_chain(ctx: Ctx, chain: list, inp, stop: int | None = None) -> tuple:
    """Record the chain's forward; returns (its output buffer, whether layer `stop` was
    reached, after which nothing more is recorded)."""
    for layer in chain:
        inp, done = layer.run_forward(ctx, inp, stop)
        if done:
            return inp, True
    return inp, False


def backward_chain(ctx: Ctx, chain: list, inp, d_out, d_in) -> None:
    """Record the chain's backward: d_out is ∂L/∂(the chain's output), d_in receives
    ∂L/∂(its input) unless None. Each layer's input gradient lands in the delta buffer of
    the layer before it."""
    inputs = [inp] + [ctx.outputs[layer.uid] for layer in chain[:-1]]
    d = d_out
    for i in reversed(range(len(chain))):
        layer = chain[i]
        target = d_in if i == 0 else chain[i - 1].buf(ctx, "d")
        layer.backward(ctx, inputs[i], d, target)
        d = target

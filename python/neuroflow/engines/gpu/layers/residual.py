"""Residual: y = f(x + inner(x) + act.bias) around a chain of inner layers that keep the
shape (nested residuals work: the inner chain is walked like the network's)."""

from __future__ import annotations

from .. import ops
from ..kernels import kernel
from ..ops import groups
from ..spec import activator, fail, get
from . import Ctx, Layer, backward_chain, build_chain, forward_chain


class Residual(Layer):
    kind = "residual"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if self.dim_out != self.dim_in:
            fail(where, f"dim_out {list(self.dim_out)} must equal dim_in {list(self.dim_in)}")
        self.act = activator(spec.get("activator", {"name": "linear"}), where)
        self._inner_spec = get(spec, "layers", where)
        if not isinstance(self._inner_spec, list) or not self._inner_spec:
            fail(where, "a residual needs at least one inner layer")
        # The parameters and state are the inner layers' (a resolved spec may list them here
        # too, prefixed): they are taken from the inner layers, not from this list.
        self.inner: list = []

    def link(self, walk: list) -> None:
        self.inner = build_chain(self._inner_spec, self.dim_in, walk, prefix=f"{self.name}.", where=f"{self.where}.layers")
        last = self.inner[-1]
        if last.out_size != self.out_size:
            fail(self.where, f"the inner layers give {list(last.dim_out)}, not the input's {list(self.dim_in)}")

    def _p(self, ctx: Ctx):
        return ctx.rec.params(ctx.rows * self.out_size, self.act.id, float(self.act.alpha), float(self.act.bias))

    def run_forward(self, ctx: Ctx, inp, stop: int | None) -> tuple:
        u, done = forward_chain(ctx, self.inner, inp, stop)
        if done:
            return u, True
        a = self.buf(ctx, "a")
        ctx.rec.dispatch(kernel(ctx.gpu, "residual", "forward"), (self._p(ctx), inp, u, a),
                         groups(ctx.rec, ctx.rows * self.out_size))
        ctx.outputs[self.uid] = a
        return a, stop == self.uid

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        last = self.inner[-1]
        if self.act.linear:  # f′ = 1: the delta of the sum is d_out itself
            g = d_out
        else:  # the last inner layer's own delta buffer is free: its output's delta comes from here
            g = last.buf(ctx, "d")
            u = ctx.outputs[last.uid]
            ctx.rec.dispatch(kernel(ctx.gpu, "residual", "backward"), (self._p(ctx), inp, u, d_out, g),
                             groups(ctx.rec, ctx.rows * self.out_size))
        backward_chain(ctx, self.inner, inp, g, d_in)
        if d_in is not None:
            ops.add(ctx.rec, ctx.rows * self.in_size, g, d_in)

"""Dropout: train mode only (eval mode is the identity: the layer's output is its input
buffer, no dispatch). Masks come from docs/engine.md's hash of (seed, step, uid, element
index in the batch), recomputed in the backward pass rather than stored."""

from __future__ import annotations

import math

from ..kernels import kernel
from ..ops import groups
from ..spec import fail, number
from . import Ctx, Layer


class Dropout(Layer):
    kind = "dropout"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if self.dim_out != self.dim_in:
            fail(where, f"dim_out {list(self.dim_out)} must equal dim_in {list(self.dim_in)}")
        self.rate = number(spec, "rate", where, lo=0.0, hi=1.0, open_hi=True)
        self.threshold = math.floor(self.rate * 2.0**32)  # exact: a power-of-two scaling
        self.take_params([])
        self.take_state([])

    def _identity(self, ctx: Ctx) -> bool:
        return not ctx.train or self.threshold == 0

    def _p(self, ctx: Ctx):
        d = self.out_size
        return ctx.rec.params(ctx.rows * d, (ctx.base * d) % 2**32, ctx.seed % 2**32, ctx.seed >> 32, self.uid,
                              self.threshold, float(1.0 / (1.0 - self.rate)))

    def forward(self, ctx: Ctx, inp):
        if self._identity(ctx):
            return inp
        a = self.buf(ctx, "a")
        ctx.rec.dispatch(kernel(ctx.gpu, "dropout", "forward"), (self._p(ctx), ctx.rate, inp, a),
                         groups(ctx.rec, ctx.rows * self.out_size))
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        if d_in is None:
            return
        if self._identity(ctx):  # eval-mode gradients are not in the contract; kept exact anyway
            ctx.rec.copy(d_out, 0, d_in, 0, 4 * ctx.rows * self.in_size)
            return
        ctx.rec.dispatch(kernel(ctx.gpu, "dropout", "backward"), (self._p(ctx), ctx.rate, d_out, d_in),
                         groups(ctx.rec, ctx.rows * self.in_size))

"""Dense: s[n, o] = Σ_d in[n, d]·W[d, o] (+ b[o]), a = f(s + act.bias); the input read flat."""

from __future__ import annotations

from .. import ops
from ..spec import activator, fail, get, ints
from . import Ctx, Layer


class Affine(Layer):
    """What conv and dense share: a weight, an optional bias, an activator; the bias and the
    activator are one element-wise pass over s (forward) and f′ one pass back, after which
    the bias gradient is the column sum of the delta."""

    channels = 0  # the bias's length (filters, neurons)

    def setup(self, spec: dict, weight_shape: tuple) -> None:
        self.act = activator(get(spec, "activator", self.where), self.where)
        bias = spec.get("bias", False)
        if not isinstance(bias, bool):
            fail(self.where, f"bias must be true or false, got {bias!r}")
        t = self.take_params([("weight", weight_shape)] + ([("bias", (self.channels,))] if bias else []))
        self.take_state([])
        self.w, self.b = t["weight"], t.get("bias")

    def buffers(self) -> dict[str, int]:
        # s: the pre-activation, then (after backward's f′ pass) the delta ∂L/∂s
        return {"s": self.out_size, "a": self.out_size, "d": self.out_size}

    def _bias(self, ctx: Ctx) -> dict:
        return {"params": ctx.params, "bias_off": self.b.offset if self.b else None, "channels": self.channels}

    def activate(self, ctx: Ctx, s, a) -> None:
        ops.act_forward(ctx.rec, self.act, ctx.rows * self.out_size, s, a, **self._bias(ctx))

    def delta(self, ctx: Ctx, d_out, s) -> None:
        """s ← ∂L/∂s = d_out ⊙ f′; then the bias gradient."""
        rows = ctx.rows * self.out_size // self.channels
        ops.act_backward(ctx.rec, self.act, ctx.rows * self.out_size, d_out, s, **self._bias(ctx))
        if self.b is not None:
            ops.colsum(ctx.rec, rows, self.channels, s, ctx.grads, out_off=self.b.offset, alpha=ctx.scale, beta=ctx.beta)


class Dense(Affine):
    kind = "dense"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        (o,) = ints(get(spec, "neurons", where), 1, f"{where}.neurons")
        if self.dim_out != (o,):
            fail(where, f"dim_out {list(self.dim_out)} is not ({o},)")
        self.d, self.o = self.in_size, o
        self.channels = o
        self.setup(spec, (self.d, o))

    def forward(self, ctx: Ctx, inp):
        s, a = self.buf(ctx, "s"), self.buf(ctx, "a")
        ops.gemm(ctx.rec, inp, ctx.params, s, ctx.rows, self.o, self.d, offsets=(0, self.w.offset, 0))
        self.activate(ctx, s, a)
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        rec, s = ctx.rec, self.buf(ctx, "s")
        self.delta(ctx, d_out, s)
        ops.gemm(rec, inp, s, ctx.grads, self.d, self.o, ctx.rows, trans_a=True, alpha=ctx.scale, beta=ctx.beta,
                 offsets=(0, 0, self.w.offset))
        if d_in is not None:
            ops.gemm(rec, s, ctx.params, d_in, ctx.rows, self.d, self.o, trans_b=True, offsets=(0, self.w.offset, 0))

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

    @property
    def identity(self) -> bool:
        """A linear activator without any bias: the output is s itself (no pass)."""
        return self.act.linear and self.act.bias == 0.0 and self.b is None

    def buffers(self) -> dict[str, int]:
        # s: the pre-activation, then (after backward's f′ pass) the delta ∂L/∂s
        if self.identity:
            return {"s": self.out_size, "d": self.out_size}
        return {"s": self.out_size, "a": self.out_size, "d": self.out_size}

    def _bias(self, ctx: Ctx) -> dict:
        return {"params": ctx.params, "bias_off": self.b.offset if self.b else None, "channels": self.channels}

    def activate(self, ctx: Ctx, s):
        """The output buffer: a = f(s + b + act.bias), or s itself for the identity."""
        if self.identity:
            return s
        a = self.buf(ctx, "a")
        ops.act_forward(ctx.rec, self.act, ctx.rows * self.out_size, s, a, **self._bias(ctx))
        return a

    def delta(self, ctx: Ctx, d_out, s):
        """∂L/∂s = d_out ⊙ f′ (into s; d_out itself when f′ = 1), then the bias gradient;
        returns the buffer holding ∂L/∂s. Overwriting s is safe: every reader of this
        layer's output has run its backward pass by now."""
        if self.act.linear:
            ds = d_out
        else:
            ops.act_backward(ctx.rec, self.act, ctx.rows * self.out_size, d_out, s, **self._bias(ctx))
            ds = s
        if self.b is not None:
            rows = ctx.rows * self.out_size // self.channels
            ops.colsum(ctx.rec, rows, self.channels, ds, ctx.grads, out_off=self.b.offset, alpha=ctx.scale, beta=ctx.beta)
        return ds


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
        s = self.buf(ctx, "s")
        ops.gemm(ctx.rec, inp, ctx.params, s, ctx.rows, self.o, self.d, offsets=(0, self.w.offset, 0))
        return self.activate(ctx, s)

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        rec = ctx.rec
        ds = self.delta(ctx, d_out, self.buf(ctx, "s"))
        ops.gemm(rec, inp, ds, ctx.grads, self.d, self.o, ctx.rows, trans_a=True, alpha=ctx.scale, beta=ctx.beta,
                 offsets=(0, 0, self.w.offset))
        if d_in is not None:
            ops.gemm(rec, ds, ctx.params, d_in, ctx.rows, self.d, self.o, trans_b=True, offsets=(0, self.w.offset, 0))

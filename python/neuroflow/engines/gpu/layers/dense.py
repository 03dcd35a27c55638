"""Dense: s[n, o] = Σ_d in[n, d]·W[d, o] (+ b[o]), a = f(s + act.bias); the input read flat.

What conv and dense share (Affine): the bias and the activator are the gemm's epilogue
(no pass of their own), and f′ is applied where it costs nothing:
- folded: when the next layer of the chain is also conv or dense and this layer's f′
  follows from its output (relu, leaky_relu with α ≥ 0, sigmoid, tanh — FROM_OUTPUT), the
  next layer's input-gradient gemm multiplies by f′(a) as it stores (docs/engine.md's f′
  folding, as the CPU engine does), and this layer's delta buffer receives ∂L/∂s directly;
  likewise the loss for the last layer;
- otherwise one element-wise pass: from the output a for FROM_OUTPUT activators, from the
  pre-activation s (kept by the forward epilogue) for the others (softplus, square, gelu);
- none for a linear activator.
"""

from __future__ import annotations

from .. import ops
from ..spec import Activator, activator, fail, get, ints
from . import Ctx, Layer


def from_output(act: Activator) -> bool:
    """Whether f′ follows exactly from the output a = f(x) (activators.wgsl's act_df_out)."""
    return act.name in ("relu", "sigmoid", "tanh", "linear") or (act.name == "leaky_relu" and act.alpha >= 0.0)


class Affine(Layer):
    """Conv and dense: a weight, an optional bias, an activator; see the module's text."""

    channels = 0  # the bias's length (filters, neurons)
    fold_prev: Activator | None = None  # the f′ of the layer before, folded into the input gradient
    d_folded = False  # the delta buffer receives ∂L/∂s (the consumer folded f′ in)

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
        """A linear activator without any bias: the output is s itself (no epilogue)."""
        return self.act.linear and self.act.bias == 0.0 and self.b is None

    @property
    def keep_s(self) -> bool:
        """Whether the forward keeps the pre-activation s for an f′ that does not follow
        from the output."""
        return not self.identity and not from_output(self.act) and not self.d_folded

    def buffers(self) -> dict[str, int]:
        # s: the output itself (identity), or the kept pre-activation, or scratch for ∂L/∂s
        if self.identity:
            return {"s": self.out_size, "d": self.out_size}
        out = {"a": self.out_size, "d": self.out_size}
        if not (self.d_folded or self.act.linear):
            out["s"] = self.out_size
        return out

    def output_epilogue(self, ctx: Ctx) -> ops.Epilogue | None:
        """The forward gemm's epilogue: bias and activator, s kept when needed."""
        if self.identity:
            return None
        return ops.Epilogue(1, self.act, bias_off=self.b.offset if self.b else None,
                            s=self.buf(ctx, "s") if self.keep_s else None)

    def output(self, ctx: Ctx):
        return self.buf(ctx, "s" if self.identity else "a")

    def input_epilogue(self, inp) -> ops.Epilogue | None:
        """The input-gradient gemm's epilogue: the f′ of the layer before, from its output."""
        if self.fold_prev is None:
            return None
        return ops.Epilogue(2, self.fold_prev, aux=inp)

    def delta(self, ctx: Ctx, d_out):
        """The buffer holding ∂L/∂s (d_out itself when f′ = 1 or was folded in), then the
        bias gradient. d_out is never written: a residual reads it again."""
        if self.d_folded or self.act.linear:
            ds = d_out
        else:
            ds = self.buf(ctx, "s")
            count = ctx.rows * self.out_size
            if self.keep_s:  # s = d ⊙ f′(s + b + act.bias), in place
                ops.act_backward(ctx.rec, self.act, count, d_out, ds, params=ctx.params,
                                 bias_off=self.b.offset if self.b else None, channels=self.channels)
            else:  # ds = d ⊙ f′ from the output a
                ops.act_backward_out(ctx.rec, self.act, count, d_out, self.buf(ctx, "a"), ds)
        if self.b is not None:
            rows = ctx.rows * self.out_size // self.channels
            ops.colsum(ctx.rec, rows, self.channels, ds, ctx.grads, out_off=self.b.offset, alpha=ctx.scale, beta=ctx.beta)
        return ds


def fold_chain(chain: list) -> None:
    """Fold each conv/dense layer's f′ into the next one's input gradient where it can."""
    for prev, cur in zip(chain, chain[1:]):
        if isinstance(prev, Affine) and isinstance(cur, Affine) and not prev.act.linear and from_output(prev.act):
            cur.fold_prev = prev.act
            prev.d_folded = True


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
        out = self.output(ctx)
        ops.gemm(ctx.rec, inp, ctx.params, out, ctx.rows, self.o, self.d, offsets=(0, self.w.offset, 0),
                 epilogue=self.output_epilogue(ctx))
        return out

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        rec = ctx.rec
        ds = self.delta(ctx, d_out)
        ops.gemm(rec, inp, ds, ctx.grads, self.d, self.o, ctx.rows, trans_a=True, alpha=ctx.scale, beta=ctx.beta,
                 offsets=(0, 0, self.w.offset))
        if d_in is not None:
            ops.gemm(rec, ds, ctx.params, d_in, ctx.rows, self.d, self.o, trans_b=True, offsets=(0, self.w.offset, 0),
                     epilogue=self.input_epilogue(inp))

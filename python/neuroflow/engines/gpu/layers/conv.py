"""Convolution as implicit GEMM: no column matrix is ever built.

- forward: s = col(x)·W, the gemm reading its A tiles straight from the input by the
  window's geometry (zero padding virtual), bias and activator in its epilogue;
- weight gradient: col(x)ᵀ·ds, the same gather transposed (K split across workgroups when
  the K·F outputs are too few to fill the GPU);
- input gradient: one gemm per stride phase (x mod sx, y mod sy) in one dispatch, each a
  stride-1 correlation of the delta with the phase's taps of the flipped, transposed
  weights, written straight to the phase's input positions (no col2im, no atomics), with
  the f′ of the layer before folded in where it can be (dense.py).
1×1 stride-1 layers without padding use the input itself as the column matrix.
"""

from __future__ import annotations

from .. import ops
from ..spec import Window, fail, get, ints
from . import Ctx
from .dense import Affine


class Conv(Affine):
    kind = "conv"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if len(self.dim_in) != 3 or len(self.dim_out) != 3:
            fail(where, f"a convolution maps (X, Y, Z) to (X', Y', F), got {list(self.dim_in)} -> {list(self.dim_out)}")
        x, y, z = self.dim_in
        ox, oy, f = self.dim_out
        px, py = ints(get(spec, "padding", where), 2, f"{where}.padding", positive=False)
        fx, fy = ints(get(spec, "field", where), 2, f"{where}.field")
        sx, sy = ints(get(spec, "stride", where), 2, f"{where}.stride")
        (filters,) = ints(get(spec, "filters", where), 1, f"{where}.filters")
        if f != filters:
            fail(where, f"dim_out {list(self.dim_out)} does not end in the {filters} filters")
        self.g = Window(x, y, z, fx, fy, sx, sy, px, py, ox, oy)
        self.channels = f
        self.setup(spec, (fx, fy, z, f))

    def _conv(self, ctx: Ctx, phased: bool = False):
        return None if self.g.pointwise else ops.Conv(self.g, ctx.rows, self.channels, phased)

    def forward(self, ctx: Ctx, inp):
        g, out = self.g, self.output(ctx)
        ops.gemm(ctx.rec, inp, ctx.params, out, ctx.rows * g.positions, self.channels, g.k,
                 offsets=(0, self.w.offset, 0), conv=self._conv(ctx), epilogue=self.output_epilogue(ctx))
        return out

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        g, rec = self.g, ctx.rec
        ds = self.delta(ctx, d_out)
        m = ctx.rows * g.positions
        ops.gemm(rec, inp, ds, ctx.grads, g.k, self.channels, m, trans_a=True, alpha=ctx.scale, beta=ctx.beta,
                 offsets=(0, 0, self.w.offset), conv=self._conv(ctx))
        if d_in is None:
            return
        if g.pointwise:
            ops.gemm(rec, ds, ctx.params, d_in, m, g.k, self.channels, trans_b=True, offsets=(0, self.w.offset, 0),
                     epilogue=self.input_epilogue(inp))
        else:
            ops.gemm(rec, ds, ctx.params, d_in, ctx.rows * g.x * g.y, g.z, g.k, offsets=(0, self.w.offset, 0),
                     conv=self._conv(ctx, phased=True), epilogue=self.input_epilogue(inp))

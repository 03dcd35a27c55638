"""Convolution: im2col × gemm, the bias and the activator in one pass after it.

The shared im2col buffer holds `ws.col_block` samples' columns at a time, so a batch that
must stay whole (batch statistics) never needs a column matrix for all of it: the forward
and the backward walk the chunk in blocks of samples. 1×1 stride-1 layers use their input
as the column matrix. The input gradient is ds·Wᵀ (into the column buffer) then col2im.
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

    @property
    def col_size(self) -> int:
        return 0 if self.g.pointwise else self.g.positions * self.g.k

    def _blocks(self, ctx: Ctx) -> list:
        if self.g.pointwise:
            return [(0, ctx.rows)]
        step = min(ctx.rows, ctx.ws.col_block)
        return [(b, min(step, ctx.rows - b)) for b in range(0, ctx.rows, step)]

    def _columns(self, ctx: Ctx, inp, b0: int, nb: int):
        """The column matrix of samples [b0, b0 + nb) and its offset (im2col unless the
        col buffer still holds it)."""
        if self.g.pointwise:
            return inp, b0 * self.in_size
        col = ctx.ws["col"]
        if ctx.col != (self.uid, b0, nb):
            ops.im2col(ctx.rec, self.g, nb, inp, col, x_off=b0 * self.in_size)
            ctx.col = (self.uid, b0, nb)
        return col, 0

    def forward(self, ctx: Ctx, inp):
        g, s = self.g, self.buf(ctx, "s")
        for b0, nb in self._blocks(ctx):
            col, off = self._columns(ctx, inp, b0, nb)
            ops.gemm(ctx.rec, col, ctx.params, s, nb * g.positions, self.channels, g.k,
                     offsets=(off, self.w.offset, b0 * self.out_size))
        return self.activate(ctx, s)

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        g, rec = self.g, ctx.rec
        s = self.delta(ctx, d_out, self.buf(ctx, "s"))  # now ∂L/∂s
        # Last block first: after the forward the column buffer may still hold it.
        for i, (b0, nb) in enumerate(reversed(self._blocks(ctx))):
            m = nb * g.positions
            col, off = self._columns(ctx, inp, b0, nb)
            ops.gemm(rec, col, s, ctx.grads, g.k, self.channels, m, trans_a=True, alpha=ctx.scale,
                     beta=ctx.beta if i == 0 else 1.0, offsets=(off, b0 * self.out_size, self.w.offset))
            if d_in is None:
                continue
            if g.pointwise:
                ops.gemm(rec, s, ctx.params, d_in, m, g.k, self.channels, trans_b=True, offsets=(0, self.w.offset, 0))
            else:  # dcol overwrites the columns, which the weight gradient has consumed
                ops.gemm(rec, s, ctx.params, col, m, g.k, self.channels, trans_b=True,
                         offsets=(b0 * self.out_size, self.w.offset, 0))
                ctx.col = None
                ops.col2im(rec, g, nb, col, d_in, dx_off=b0 * self.in_size)

"""Pooling: MaxPool (padding never wins, ties to the first in window order), AvgPool
(padding counts as 0), GlobalAvgPool (the mean over positions, flat output). Each is one
pass forward and one gather pass back (pool.wgsl)."""

from __future__ import annotations

from ..kernels import kernel
from ..ops import groups
from ..spec import Window, fail, get, ints
from . import Ctx, Layer


class _Windowed(Layer):
    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if len(self.dim_in) != 3 or len(self.dim_out) != 3 or self.dim_out[2] != self.dim_in[2]:
            fail(where, f"pooling maps (X, Y, Z) to (X', Y', Z), got {list(self.dim_in)} -> {list(self.dim_out)}")
        fx, fy = ints(get(spec, "field", where), 2, f"{where}.field")
        sx, sy = ints(get(spec, "stride", where), 2, f"{where}.stride")
        px, py = ints(spec.get("padding", [0, 0]), 2, f"{where}.padding", positive=False)
        x, y, z = self.dim_in
        self.g = Window(x, y, z, fx, fy, sx, sy, px, py, self.dim_out[0], self.dim_out[1])
        self.take_params([])
        self.take_state([])

    def _p(self, ctx: Ctx):
        return ctx.rec.params(*self.g.uniforms(ctx.rows))


class MaxPool(_Windowed):
    kind = "maxpool"

    def buffers(self) -> dict[str, int]:
        # arg: each output's winning position x·Y + y (u32), for the backward pass
        return {"a": self.out_size, "d": self.out_size, "arg": self.out_size}

    def forward(self, ctx: Ctx, inp):
        a, arg = self.buf(ctx, "a"), self.buf(ctx, "arg")
        ctx.rec.dispatch(kernel(ctx.gpu, "pool", "max_forward"), (self._p(ctx), inp, a, arg),
                         groups(ctx.rec, ctx.rows * self.out_size))
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        if d_in is not None:
            ctx.rec.dispatch(kernel(ctx.gpu, "pool", "max_backward"), (self._p(ctx), d_out, self.buf(ctx, "arg"), d_in),
                             groups(ctx.rec, ctx.rows * self.in_size))


class AvgPool(_Windowed):
    kind = "avgpool"

    def forward(self, ctx: Ctx, inp):
        a = self.buf(ctx, "a")
        ctx.rec.dispatch(kernel(ctx.gpu, "pool", "avg_forward"), (self._p(ctx), inp, a),
                         groups(ctx.rec, ctx.rows * self.out_size))
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        if d_in is not None:
            ctx.rec.dispatch(kernel(ctx.gpu, "pool", "avg_backward"), (self._p(ctx), d_out, d_in),
                             groups(ctx.rec, ctx.rows * self.in_size))


class GlobalAvgPool(Layer):
    kind = "global_avg_pool"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if len(self.dim_in) != 3 or self.dim_out != (self.dim_in[2],):
            fail(where, f"global average pooling maps (X, Y, Z) to (Z,), got {list(self.dim_in)} -> {list(self.dim_out)}")
        x, y, z = self.dim_in
        self.g = Window(x, y, z, 1, 1, 1, 1, 0, 0, 1, 1)
        self.take_params([])
        self.take_state([])

    def _p(self, ctx: Ctx):
        return ctx.rec.params(*self.g.uniforms(ctx.rows))

    def forward(self, ctx: Ctx, inp):
        a = self.buf(ctx, "a")
        ctx.rec.dispatch(kernel(ctx.gpu, "pool", "gap_forward"), (self._p(ctx), inp, a),
                         groups(ctx.rec, ctx.rows * self.out_size))
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        if d_in is not None:
            ctx.rec.dispatch(kernel(ctx.gpu, "pool", "gap_backward"), (self._p(ctx), d_out, d_in),
                             groups(ctx.rec, ctx.rows * self.in_size))

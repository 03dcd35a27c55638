"""BatchNorm over the last dimension (channels), then the layer's activator.

Train mode: the batch's mean and biased variance per channel, optionally moving the
running statistics (PyTorch's momentum convention, unbiased running variance); eval mode:
the running statistics. The per-channel reductions (statistics forward, Σg and Σg·x̂
backward) run over row ranges in parallel, adjacent invocations on adjacent channels, and
a second pass combines the ranges in a fixed order (none when one range does). The
backward pass recomputes x̂ and f′ from the input, so the layer keeps no per-element state
beyond its output.
"""

from __future__ import annotations

from ..kernels import kernel
from ..ops import groups
from ..spec import activator, fail, number
from . import Ctx, Layer


class BatchNorm(Layer):
    kind = "batchnorm"

    def __init__(self, spec: dict, uid: int, name: str, where: str, dim_in: tuple):
        super().__init__(spec, uid, name, where, dim_in)
        if self.dim_out != self.dim_in:
            fail(where, f"dim_out {list(self.dim_out)} must equal dim_in {list(self.dim_in)}")
        self.c = self.dim_in[-1]
        self.positions = self.in_size // self.c
        self.momentum = number(spec, "momentum", where, lo=0.0, hi=1.0)
        self.eps = number(spec, "eps", where, lo=0.0, open_lo=True)
        flags = {k: spec.get(k, True) for k in ("scale", "shift")}
        for k, v in flags.items():
            if not isinstance(v, bool):
                fail(where, f"{k} must be true or false, got {v!r}")
        self.act = activator(spec.get("activator", {"name": "linear"}), where)
        wanted = [(k, (self.c,)) for k in ("scale", "shift") if flags[k]]
        t = self.take_params(wanted)
        self.scale, self.shift = t.get("scale"), t.get("shift")
        s = self.take_state([("running_mean", (self.c,)), ("running_var", (self.c,))])
        self.running_mean, self.running_var = s["running_mean"], s["running_var"]

    def fixed(self) -> dict[str, int]:
        # stats: μ then σ² of the batch; sums: Σg then Σg·x̂ (backward)
        return {"stats": 2 * self.c, "sums": 2 * self.c}

    MIN_ROWS = 64  # the least of rows one range walks

    def _ranges(self, ctx: Ctx) -> tuple:
        """(rows per range, ranges) for the per-channel reductions: enough (range, channel)
        items for every invocation the GPU runs at once, each range at least MIN_ROWS long."""
        rows = ctx.rows * self.positions
        want = -(-ctx.gpu.parallelism * 64 // self.c)
        splits = max(1, min(want, rows // self.MIN_ROWS, 4096))
        per = -(-rows // splits)
        return per, -(-rows // per)

    def _uniforms(self, ctx: Ctx, train: bool, update: bool = False, whole: bool = True):
        if train:
            mean_off, var_off = 0, self.c
        else:
            mean_off, var_off = self.running_mean.offset, self.running_var.offset
        per, splits = self._ranges(ctx)
        return ctx.rec.params(
            ctx.rows * self.positions, self.c, self.act.id, float(self.act.alpha),
            float(self.act.bias), float(self.eps), float(self.momentum), int(update),
            mean_off, var_off, self.running_mean.offset, self.running_var.offset,
            self.scale.offset if self.scale else 0, self.shift.offset if self.shift else 0,
            int(self.scale is not None), int(self.shift is not None),
            self.scale.offset if self.scale else 0, self.shift.offset if self.shift else 0,
            float(ctx.scale), float(ctx.beta), per, splits, int(whole),
        )

    def _reduce(self, ctx: Ctx, entry: str, merge: str, head: tuple, out, tail: tuple) -> None:
        """A per-channel reduction: one pass over (range, channel) items writing `out`
        directly (one range) or partials that `merge` combines into `out`."""
        rec = ctx.rec
        per, splits = self._ranges(ctx)
        p = self._uniforms(ctx, True, ctx.update_state, whole=splits == 1)
        if splits == 1:
            rec.dispatch(kernel(ctx.gpu, "batchnorm", entry), (p, *head, out, *tail), groups(rec, self.c))
            return
        part = rec.cache.scratch("splits", 4 * 2 * self.c * splits)
        rec.dispatch(kernel(ctx.gpu, "batchnorm", entry), (p, *head, part, *tail), groups(rec, self.c * splits))
        merge_head = (part,) if merge == "stats_merge" else (*head[:-1], part)
        rec.dispatch(kernel(ctx.gpu, "batchnorm", merge), (p, *merge_head, out, *tail), groups(rec, self.c))

    def forward(self, ctx: Ctx, inp):
        rec, a = ctx.rec, self.buf(ctx, "a")
        stats = self.buf(ctx, "stats")
        if ctx.train:
            self._reduce(ctx, "stats", "stats_merge", (inp,), stats, (ctx.state,))
            p, src = self._uniforms(ctx, True), stats
        else:
            p, src = self._uniforms(ctx, False), ctx.state
        count = ctx.rows * self.in_size
        rec.dispatch(kernel(ctx.gpu, "batchnorm", "forward"), (p, inp, ctx.params, src, a), groups(rec, count))
        return a

    def backward(self, ctx: Ctx, inp, d_out, d_in) -> None:
        rec = ctx.rec
        stats, sums = self.buf(ctx, "stats"), self.buf(ctx, "sums")
        self._reduce(ctx, "backward_sums", "sums_merge", (inp, ctx.params, stats, d_out), sums, (ctx.grads,))
        if d_in is not None:
            p = self._uniforms(ctx, True)
            rec.dispatch(kernel(ctx.gpu, "batchnorm", "backward_input"), (p, inp, ctx.params, stats, d_out, sums, d_in),
                         groups(rec, ctx.rows * self.in_size))

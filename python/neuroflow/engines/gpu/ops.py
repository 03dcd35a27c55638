"""The GPU ops, one function per WGSL kernel, each recording dispatches into a Recorder.

Every op takes buffers and sizes, never host arrays: the engine records a whole training
step with these, and the tests drive each op alone through the same functions.
"""

from __future__ import annotations

from .device import Gpu
from .kernels import ELEMENTWISE_GROUP, Cache, kernel
from .spec import Activator, Conv


class Recorder:
    """Collects a call's GPU work as steps (dispatches and copies, with their pipelines and
    bind groups resolved) so a whole training step can be replayed without redoing any
    lookups; `run` encodes the steps into one command encoder and submits it once."""

    def __init__(self, gpu: Gpu, cache: Cache):
        self.gpu, self.cache = gpu, cache
        self.steps: list[tuple] = []

    def dispatch(self, k, buffers, groups: tuple) -> None:
        self.steps.append((k.pipeline, self.cache.bind(k, buffers), groups))

    def copy(self, src, src_off: int, dst, dst_off: int, nbytes: int) -> None:
        self.steps.append((src, src_off, dst, dst_off, nbytes))

    def submit(self) -> None:
        run(self.gpu, self.steps)


def run(gpu: Gpu, steps: list) -> None:
    """Encode steps: consecutive dispatches share one compute pass; a copy closes it."""
    encoder = gpu.device.create_command_encoder()
    cpass, pipeline = None, None
    for step in steps:
        if len(step) == 3:
            if cpass is None:
                cpass, pipeline = encoder.begin_compute_pass(), None
            if step[0] is not pipeline:
                pipeline = step[0]
                cpass.set_pipeline(pipeline)
            cpass.set_bind_group(0, step[1])
            cpass.dispatch_workgroups(*step[2])
        else:
            if cpass is not None:
                cpass.end()
                cpass = None
            encoder.copy_buffer_to_buffer(*step)
    if cpass is not None:
        cpass.end()
    gpu.queue.submit([encoder.finish()])


def _groups(rec: Recorder, count: int, per_group: int = ELEMENTWISE_GROUP) -> tuple:
    # The kernels loop (grid stride), so capping at the dispatch limit is always correct.
    return (max(1, min(-(-count // per_group), rec.gpu.max_groups)), 1, 1)


def _geom(g: Conv, n: int) -> tuple:
    return (n, g.x, g.y, g.z, g.fx, g.fy, g.sx, g.sy, g.px, g.py, g.ox, g.oy)


def im2col(rec: Recorder, g: Conv, n: int, x, col) -> None:
    """col[n·OX·OY, K] from x[n, X, Y, Z] (virtual zero padding)."""
    k = kernel(rec.gpu, "im2col")
    rec.dispatch(k, (rec.cache.params(*_geom(g, n)), x, col), _groups(rec, n * g.positions * g.k))


def col2im(rec: Recorder, g: Conv, n: int, dcol, dx) -> None:
    """dx[n, X, Y, Z] = the sum of the dcol entries that im2col copied each element to."""
    k = kernel(rec.gpu, "col2im")
    rec.dispatch(k, (rec.cache.params(*_geom(g, n)), dcol, dx), _groups(rec, n * g.in_size))


SPLIT_MIN_K = 256  # the least of K one tiled split walks: below it partials cost more than they save
SMALL_MIN_K = 64  # likewise for the thin-shape kernel
SMALL_FILL = 0.125  # use the thin-shape kernel when less than this of a tile would be real work


def _tile_fill(m: int, n: int, kd: int) -> float:
    """The fraction of the 64×64×16 tiles' work that is not padding."""
    return (m / (64 * -(-m // 64))) * (n / (64 * -(-n // 64))) * (kd / (16 * -(-kd // 16)))


def gemm(rec: Recorder, a, b, c, m: int, n: int, kd: int, *, trans_a: bool = False,
         trans_b: bool = False, lda: int | None = None, ldb: int | None = None,
         ldc: int | None = None, offsets: tuple = (0, 0, 0), alpha: float = 1.0,
         beta: float = 0.0, splits: int | None = None, small: bool | None = None) -> None:
    """C[m, n] = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions (default: packed).

    Shapes a 64×64 tile fits badly (a filter count of 1, K of 1) go to a per-element kernel.
    When the outputs are too few to fill the GPU and K is long (weight gradients), K is split
    across workgroups and the partials summed by gemm_splits. `splits` and `small` force
    the choice (tests use them)."""
    if min(m, n, kd) < 1:
        raise ValueError(f"gemm: sizes must be positive, got m={m} n={n} k={kd}")
    lda = lda if lda is not None else (m if trans_a else kd)
    ldb = ldb if ldb is not None else (kd if trans_b else n)
    ldc = ldc if ldc is not None else n
    a_off, b_off, c_off = map(int, offsets)
    gpu, cap = rec.gpu, rec.gpu.max_groups
    if small is None:
        small = _tile_fill(m, n, kd) < SMALL_FILL
    blocks_n, blocks_m = -(-n // 64), -(-m // 64)
    if splits is None:
        if small:  # enough (output, K range) items for every invocation the GPU runs at once
            want = -(-gpu.parallelism * 64 // (m * n))
            splits = max(1, min(want, kd // SMALL_MIN_K, 4096))
        else:
            want = -(-gpu.parallelism // (blocks_m * blocks_n))
            splits = max(1, min(want, kd // SPLIT_MIN_K, 64))
    k_split = -(-kd // max(1, splits))
    if not small:
        k_split = -(-k_split // 16) * 16  # whole K steps per split
    splits = max(1, -(-kd // k_split))
    k = kernel(gpu, "gemm", "small" if small else "main", TRANS_A=bool(trans_a), TRANS_B=bool(trans_b))
    if small:
        groups = _groups(rec, m * n * splits, 64)
    else:
        groups = (max(1, min(blocks_n, cap)), max(1, min(blocks_m, cap)), splits)
    # vec4 loads need 16-byte aligned runs: every buffer is a multiple of 16 bytes long,
    # so only the leading dimension and the offset decide.
    vec_a, vec_b = int(lda % 4 == 0 and a_off % 4 == 0), int(ldb % 4 == 0 and b_off % 4 == 0)
    if splits == 1:
        params = rec.cache.params(m, n, kd, lda, ldb, ldc, a_off, b_off, c_off, float(alpha), float(beta), kd, 0, vec_a, vec_b)
        rec.dispatch(k, (params, a, b, c, a, b), groups)
        return
    part = rec.cache.scratch("gemm-splits", 4 * splits * m * n)
    params = rec.cache.params(m, n, kd, lda, ldb, n, a_off, b_off, 0, float(alpha), 0.0, k_split, m * n, vec_a, vec_b)
    rec.dispatch(k, (params, a, b, part, a, b), groups)
    total = kernel(gpu, "gemm_splits")
    params = rec.cache.params(m, n, ldc, c_off, splits, float(beta))
    rec.dispatch(total, (params, part, c), _groups(rec, m * n))


def act_forward(rec: Recorder, act: Activator, count: int, s, a) -> None:
    """a = f(s + bias)."""
    k = kernel(rec.gpu, "act", "forward")
    p = rec.cache.params(count, act.id, float(act.alpha), float(act.bias))
    rec.dispatch(k, (p, s, a), _groups(rec, count))


def act_backward(rec: Recorder, act: Activator, count: int, s, d) -> None:
    """d ⊙= f′(s + bias), in place."""
    k = kernel(rec.gpu, "act", "backward")
    p = rec.cache.params(count, act.id, float(act.alpha), float(act.bias))
    rec.dispatch(k, (p, s, d), _groups(rec, count))


def loss_grad(rec: Recorder, loss: int, mult: float, rows: int, kd: int, y, t, losses, g) -> None:
    """losses[r] = L(y_r, t_r) and g = ∂L/∂y for each of `rows` samples of width kd."""
    k = kernel(rec.gpu, "loss", "loss_grad")
    p = rec.cache.params(rows, kd, loss, float(mult))
    rec.dispatch(k, (p, y, t, losses, g), _groups(rec, rows, 64))


def softmax(rec: Recorder, rows: int, kd: int, y, prob) -> None:
    k = kernel(rec.gpu, "softmax")
    rec.dispatch(k, (rec.cache.params(rows, kd), y, prob), _groups(rec, rows, 64))


def update(rec: Recorder, rule: str, mu: float, count: int, lr, w, g, m=None) -> None:
    """One update of `count` weights; `lr` is a uniform buffer holding the learning rate."""
    k = kernel(rec.gpu, "update", rule)
    p = rec.cache.params(count, float(mu))
    buffers = (p, lr, w, g) if rule == "vanilla" else (p, lr, w, g, m)
    rec.dispatch(k, buffers, _groups(rec, count))


def reduce_sum(rec: Recorder, count: int, scale: float, x, out) -> None:
    """out[0] = scale · Σ x[:count]."""
    k = kernel(rec.gpu, "reduce", "sum")
    rec.dispatch(k, (rec.cache.params(count, float(scale)), x, out), (1, 1, 1))

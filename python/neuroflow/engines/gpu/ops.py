"""The shared GPU ops, one function per WGSL kernel, each recording dispatches into a Recorder.

Every op takes buffers and sizes, never host arrays: the layers (layers/) and the engine
record a whole call with these, and the tests drive each op alone through the same
functions. Kernels that only one layer kind uses are recorded by that layer's module.
"""

from __future__ import annotations

from .device import Gpu
from .kernels import ELEMENTWISE_GROUP, Cache, kernel
from .spec import UPDATES, Activator, Window


class Recorder:
    """Collects a call's GPU work as steps (dispatches and copies, with their pipelines and
    bind groups resolved) so a whole training step can be replayed without redoing any
    lookups; `run` encodes the steps into one command encoder and submits it once.

    `notes` has one entry per step for the benchmarks and tests: (kernel name, estimated
    bytes read and written, workgroups) for a dispatch, ("copy", bytes, None) for a copy.
    An op that knows which part of a buffer it touches says so (`moved`); otherwise the
    estimate is the sum of the sizes of the distinct storage buffers it binds."""

    def __init__(self, gpu: Gpu, cache: Cache):
        self.gpu, self.cache = gpu, cache
        self.steps: list[tuple] = []
        self.notes: list[tuple] = []

    def dispatch(self, k, buffers, groups: tuple, moved: int | None = None) -> None:
        self.steps.append((k.pipeline, self.cache.bind(k, buffers), groups))
        if moved is None:
            seen = {id(b): b.size for b, kind in zip(buffers, k.kinds) if kind != "uniform"}
            moved = sum(seen.values())
        self.notes.append((k.name, int(moved), tuple(groups)))

    def copy(self, src, src_off: int, dst, dst_off: int, nbytes: int) -> None:
        self.steps.append((src, src_off, dst, dst_off, nbytes))
        self.notes.append(("copy", 2 * int(nbytes), None))

    def params(self, *values):
        return self.cache.params(*values)

    def submit(self) -> None:
        run(self.gpu, self.steps)


def encode(gpu: Gpu, steps: list):
    """The steps as one command buffer: consecutive dispatches share one compute pass; a
    copy closes it."""
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
    return encoder.finish()


def run(gpu: Gpu, steps: list) -> None:
    """Encode the steps and submit them."""
    gpu.queue.submit([encode(gpu, steps)])


def dispatches(steps: list) -> int:
    """How many of a recorded program's steps are dispatches (the rest are copies)."""
    return sum(1 for s in steps if len(s) == 3)


def groups(rec: Recorder, count: int, per_group: int = ELEMENTWISE_GROUP) -> tuple:
    # The kernels loop (grid stride), so capping at the dispatch limit is always correct.
    return (max(1, min(-(-count // per_group), rec.gpu.max_groups)), 1, 1)


def im2col(rec: Recorder, g: Window, n: int, x, col, x_off: int = 0) -> None:
    """col[n·OX·OY, K] from the n samples x[x_off :][n, X, Y, Z] (virtual zero padding)."""
    k = kernel(rec.gpu, "im2col")
    rec.dispatch(k, (rec.params(*g.uniforms(n), x_off), x, col), groups(rec, n * g.positions * g.k),
                 moved=4 * n * (g.in_size + g.positions * g.k))


def col2im(rec: Recorder, g: Window, n: int, dcol, dx, dx_off: int = 0) -> None:
    """dx[dx_off :][n, X, Y, Z] = the sum of the dcol entries that im2col copied each element to."""
    k = kernel(rec.gpu, "col2im")
    rec.dispatch(k, (rec.params(*g.uniforms(n), dx_off), dcol, dx), groups(rec, n * g.in_size),
                 moved=4 * n * (g.in_size + g.positions * g.k))


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
        grid = groups(rec, m * n * splits, 64)
    else:
        grid = (max(1, min(blocks_n, cap)), max(1, min(blocks_m, cap)), splits)
    # vec4 loads need 16-byte aligned runs: every buffer is a multiple of 16 bytes long,
    # so only the leading dimension and the offset decide.
    vec_a, vec_b = int(lda % 4 == 0 and a_off % 4 == 0), int(ldb % 4 == 0 and b_off % 4 == 0)
    if splits == 1:
        params = rec.params(m, n, kd, lda, ldb, ldc, a_off, b_off, c_off, float(alpha), float(beta), kd, 0, vec_a, vec_b)
        rec.dispatch(k, (params, a, b, c, a, b), grid, moved=4 * (m * kd + kd * n + m * n * (2 if beta else 1)))
        return
    part = rec.cache.scratch("splits", 4 * splits * m * n)
    params = rec.params(m, n, kd, lda, ldb, n, a_off, b_off, 0, float(alpha), 0.0, k_split, m * n, vec_a, vec_b)
    rec.dispatch(k, (params, a, b, part, a, b), grid, moved=4 * (m * kd + kd * n + splits * m * n))
    sum_splits(rec, m, n, ldc, c_off, splits, beta, part, c)


def sum_splits(rec: Recorder, m: int, n: int, ldc: int, c_off: int, splits: int, beta: float, part, c) -> None:
    """C[m, n] (at c_off, leading dimension ldc) = Σ_z part[z] + beta·C."""
    total = kernel(rec.gpu, "gemm_splits")
    rec.dispatch(total, (rec.params(m, n, ldc, c_off, splits, float(beta)), part, c), groups(rec, m * n),
                 moved=4 * m * n * (splits + (2 if beta else 1)))


def act_forward(rec: Recorder, act: Activator, count: int, s, a, *, params=None, bias_off: int | None = None,
                channels: int = 1) -> None:
    """a = f(s + b[i mod channels] + act.bias), b the layer's bias in the flat parameter
    buffer `params` at `bias_off` (none when bias_off is None)."""
    k = kernel(rec.gpu, "act", "forward")
    p = rec.params(count, act.id, float(act.alpha), float(act.bias), channels, bias_off or 0, int(bias_off is not None))
    rec.dispatch(k, (p, s, params if params is not None else s, a), groups(rec, count),
                 moved=4 * (2 * count + (channels if bias_off is not None else 0)))


def act_backward(rec: Recorder, act: Activator, count: int, d, s, *, params=None, bias_off: int | None = None,
                 channels: int = 1) -> None:
    """s = d ⊙ f′(s + b + act.bias), in place over s: the pre-activation becomes the layer's
    delta, and d (∂L/∂a) is left as it was."""
    k = kernel(rec.gpu, "act", "backward")
    p = rec.params(count, act.id, float(act.alpha), float(act.bias), channels, bias_off or 0, int(bias_off is not None))
    rec.dispatch(k, (p, d, params if params is not None else d, s), groups(rec, count),
                 moved=4 * (3 * count + (channels if bias_off is not None else 0)))


COLSUM_MIN_ROWS = 64  # the least of rows one split of a column sum walks


def colsum(rec: Recorder, rows: int, cols: int, x, out, *, out_off: int = 0, alpha: float = 1.0,
           beta: float = 0.0, splits: int | None = None) -> None:
    """out[out_off + j] = alpha·Σ_r x[r, j] + beta·out[out_off + j] (bias gradients), summed
    in a fixed order: row ranges in parallel, then their partials by gemm_splits."""
    if splits is None:
        want = -(-rec.gpu.parallelism * 64 // cols)
        splits = max(1, min(want, rows // COLSUM_MIN_ROWS, 4096))
    per = -(-rows // max(1, splits))
    splits = -(-rows // per)
    k = kernel(rec.gpu, "colsum")
    if splits == 1:
        p = rec.params(rows, cols, per, float(alpha), float(beta), out_off)
        rec.dispatch(k, (p, x, out), groups(rec, cols), moved=4 * (rows * cols + cols * (2 if beta else 1)))
        return
    part = rec.cache.scratch("splits", 4 * splits * cols)
    rec.dispatch(k, (rec.params(rows, cols, per, float(alpha), 0.0, 0), x, part), groups(rec, cols * splits),
                 moved=4 * (rows * cols + splits * cols))
    sum_splits(rec, 1, cols, cols, out_off, splits, beta, part, out)


def loss_grad(rec: Recorder, loss: int, mult: float, rows: int, kd: int, y, t, losses, g,
              smoothing: float = 0.0) -> None:
    """losses[r] = L(y_r, t_r) and g = ∂L/∂y for each of `rows` samples of width kd."""
    k = kernel(rec.gpu, "loss", "loss_grad")
    p = rec.params(rows, kd, loss, float(mult), float(smoothing))
    rec.dispatch(k, (p, y, t, losses, g), groups(rec, rows, 64))


def softmax(rec: Recorder, rows: int, kd: int, y, prob) -> None:
    k = kernel(rec.gpu, "softmax")
    rec.dispatch(k, (rec.params(rows, kd), y, prob), groups(rec, rows, 64))


def update(rec: Recorder, rule: str, hyper: dict, tensors: int, longest: int, rate, w, g, slot0, slot1,
           segments) -> None:
    """One update of every parameter tensor in one dispatch. `segments` holds per tensor
    (offset, size, lr_mult, wd_mult) as u32/f32 bit patterns; `rate` is the uniform
    (lr, step, 1 − β1ᵗ, 1 − β2ᵗ) written before the call; slot buffers the rule does not
    use are bound to placeholders."""
    k = kernel(rec.gpu, "update", "main")
    p = rec.params(UPDATES.index(rule), float(hyper["mu"]), float(hyper["beta1"]), float(hyper["beta2"]),
                   float(hyper["eps"]), float(hyper["weight_decay"]))
    x = max(1, min(-(-longest // ELEMENTWISE_GROUP), rec.gpu.max_groups))
    rec.dispatch(k, (p, rate, w, g, slot0, slot1, segments), (x, tensors, 1))


def reduce_sum(rec: Recorder, count: int, scale: float, x, out) -> None:
    """out[0] = scale · Σ x[:count]."""
    k = kernel(rec.gpu, "reduce", "sum")
    rec.dispatch(k, (rec.params(count, float(scale)), x, out), (1, 1, 1))


def add(rec: Recorder, count: int, g, dx) -> None:
    """dx += g (a residual's skip gradient)."""
    k = kernel(rec.gpu, "residual", "add")
    rec.dispatch(k, (rec.params(count), g, dx), groups(rec, count))

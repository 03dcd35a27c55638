"""The shared GPU ops, one function per WGSL kernel, each recording dispatches into a Recorder.

Every op takes buffers and sizes, never host arrays: the layers (layers/) and the engine
record a whole call with these, and the tests drive each op alone through the same
functions. Kernels that only one layer kind uses are recorded by that layer's module.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
    """col[n·OX·OY, K] from the n samples x[x_off :][n, X, Y, Z] (virtual zero padding). The
    engine builds no column matrix (convolutions are implicit GEMMs): for tests and debugging."""
    k = kernel(rec.gpu, "im2col")
    rec.dispatch(k, (rec.params(*g.uniforms(n), x_off), x, col), groups(rec, n * g.positions * g.k),
                 moved=4 * n * (g.in_size + g.positions * g.k))


def col2im(rec: Recorder, g: Window, n: int, dcol, dx, dx_off: int = 0) -> None:
    """dx[dx_off :][n, X, Y, Z] = the sum of the dcol entries that im2col copied each element to."""
    k = kernel(rec.gpu, "col2im")
    rec.dispatch(k, (rec.params(*g.uniforms(n), dx_off), dcol, dx), groups(rec, n * g.in_size),
                 moved=4 * n * (g.in_size + g.positions * g.k))


# ---------------------------------------------------------------- gemm

@dataclass(frozen=True)
class Tile:
    """A tiled gemm kernel's shape: a BM×BN block of C per workgroup, TM×TN outputs per
    invocation, K in steps of BK through two workgroup buffers. `speed` is a guess of its
    throughput per useful multiply-add relative to the largest, for the deterministic choice
    (the device check measures the real ones and can pin them: NEUROFLOW_GPU_TUNING)."""

    name: str
    bm: int
    bn: int
    tm: int
    tn: int
    bk: int
    speed: float
    cpu_speed: float = 0.1  # on a CPU adapter (lavapipe) barriers cost more than tiles save
    entry: str = "main"  # "direct": registers only, no workgroup memory

    @property
    def wg(self) -> int:
        return (self.bm // self.tm) * (self.bn // self.tn)

    @property
    def shared_bytes(self) -> int:
        return 0 if self.entry == "direct" else 2 * self.bk * (self.bm + self.bn) * 4

    def defines(self) -> dict:
        return {"BM": self.bm, "BN": self.bn, "TM": self.tm, "TN": self.tn, "BK": self.bk, "WG": self.wg}


TILES = {t.name: t for t in (
    Tile("128x128", 128, 128, 8, 8, 8, 1.0),
    Tile("128x64", 128, 64, 8, 4, 8, 0.85),
    Tile("64x128", 64, 128, 4, 8, 8, 0.85),
    Tile("64x64", 64, 64, 4, 4, 16, 0.6),
    Tile("64x32", 64, 32, 4, 4, 16, 0.45),
    Tile("32x64", 32, 64, 4, 4, 16, 0.45),
    Tile("32x32", 32, 32, 4, 4, 16, 0.3),
    Tile("direct", 32, 32, 4, 4, 4, 0.25, cpu_speed=1.0, entry="direct"),
)}
SMALL = "small"  # one invocation per output element: thin shapes
SMALL_SPEED = 0.08  # its throughput per useful multiply-add relative to the largest tile
SMALL_CPU_SPEED = 0.3  # … and relative to "direct" on a CPU adapter
SPLIT_MIN_K = 256  # the least of K one split walks: below it partials cost more than they save
SMALL_MIN_K = 64  # likewise for the per-element kernel
MAX_SPLITS = 64
MAX_PARTIAL_FLOATS = 1 << 21  # the split partials' scratch stays within 8 MiB
SPLIT_COST = 64.0  # multiply-adds' worth of time per partial element written and read back
DISPATCH_COST = 3e7  # multiply-adds' worth of time of one more dispatch (the partials' sum): ~2 µs
SPLIT_MIN_WORK = 1 << 24  # multiply-adds below which a gemm is never split: it is over in microseconds


@dataclass(frozen=True)
class Conv:
    """An operand read through a convolution's geometry (implicit GEMM). `g` is the
    convolution's window, `batch` the samples. Not phased: A is the im2col matrix of the
    layer's input (the forward, and with trans_a the weight gradient colᵀ·ds). Phased: the
    input gradient, A the delta, B the weights flipped and transposed, C the input's
    gradient, one phase (x mod sx, y mod sy) per workgroup z."""

    g: Window
    batch: int
    filters: int
    phased: bool = False


@dataclass(frozen=True)
class Epilogue:
    """What the gemm does to its result before storing it. kind 1: the forward of a layer:
    s = alpha·acc, C = f(s + bias + act.bias) (bias from B's buffer at bias_off), and s also
    into buffer `s` at s_off when given. kind 2: C = alpha·acc · f′ of the layer before,
    from its output `aux` (element for element like C, at aux_off)."""

    kind: int
    act: Activator
    bias_off: int | None = None
    s: object = None
    s_off: int = 0
    aux: object = None
    aux_off: int = 0


def _tuning(gpu: Gpu) -> dict:
    """Pinned choices: NEUROFLOW_GPU_TUNING names a JSON file {adapter name: {shape key:
    "tile" or "tile/splits"}} (the device check writes one); NEUROFLOW_GPU_GEMM pins one
    tile (or "small") for every shape."""
    cached = getattr(gpu, "_tuning", None)
    if cached is not None:
        return cached
    table: dict = {}
    path = os.environ.get("NEUROFLOW_GPU_TUNING", "")
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise RuntimeError(f"NEUROFLOW_GPU_TUNING={path!r}: cannot read it: {e}") from None
        table = dict(data.get(gpu.info.get("name", ""), {})) if isinstance(data, dict) else {}
    gpu._tuning = table
    return table


def _parse_choice(v: str, where: str) -> tuple:
    name, _, sp = str(v).partition("/")
    if name != SMALL and name not in TILES:
        raise ValueError(f"{where}: unknown gemm kernel {name!r}; use one of {', '.join(TILES)}, {SMALL}")
    return name, (int(sp) if sp else None)


def shape_key(form: str, m: int, n: int, k: int) -> str:
    return f"{form}:{m}x{n}x{k}"


def plan(gpu: Gpu, m: int, n: int, k: int, *, phases: int = 1, can_split: bool = True, key: str = "",
         tile: str | None = None, splits: int | None = None, allow_small: bool = True) -> tuple:
    """(kernel name, splits) for a gemm of M×N outputs over K (per phase): pinned by the
    arguments, NEUROFLOW_GPU_GEMM or the tuning file, else the cheapest by a simple model —
    the padded work of each tile over its relative speed and over how much of the GPU its
    grid fills (`gpu.gemm_fill` workgroups), plus the partials' traffic when K is split. K is
    split only when the grid alone cannot fill the GPU."""
    pinned = tile
    if pinned is None and os.environ.get("NEUROFLOW_GPU_GEMM"):
        pinned, sp = _parse_choice(os.environ["NEUROFLOW_GPU_GEMM"], "NEUROFLOW_GPU_GEMM")
        splits = splits if splits is not None else sp
    if pinned is None and key:
        hit = _tuning(gpu).get(key)
        if hit is not None:
            pinned, sp = _parse_choice(hit, f"tuning {key}")
            splits = splits if splits is not None else sp
    fill = max(1, gpu.gemm_fill)
    cpu = gpu.info.get("adapter_type") == "CPU"

    def split_for(items: int, per: int, cap: int) -> int:
        if not can_split or items >= fill or m * n * k * phases < SPLIT_MIN_WORK:
            return 1
        return max(1, min(-(-fill // items), k // per, cap, MAX_PARTIAL_FLOATS // (m * n)))

    def split_cost(sp: int) -> float:
        return SPLIT_COST * sp * m * n + DISPATCH_COST if sp > 1 else 0.0

    def small_cost(sp: int) -> float:
        occ = min(1.0, m * n * sp / (fill * 64))
        return m * n * k * phases / ((SMALL_CPU_SPEED if cpu else SMALL_SPEED) * occ) + split_cost(sp)

    def tile_cost(t: Tile, sp: int) -> float:
        bm, bn = -(-m // t.bm), -(-n // t.bn)
        occ = min(1.0, bm * bn * phases * sp / fill)
        return bm * t.bm * bn * t.bn * k * phases / ((t.cpu_speed if cpu else t.speed) * occ) + split_cost(sp)

    if pinned is not None:
        if pinned == SMALL:
            sp = splits if splits is not None else split_for(-(-m * n // 64), SMALL_MIN_K, 4096)
        else:
            t = TILES[pinned]
            sp = splits if splits is not None else split_for(-(-m // t.bm) * -(-n // t.bn) * phases, SPLIT_MIN_K, MAX_SPLITS)
        return pinned, max(1, sp if can_split else 1)
    options = []  # (cost, kernel, splits): each kernel with and without its split
    if allow_small:
        for sp in {1, splits or split_for(-(-m * n // 64), SMALL_MIN_K, 4096)}:
            options.append((small_cost(sp), SMALL, sp))
    for t in TILES.values():
        if t.shared_bytes > gpu.workgroup_storage or t.wg > gpu.max_invocations:
            continue
        for sp in {1, splits or split_for(-(-m // t.bm) * -(-n // t.bn) * phases, SPLIT_MIN_K, MAX_SPLITS)}:
            options.append((tile_cost(t, sp), t.name, sp))
    if splits is not None:
        options = [o for o in options if o[2] == splits] or options
    best = min(options, key=lambda o: o[0])  # ties: the first listed (deterministic)
    return best[1], best[2]


def _aligned(*values: int) -> bool:
    return all(v % 4 == 0 for v in values)


def gemm(rec: Recorder, a, b, c, m: int, n: int, kd: int, *, trans_a: bool = False,
         trans_b: bool = False, lda: int | None = None, ldb: int | None = None,
         ldc: int | None = None, offsets: tuple = (0, 0, 0), alpha: float = 1.0,
         beta: float = 0.0, splits: int | None = None, small: bool | None = None,
         tile: str | None = None, conv: Conv | None = None, epilogue: Epilogue | None = None) -> None:
    """C[m, n] = alpha·op(A)·op(B) + beta·C, row-major with leading dimensions (default:
    packed); or, with `conv`, a convolution as an implicit GEMM (see Conv; phased: m is the
    input positions of the batch, n the input channels, kd = fx·fy·F); with `epilogue`, a
    layer's bias and activator, or the f′ of the layer before, applied on the way out. The
    kernel and the K split come from `plan`; `tile`, `small` (True: the per-element kernel,
    False: a tiled one) and `splits` pin them (tests do)."""
    if min(m, n, kd) < 1:
        raise ValueError(f"gemm: sizes must be positive, got m={m} n={n} k={kd}")
    phased = conv is not None and conv.phased
    if phased and (trans_a or trans_b or beta):
        raise ValueError("gemm: a phased (input-gradient) convolution takes no transposes and no beta")
    epi = epilogue
    if epi is not None and beta:
        raise ValueError("gemm: an epilogue overwrites C (beta must be 0)")
    lda = lda if lda is not None else (m if trans_a else kd)
    ldb = ldb if ldb is not None else (kd if trans_b else n)
    ldc = ldc if ldc is not None else n
    a_off, b_off, c_off = map(int, offsets)
    gpu, cap = rec.gpu, rec.gpu.max_groups
    phases, tm, tk = 1, m, kd  # the grid's rows and the K of one phase (at most)
    if conv is None:
        geo = (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)
    else:
        g = conv.g
        if phased:  # A: the delta (OX, OY, F); rows: the input's positions (X, Y); n = Z
            geo = (conv.batch, g.ox, g.oy, conv.filters, g.x, g.y, g.fx, g.fy, g.sx, g.sy, g.px, g.py)
            phases = g.sx * g.sy
            tm = conv.batch * -(-g.x // g.sx) * -(-g.y // g.sy)
            tk = -(-g.fx // g.sx) * -(-g.fy // g.sy) * conv.filters
        else:
            geo = (conv.batch, g.x, g.y, g.z, g.ox, g.oy, g.fx, g.fy, g.sx, g.sy, g.px, g.py)
    cc = geo[3]
    form = ("T" if trans_a else "N") + ("T" if trans_b else "N") + (
        "" if conv is None else ("/dgrad" if phased else ("/wgrad" if trans_a else "/conv")))
    name, splits = plan(gpu, tm, n, tk, phases=phases, can_split=epi is None and not phased,
                        key=shape_key(form, m, n, kd), tile=SMALL if small else tile, splits=splits,
                        allow_small=small is not False)
    use_small = name == SMALL
    t = TILES["32x32" if use_small else name]
    if phased:
        splits, k_split = 1, kd
    else:
        k_split = -(-kd // max(1, splits))
        if not use_small:
            k_split = -(-k_split // t.bk) * t.bk  # whole K steps per split
        splits = max(1, -(-kd // k_split))
    split = splits > 1
    if split and epi is not None:
        raise ValueError("gemm: an epilogue needs the whole K in one pass")
    vec_a = int(_aligned(a_off, cc) if conv is not None else _aligned(lda, a_off))
    vec_b = int(_aligned(b_off, cc) if phased else _aligned(ldb, b_off))
    if split:
        out, out_off, out_ld = rec.cache.scratch("splits", 4 * splits * m * n), 0, n
    else:
        out, out_off, out_ld = c, c_off, ldc
    vec_c = not use_small and t.entry == "main" and _aligned(n, out_ld, out_off)
    defines = dict(t.defines(), TRANS_A=bool(trans_a), TRANS_B=bool(trans_b), A_CONV=conv is not None,
                   PHASED=phased, B_WFLIP=phased, VEC_C=vec_c, EPI=epi.kind if epi else 0,
                   WRITE_S=bool(epi is not None and epi.s is not None))
    k = kernel(gpu, "gemm", SMALL if use_small else t.entry, defines)
    act = epi.act if epi is not None else None
    params = rec.params(
        m, n, kd, lda, ldb, out_ld, a_off, b_off, out_off, float(alpha), 0.0 if split else float(beta),
        k_split, m * n if split else 0, vec_a, vec_b, *geo,
        act.id if act else 0, float(act.alpha) if act else 0.0, float(act.bias) if act else 0.0,
        int(epi.bias_off or 0) if epi else 0, int(epi is not None and epi.bias_off is not None),
        int(epi.aux_off) if epi else 0, int(epi.s_off) if epi else 0)
    aux = epi.aux if epi is not None and epi.aux is not None else rec.cache.scratch("unused-r", 16)
    s_buf = epi.s if epi is not None and epi.s is not None else rec.cache.scratch("unused-w", 16)
    if use_small:
        grid = groups(rec, geo[0] * geo[4] * geo[5] * n if phased else m * n * splits, 64)
    else:
        grid = (max(1, min(-(-n // t.bn), cap)), max(1, min(-(-tm // t.bm), cap)), phases if phased else splits)
    # estimated traffic: each operand's region once (a convolution's input, never its columns)
    a_elems = m * kd if conv is None else conv.batch * geo[1] * geo[2] * cc
    b_elems = geo[6] * geo[7] * n * cc if phased else kd * n  # phased: geo has the batch, fx, fy
    c_elems = m * n
    moved = a_elems + b_elems + (splits * m * n if split else c_elems * (2 if beta else 1))
    if epi is not None:
        moved += c_elems * ((epi.aux is not None) + (epi.s is not None)) + (epi.bias_off is not None) * n
    rec.dispatch(k, (params, a, b, out, a, b, aux, s_buf), grid, moved=4 * moved)
    if split:
        sum_splits(rec, m, n, ldc, c_off, splits, beta, out, c)


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


def act_backward_out(rec: Recorder, act: Activator, count: int, d, a, ds) -> None:
    """ds = d ⊙ f′, f′ taken from the output a (activators whose f′ follows from it)."""
    k = kernel(rec.gpu, "act", "backward_out")
    p = rec.params(count, act.id, float(act.alpha), float(act.bias), 1, 0, 0)
    rec.dispatch(k, (p, d, a, ds), groups(rec, count), moved=4 * 3 * count)


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


LOSS_SUM_MAX = 1 << 18  # the most outputs (rows × K) the one-workgroup loss-and-sum pass takes


def loss_grad(rec: Recorder, loss: int, mult: float, rows: int, kd: int, y, t, losses, g,
              smoothing: float = 0.0, fold: Activator | None = None, out=None, scale: float = 1.0) -> None:
    """losses[r] = L(y_r, t_r) and g = ∂L/∂y for each of `rows` samples of width kd; with
    `fold`, g = ∂L/∂y ⊙ f′ (the last layer's activator, f′ from its output y); with `out`,
    also out[0] = scale · Σ losses in the same pass (rows × kd ≤ LOSS_SUM_MAX)."""
    p = rec.params(rows, kd, loss, float(mult), float(smoothing), int(fold is not None),
                   fold.id if fold else 0, float(fold.alpha) if fold else 0.0, float(scale))
    moved = 4 * rows * (3 * kd + 1)
    if out is None:
        rec.dispatch(kernel(rec.gpu, "loss", "loss_grad"), (p, y, t, losses, g), groups(rec, rows, 64), moved=moved)
        return
    if rows * kd > LOSS_SUM_MAX:
        raise ValueError(f"loss_grad: {rows}×{kd} outputs are too many for one workgroup's sum")
    rec.dispatch(kernel(rec.gpu, "loss", "loss_grad_sum"), (p, y, t, losses, g, out), (1, 1, 1), moved=moved + 4)


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
    # the kernel loops over each tensor: enough workgroups to fill the device, no more
    x = max(1, min(-(-longest // ELEMENTWISE_GROUP), rec.gpu.max_groups, -(-4 * rec.gpu.parallelism // tensors)))
    rec.dispatch(k, (p, rate, w, g, slot0, slot1, segments), (x, tensors, 1))


NS = (3.4445, -4.7750, 2.0315)  # Muon's Newton–Schulz quintic (rust/optim.rs)


def muon(rec: Recorder, tensors: list, hyper: dict, rate, w, g, m) -> None:
    """Muon's step on each filter tensor (offset, K, F, lr_mult, wd_mult) of the flat
    parameters `w` (gradients `g`, momentum `m`), as rust/optim.rs: M = μM + g, x = g + μM
    scaled to unit norm, then `steps` Newton–Schulz steps on its wide side (K×F stored:
    A = xᵀx and x ← ax + x(bA + cA²) when K ≥ F, else A = xxᵀ and x ← ax + (bA + cA²)x),
    then w = w·s·(1 − αλ) − α·√max(1, F/K)·x."""
    longest = max(k * f for _, k, f, _, _ in tensors)
    side = max(min(k, f) for _, k, f, _, _ in tensors)
    x, y = rec.cache.scratch("muon-x", 4 * longest), rec.cache.scratch("muon-y", 4 * longest)
    a, b = rec.cache.scratch("muon-a", 4 * side * side), rec.cache.scratch("muon-b", 4 * side * side)
    nrm = rec.cache.scratch("muon-norms", 16)
    ka, kb, kc = NS

    def go(entry: str, buffers: tuple, grid) -> None:
        rec.dispatch(kernel(rec.gpu, "muon", entry), buffers, grid)

    def axpby(count: int, alpha: float, beta: float, src, dst) -> None:  # dst = α·src + β·dst
        go("axpby", (rec.params(count, 0, 0, 0, float(alpha), float(beta), 0.0, 0.0), src, dst), groups(rec, count))

    for off, k, f, lr_mult, wd_mult in tensors:
        n, s, tall = k * f, min(k, f), k >= f
        go("momentum", (rec.params(n, off, 0, 0, float(hyper["muon_mu"]), 0.0, 0.0, 0.0), g, m, x), groups(rec, n))
        go("sumsq", (rec.params(n, 0, 0, 0, 0.0, 0.0, 0.0, 0.0), x, nrm), (1, 1, 1))
        if hyper["normalize"]:
            go("sumsq", (rec.params(n, off, 1, 0, 0.0, 0.0, 0.0, 0.0), w, nrm), (1, 1, 1))
        go("scale", (rec.params(n, 0, 0, 0, 0.0, 0.0, 0.0, 0.0), nrm, x), groups(rec, n))
        for _ in range(hyper["steps"]):
            if tall:
                gemm(rec, x, x, a, f, f, k, trans_a=True)
            else:
                gemm(rec, x, x, a, k, k, f, trans_b=True)
            gemm(rec, a, a, b, s, s, s, alpha=kc)
            axpby(s * s, kb, 1.0, a, b)
            if tall:
                gemm(rec, x, b, y, k, f, f)
            else:
                gemm(rec, b, x, y, k, f, k)
            axpby(n, 1.0, ka, y, x)
        p = rec.params(n, off, 0, int(hyper["normalize"]), float(lr_mult), float(hyper["weight_decay"] * wd_mult),
                       float(math.sqrt(max(1.0, f / k))), float(math.sqrt(f)))
        go("step", (p, rate, w, x, nrm), groups(rec, n))


def reduce_sum(rec: Recorder, count: int, scale: float, x, out) -> None:
    """out[0] = scale · Σ x[:count]."""
    k = kernel(rec.gpu, "reduce", "sum")
    rec.dispatch(k, (rec.params(count, float(scale)), x, out), (1, 1, 1), moved=4 * (count + 1))


def convert_input(rec: Recorder, count: int, src_off: int, channels: int, uint8: bool, norm: bool, src, stats, x) -> None:
    """x[:count] = the batch's values from element src_off of the raw upload `src`: uint8
    scaled by f32(1/255) (else f32 bits), then (v − mean)·inv_std per channel with `norm`."""
    k = kernel(rec.gpu, "input", "convert")
    p = rec.params(count, src_off, channels, 1 if uint8 else 4, float(np.float32(1.0 / 255.0)), int(norm))
    rec.dispatch(k, (p, src, stats, x), groups(rec, count), moved=count * ((1 if uint8 else 4) + 4))


def add(rec: Recorder, count: int, g, dx) -> None:
    """dx += g (a residual's skip gradient)."""
    k = kernel(rec.gpu, "residual", "add")
    rec.dispatch(k, (rec.params(count), g, dx), groups(rec, count))

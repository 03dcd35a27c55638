"""Each WGSL kernel alone against its NumPy reference (tests/gpu_reference.py), through
the one parity helper: odd sizes, strides, padding, 1×1 fields, sizes off the tile grid."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_reference as ref
from gpu_parity import kernel_run, parity, random, require_gpu

ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softplus", "square")
LOSSES = ("softmax_log_entropy", "softmax_log_mult_entropy", "squared_error", "abs_cubic_error")


@pytest.fixture(scope="module")
def gpu():
    return require_gpu()


def _conv(x, y, z, px, py, fx, fy, sx, sy, f=1):
    from neuroflow.gpu.spec import Activator, Conv

    return Conv(x, y, z, px, py, fx, fy, sx, sy, f, Activator(0, 0.0, 0.0))


# (X, Y, Z, px, py, fx, fy, sx, sy, N)
GEOMETRIES = [
    (7, 5, 3, 1, 1, 3, 3, 1, 1, 2),  # odd sizes, padding
    (8, 9, 2, 1, 0, 4, 3, 2, 1, 3),  # stride 2 in x only, padding in x only
    (24, 24, 1, 1, 1, 4, 4, 2, 2, 3),  # the glasses net's second convolution
    (5, 6, 4, 0, 0, 1, 1, 1, 1, 2),  # 1×1 field
    (5, 5, 3, 0, 0, 1, 1, 2, 2, 1),  # 1×1 field, stride 2
    (4, 4, 2, 0, 0, 4, 4, 1, 1, 3),  # field = whole input
    (6, 7, 3, 2, 2, 5, 5, 1, 2, 2),  # wide padding, field larger than stride
]


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_im2col(gpu, rng, geom):
    from neuroflow.gpu import ops

    x, y, z, px, py, fx, fy, sx, sy, n = geom
    g = _conv(x, y, z, px, py, fx, fy, sx, sy)
    parity(
        kernel_run(gpu, lambda rec, b: ops.im2col(rec, g, n, b["x"], b["col"]), {"col": (n * g.positions, g.k)}),
        lambda a: {"col": ref.im2col(a["x"].astype(np.float64), px, py, fx, fy, sx, sy)},
        {"x": (n, x, y, z)},
        rng=rng, what=f"im2col {geom}",
    )


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_col2im(gpu, rng, geom):
    from neuroflow.gpu import ops

    x, y, z, px, py, fx, fy, sx, sy, n = geom
    g = _conv(x, y, z, px, py, fx, fy, sx, sy)
    parity(
        kernel_run(gpu, lambda rec, b: ops.col2im(rec, g, n, b["dcol"], b["dx"]), {"dx": (n, x, y, z)}),
        lambda a: {"dx": ref.col2im(a["dcol"].astype(np.float64), (n, x, y, z), px, py, fx, fy, sx, sy)},
        {"dcol": (n * g.positions, g.k)},
        rng=rng, what=f"col2im {geom}",
    )


# (M, N, K): tile-sized, one off the tile, tiny, long and thin, and multiples of 4 off the
# tile (vec4 loads with partial tiles and a partial K step)
GEMM_SIZES = [(1, 1, 1), (3, 5, 7), (64, 64, 16), (65, 63, 17), (130, 70, 33), (200, 3, 129), (2, 150, 5),
              (68, 36, 20), (132, 100, 52)]


@pytest.mark.parametrize("small", [False, True], ids=["tiled", "small"])
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)], ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("mnk", GEMM_SIZES, ids=str)
def test_gemm(gpu, rng, mnk, trans, small):
    """Both gemm kernels (64×64 tiles, and per element for thin shapes) on every size."""
    from neuroflow.gpu import ops

    m, n, k = mnk
    ta, tb = trans
    record = lambda rec, b: ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k, trans_a=ta, trans_b=tb, small=small, splits=1)
    parity(
        kernel_run(gpu, record, {"c": (m, n)}),
        lambda a: {"c": ref.gemm(a["a"].astype(np.float64), a["b"].astype(np.float64), trans_a=ta, trans_b=tb)},
        {"a": (k, m) if ta else (m, k), "b": (n, k) if tb else (k, n)},
        rng=rng, what=f"gemm {mnk} {trans}",
    )


@pytest.mark.parametrize("mnk", [(67, 5, 130), (9, 66, 3)], ids=str)
def test_gemm_accumulates_with_alpha_beta(gpu, rng, mnk):
    """The weight-gradient form: C = alpha·Aᵀ·B + C, C read and written in place."""
    from neuroflow.gpu import ops

    m, n, k = mnk
    parity(
        kernel_run(
            gpu,
            lambda rec, b: ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k, trans_a=True, alpha=0.25, beta=1.0),
            {},
            inout=("c",),
        ),
        lambda a: {"c": ref.gemm(a["a"].astype(np.float64), a["b"], a["c"].astype(np.float64), True, False, 0.25, 1.0)},
        {"a": (k, m), "b": (k, n), "c": (m, n)},
        rng=rng, what=f"gemm accumulate {mnk}",
    )


@pytest.mark.parametrize("small", [False, True], ids=["tiled", "small"])
@pytest.mark.parametrize("splits", [2, 3, 7])
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True)], ids=["NN", "TN", "NT"])
def test_gemm_split_k(gpu, rng, splits, trans, small):
    """K split across workgroups, partials summed by gemm_splits; with alpha and beta, K not
    a multiple of the split or of the K step."""
    from neuroflow.gpu import ops

    m, n, k = 27, 5, 301
    ta, tb = trans

    def record(rec, b):
        ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k, trans_a=ta, trans_b=tb, alpha=0.5, beta=1.0, splits=splits, small=small)

    def reference(a):
        return {"c": ref.gemm(a["a"].astype(np.float64), a["b"], a["c"].astype(np.float64), ta, tb, 0.5, 1.0)}

    parity(kernel_run(gpu, record, {}, inout=("c",)), reference,
           {"a": (k, m) if ta else (m, k), "b": (n, k) if tb else (k, n), "c": (m, n)}, rng=rng, what=f"split gemm {splits}")


@pytest.mark.parametrize("a0,b0,ldb", [(1, 3, 10), (4, 4, 12)], ids=["unaligned", "aligned"])
def test_gemm_on_sub_blocks(gpu, rng, a0, b0, ldb):
    """Offsets and leading dimensions larger than the block: C[1:10, 2:8] += A[3:12, a0:a0+4]
    · B[2:6, b0:b0+6]; with 16-byte aligned offsets and leading dimensions, vec4 loads."""
    from neuroflow.gpu import ops

    def record(rec, b):
        ops.gemm(rec, b["a"], b["b"], b["c"], 9, 6, 4, lda=8, ldb=ldb, ldc=9, offsets=(3 * 8 + a0, 2 * ldb + b0, 1 * 9 + 2),
                 beta=1.0, small=False)

    def reference(a):
        c = a["c"].astype(np.float64).copy()
        c[1:10, 2:8] += a["a"][3:12, a0 : a0 + 4].astype(np.float64) @ a["b"][2:6, b0 : b0 + 6]
        return {"c": c}

    parity(kernel_run(gpu, record, {}, inout=("c",)), reference, {"a": (12, 8), "b": (6, ldb), "c": (10, 9)},
           rng=rng, what="gemm sub-blocks")


def _activator(name, alpha, bias):
    from neuroflow.gpu.spec import ACTIVATORS, Activator

    return Activator(ACTIVATORS.index(name), alpha, bias)


@pytest.mark.parametrize("name", ACTS)
def test_activator_forward_backward(gpu, rng, name):
    from neuroflow.gpu import ops

    alpha, bias, count = 0.07, 0.3, 1031
    f = _activator(name, alpha, bias)
        # Half of the values large, so overflow-prone forms (exp of big numbers) are caught;
    # square stays moderate so that its values are comparable.
    big = 3.0 if name == "square" else 60.0
    s = random(rng, count) * np.where(np.arange(count) % 2, 3.0, big).astype(np.float32)

    def record(rec, b):
        ops.act_forward(rec, f, count, b["s"], b["a"])
        ops.act_backward(rec, f, count, b["s"], b["d"])

    def reference(a):
        x = a["s"].astype(np.float64) + bias
        return {"a": ref.act(name, x, alpha), "d": a["d"] * ref.act_grad(name, x, alpha)}

    parity(kernel_run(gpu, record, {"a": (count,)}, inout=("d",)), reference, {"s": s, "d": (count,)}, rng=rng, what=name)


def _targets(rng, name, rows, k, mult):
    if name.startswith("softmax"):
        t = rng.uniform(0.1, 1.0, (rows, k))
        t *= (mult if name == "softmax_log_mult_entropy" else 1.0) / t.sum(axis=1, keepdims=True)
        return t.astype(np.float32)
    return random(rng, (rows, k))


@pytest.mark.parametrize("k", [1, 2, 10])
@pytest.mark.parametrize("name", LOSSES)
def test_loss_and_gradient(gpu, rng, name, k):
    from neuroflow.gpu import ops
    from neuroflow.gpu.spec import LOSSES as IDS

    rows, mult = 37, 2.0
        # Rows alternate between small and huge outputs: log-softmax must stay finite.
    y = random(rng, (rows, k)) * np.where(np.arange(rows) % 2, 1.0, 80.0).astype(np.float32)[:, None]
    record = lambda rec, b: ops.loss_grad(rec, IDS.index(name), mult, rows, k, b["y"], b["t"], b["loss"], b["g"])

    def reference(a):
        values, g = ref.loss(name, a["y"].astype(np.float64), a["t"], mult)
        return {"loss": values, "g": g}

    parity(kernel_run(gpu, record, {"loss": (rows,), "g": (rows, k)}), reference,
           {"y": y, "t": _targets(rng, name, rows, k, mult)}, rng=rng, what=f"{name} k={k}")


@pytest.mark.parametrize("k", [1, 3, 10])
def test_softmax(gpu, rng, k):
    from neuroflow.gpu import ops

    rows = 29
    y = random(rng, (rows, k)) * 50
    parity(
        kernel_run(gpu, lambda rec, b: ops.softmax(rec, rows, k, b["y"], b["p"]), {"p": (rows, k)}),
        lambda a: {"p": ref.softmax(a["y"].astype(np.float64))},
        {"y": y},
        rng=rng, what=f"softmax k={k}",
    )


@pytest.mark.parametrize("rule", ["vanilla", "momentum", "nesterov"])
def test_update(gpu, rng, rule):
    from neuroflow.gpu import ops

    count, lr, mu = 1001, 0.05, 0.9
    lr_buf = gpu.uniform(np.array([lr, 0, 0, 0], np.float32).tobytes())
    record = lambda rec, b: ops.update(rec, rule, mu, count, lr_buf, b["w"], b["g"], b.get("m"))

    def reference(a):
        w, m = ref.update(rule, a["w"].astype(np.float64), a["g"], a.get("m"), lr, mu)
        return {"w": w} if rule == "vanilla" else {"w": w, "m": m}

    inputs = {"w": (count,), "g": (count,)} if rule == "vanilla" else {"w": (count,), "g": (count,), "m": (count,)}
    inout = ("w",) if rule == "vanilla" else ("w", "m")
    parity(kernel_run(gpu, record, {}, inout=inout), reference, inputs, rng=rng, what=rule)


@pytest.mark.parametrize("count", [1, 255, 257, 10_007])
@pytest.mark.parametrize("scale", [1.0, 0.125])
def test_reduce_sum(gpu, rng, count, scale):
    from neuroflow.gpu import ops

    parity(
        kernel_run(gpu, lambda rec, b: ops.reduce_sum(rec, count, scale, b["x"], b["out"]), {"out": (1,)}),
        lambda a: {"out": np.array([scale * a["x"].astype(np.float64).sum()])},
        {"x": (count,)},
        rng=rng, what=f"sum of {count}",
    )


def test_more_workgroups_than_one_dispatch_dimension_allows(gpu, rng):
    """A real dispatch capped at 65,535 workgroups: one invocation per element would need more."""
    from neuroflow.gpu import ops

    count = 65_535 * 256 + 1000
    relu = _activator("relu", 0.0, 0.0)
    parity(
        kernel_run(gpu, lambda rec, b: ops.act_forward(rec, relu, count, b["s"], b["a"]), {"a": (count,)}),
        lambda a: {"a": np.maximum(a["s"], 0)},
        {"s": (count,)},
        rng=rng, what="large dispatch",
    )


def test_kernels_loop_past_a_capped_dispatch(gpu, rng, monkeypatch):
    """With the dispatch capped at 2 workgroups per dimension every kernel must loop over
    the rest (the same path that sizes beyond 65,535 workgroups take, at a tenth of the cost)."""
    from neuroflow.gpu import ops

    monkeypatch.setattr(gpu, "max_groups", 2)
    m, n, k = 300, 200, 20  # 5 × 4 blocks of 64
    g = _conv(9, 8, 3, 1, 1, 3, 3, 1, 1)
    tanh = _activator("tanh", 0.0, 0.1)

    def record(rec, b):
        ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k)
        ops.im2col(rec, g, 7, b["x"], b["col"])
        ops.col2im(rec, g, 7, b["dcol"], b["dx"])
        ops.act_forward(rec, tanh, 2000, b["s"], b["act"])
        ops.loss_grad(rec, 2, 1.0, 600, 2, b["y"], b["t"], b["loss"], b["grad"])

    def reference(a):
        loss, grad = ref.loss("squared_error", a["y"].astype(np.float64), a["t"])
        return {
            "c": a["a"].astype(np.float64) @ a["b"],
            "col": ref.im2col(a["x"].astype(np.float64), 1, 1, 3, 3, 1, 1),
            "dx": ref.col2im(a["dcol"].astype(np.float64), (7, 9, 8, 3), 1, 1, 3, 3, 1, 1),
            "act": np.tanh(a["s"].astype(np.float64) + 0.1),
            "loss": loss,
            "grad": grad,
        }

    outputs = {"c": (m, n), "col": (7 * 72, 27), "dx": (7, 9, 8, 3), "act": (2000,), "loss": (600,), "grad": (600, 2)}
    inputs = {"a": (m, k), "b": (k, n), "x": (7, 9, 8, 3), "dcol": (7 * 72, 27), "s": (2000,), "y": (600, 2), "t": (600, 2)}
    parity(kernel_run(gpu, record, outputs), reference, inputs, rng=rng, what="capped dispatch")

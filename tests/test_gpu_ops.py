"""Each WGSL kernel alone against its float64 reference (tests/gpu_reference.py), through the
one parity helper: random non-zero inputs, outputs poisoned with NaN, ≤ 1e-4 of the
reference's max. The shared ops (gemm: every tile shape, the per-element kernel, split K,
implicit-GEMM convolutions, epilogues; im2col, col2im, activators, column sums, losses,
softmax, updates, sums) are driven through ops.py; each layer kind's kernels through its
layer class, which records them exactly as the engine does (one layer, one chunk)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import gpu_reference as ref
from gpu_parity import POISON, kernel_run, parity, random, require_gpu

ACTS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear", "softplus", "square", "gelu")
LOSSES = ("softmax_log_entropy", "softmax_log_mult_entropy", "squared_error", "abs_cubic_error")


@pytest.fixture(scope="module")
def gpu():
    return require_gpu()


def _window(x, y, z, px, py, fx, fy, sx, sy):
    from neuroflow.gpu.spec import Window

    ox, oy = ref.out_dims(x, y, px, py, fx, fy, sx, sy)
    return Window(x, y, z, fx, fy, sx, sy, px, py, ox, oy)


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
    """Columns of samples [1, 1 + n) of a batch of n + 2 (the sample offset convolutions
    use to walk a batch in blocks)."""
    from neuroflow.gpu import ops

    x, y, z, px, py, fx, fy, sx, sy, n = geom
    g = _window(x, y, z, px, py, fx, fy, sx, sy)
    parity(
        kernel_run(gpu, lambda rec, b: ops.im2col(rec, g, n, b["x"], b["col"], x_off=g.in_size),
                   {"col": (n * g.positions, g.k)}),
        lambda a: {"col": ref.im2col(a["x"][1 : 1 + n].astype(np.float64), px, py, fx, fy, sx, sy)},
        {"x": (n + 2, x, y, z)},
        rng=rng, what=f"im2col {geom}",
    )


@pytest.mark.parametrize("geom", GEOMETRIES, ids=str)
def test_col2im(gpu, rng, geom):
    """Into samples [2, 2 + n) of a buffer of n + 2; the first two keep their poison."""
    from neuroflow.gpu import ops

    x, y, z, px, py, fx, fy, sx, sy, n = geom
    g = _window(x, y, z, px, py, fx, fy, sx, sy)
    run = kernel_run(gpu, lambda rec, b: ops.col2im(rec, g, n, b["dcol"], b["dx"], dx_off=2 * g.in_size),
                     {"dx": (n + 2, x, y, z)})

    def gpu_run(a):
        dx = run(a)["dx"]
        assert np.isnan(dx[:2]).all(), "col2im wrote outside its samples"
        return {"dx": dx[2:]}

    parity(gpu_run, lambda a: {"dx": ref.col2im(a["dcol"].astype(np.float64), (n, x, y, z), px, py, fx, fy, sx, sy)},
           {"dcol": (n * g.positions, g.k)}, rng=rng, what=f"col2im {geom}")


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


TILE_SIZES = [(260, 136, 40), (67, 45, 21), (128, 128, 16)]  # interior blocks, vec4 stores; all ragged; exact


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True)], ids=["NN", "TN", "NT"])
@pytest.mark.parametrize("tile", ["128x128", "128x64", "64x128", "64x64", "64x32", "32x64", "32x32", "direct"])
@pytest.mark.parametrize("mnk", TILE_SIZES, ids=str)
def test_gemm_tiles(gpu, rng, mnk, tile, trans):
    """Every tile shape of the deterministic choice (and of the device's autotuning): blocks
    wholly inside the matrices (no bounds checks), ragged edges, vec4 and scalar stores."""
    from neuroflow.gpu import ops

    if ops.TILES[tile].shared_bytes > gpu.workgroup_storage:
        pytest.skip(f"{tile} needs more workgroup memory than this device has")
    m, n, k = mnk
    ta, tb = trans
    record = lambda rec, b: ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k, trans_a=ta, trans_b=tb, tile=tile, splits=1)
    parity(
        kernel_run(gpu, record, {"c": (m, n)}),
        lambda a: {"c": ref.gemm(a["a"].astype(np.float64), a["b"].astype(np.float64), trans_a=ta, trans_b=tb)},
        {"a": (k, m) if ta else (m, k), "b": (n, k) if tb else (k, n)},
        rng=rng, what=f"gemm {tile} {mnk} {trans}",
    )


# (X, Y, Z, px, py, fx, fy, sx, sy, N) of the implicit-GEMM convolutions: the geometries
# above, and channels that are multiples of 4 (vec4 gathers)
CONV_GEOMETRIES = GEOMETRIES + [(9, 9, 8, 1, 1, 4, 4, 2, 2, 2), (8, 8, 8, 1, 1, 3, 3, 1, 1, 3)]


@pytest.mark.parametrize("kernel", ["auto", "small", "direct", "32x32", "128x64"])
@pytest.mark.parametrize("filters", [1, 4, 6])
@pytest.mark.parametrize("geom", CONV_GEOMETRIES, ids=str)
def test_conv_as_implicit_gemm(gpu, rng, geom, filters, kernel):
    """A convolution's three gemms read straight from the tensors (no column matrix):
    forward col·W, weight gradient alpha·colᵀ·ds (K split as the plan says), and the input
    gradient by stride phases with the flipped, transposed weights (== col2im(ds·Wᵀ))."""
    from neuroflow.gpu import ops

    x, y, z, px, py, fx, fy, sx, sy, n = geom
    g = _window(x, y, z, px, py, fx, fy, sx, sy)
    f, m = filters, n * g.positions
    pin = {"small": True} if kernel == "small" else ({} if kernel == "auto" else {"tile": kernel})

    def record(rec, b):
        ops.gemm(rec, b["x"], b["w"], b["s"], m, f, g.k, conv=ops.Conv(g, n, f), **pin)
        ops.gemm(rec, b["x"], b["ds"], b["gw"], g.k, f, m, trans_a=True, alpha=0.5, conv=ops.Conv(g, n, f), **pin)
        ops.gemm(rec, b["ds"], b["w"], b["dx"], n * x * y, z, g.k, conv=ops.Conv(g, n, f, phased=True), **pin)

    def reference(a):
        col = ref.im2col(a["x"].astype(np.float64), px, py, fx, fy, sx, sy)
        w, ds = a["w"].astype(np.float64), a["ds"].astype(np.float64)
        return {"s": col @ w, "gw": 0.5 * col.T @ ds,
                "dx": ref.col2im(ds @ w.T, (n, x, y, z), px, py, fx, fy, sx, sy).reshape(n * x * y, z)}

    parity(kernel_run(gpu, record, {"s": (m, f), "gw": (g.k, f), "dx": (n * x * y, z)}), reference,
           {"x": (n, x, y, z), "w": (g.k, f), "ds": (m, f)}, rng=rng, what=f"implicit conv {geom} F={f} {kernel}")


def _activator(name, alpha, bias):
    from neuroflow.gpu.spec import ACTIVATORS, Activator

    return Activator(ACTIVATORS.index(name), alpha, bias)


@pytest.mark.parametrize("with_bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("name", ACTS)
def test_bias_and_activator(gpu, rng, name, with_bias):
    """a = f(s + b[i mod C] + act.bias) and, in place, s = d ⊙ f′(…), b read from an offset
    in the flat parameter buffer."""
    from neuroflow.gpu import ops

    alpha, abias, channels, rows = 0.07, 0.3, 7, 149
    count = rows * channels
    f = _activator(name, alpha, abias)
    # Half of the values large, so overflow-prone forms (exp of big numbers) are caught;
    # square stays moderate so that its values are comparable.
    big = 3.0 if name == "square" else 60.0
    s = random(rng, count) * np.where(np.arange(count) % 2, 3.0, big).astype(np.float32)
    off = 8 if with_bias else None

    def record(rec, b):
        kw = {"params": b["p"], "bias_off": off, "channels": channels}
        ops.act_forward(rec, f, count, b["s"], b["a"], **kw)
        ops.act_backward(rec, f, count, b["d"], b["s"], **kw)

    def reference(a):
        bias = np.tile(a["p"][8 : 8 + channels].astype(np.float64), rows) if with_bias else 0.0
        x = a["s"].astype(np.float64) + bias + abias
        return {"a": ref.act_f(name, x, alpha), "s": a["d"] * ref.act_df(name, x, alpha), "d": a["d"]}

    parity(kernel_run(gpu, record, {"a": (count,)}, inout=("s", "d")), reference,
           {"s": s, "d": (count,), "p": (8 + channels,)}, rng=rng, what=name)


FROM_OUTPUT = ("relu", "leaky_relu", "sigmoid", "tanh", "linear")


@pytest.mark.parametrize("kernel", ["small", "direct", "32x32", "64x64"])
@pytest.mark.parametrize("name", ACTS)
def test_gemm_epilogues(gpu, rng, name, kernel):
    """The forward epilogue: a = f(alpha·A·B + bias + act.bias), s = alpha·A·B kept beside
    it; the input-gradient epilogue: alpha·A·B ⊙ f′ taken from the layer before's output."""
    from neuroflow.gpu import ops

    m, n, k, bias_off = 37, 12, 9, 4 + 9 * 12  # the bias sits after B in B's buffer
    f = _activator(name, 0.07, 0.2)
    pin = {"small": True} if kernel == "small" else {"tile": kernel}
    big = 2.0 if name == "square" else 6.0
    fold = name if name in FROM_OUTPUT else "tanh"
    y_prev, df = _fold_input(rng, fold, (m, n))
    g = _activator(fold, 0.07, 0.0)

    def record(rec, b):
        ops.gemm(rec, b["a"], b["b"], b["out"], m, n, k, alpha=big, offsets=(0, 4, 0),
                 epilogue=ops.Epilogue(1, f, bias_off=bias_off, s=b["s"]), **pin)
        ops.gemm(rec, b["a"], b["b"], b["dx"], m, n, k, alpha=0.5, offsets=(0, 4, 0),
                 epilogue=ops.Epilogue(2, g, aux=b["aux"]), **pin)

    def reference(a):
        prod = a["a"].astype(np.float64) @ a["b"][4 : 4 + k * n].reshape(k, n)
        s = big * prod
        return {"s": s, "out": ref.act_f(name, s + a["b"][bias_off : bias_off + n] + 0.2, 0.07), "dx": 0.5 * prod * df}

    parity(kernel_run(gpu, record, {"out": (m, n), "s": (m, n), "dx": (m, n)}), reference,
           {"a": (m, k), "b": (bias_off + n,), "aux": y_prev}, rng=rng, what=f"epilogue {name} {kernel}")


def _fold_input(rng, name, shape):
    """An input that is the output of activator `name` (the layer before), its f′ there."""
    pre = random(rng, shape) * 2
    return ref.act_f(name, pre.astype(np.float64), 0.07).astype(np.float32), ref.act_df(name, pre.astype(np.float64), 0.07)


@pytest.mark.parametrize("name", FROM_OUTPUT)
def test_activator_derivative_from_the_output(gpu, rng, name):
    """ds = d ⊙ f′ taken from a = f(x) (no pre-activation kept)."""
    from neuroflow.gpu import ops

    count = 1001
    a_, df = _fold_input(rng, name, (count,))
    record = lambda rec, b: ops.act_backward_out(rec, _activator(name, 0.07, 0.3), count, b["d"], b["a"], b["ds"])
    parity(kernel_run(gpu, record, {"ds": (count,)}), lambda a: {"ds": a["d"] * df}, {"d": (count,), "a": a_},
           rng=rng, what=name)


def test_gelu_against_erf_over_its_range(gpu):
    """GELU and its derivative to ~1e-7 absolute (WGSL has no erf), tails included."""
    from neuroflow.gpu import ops

    x = np.linspace(-12, 12, 4801).astype(np.float32)
    f = _activator("gelu", 0.0, 0.0)

    def record(rec, b):
        ops.act_forward(rec, f, x.size, b["x"], b["a"])
        ops.act_backward(rec, f, x.size, b["one"], b["x"])

    got = kernel_run(gpu, record, {"a": x.shape}, inout=("x",))({"x": x.copy(), "one": np.ones_like(x)})
    x64 = x.astype(np.float64)
    assert np.abs(got["a"] - ref.act_f("gelu", x64)).max() <= 2e-7 * 12  # f32 rounding of x·Φ(x) is |x|·6e-8
    assert np.abs(got["x"] - ref.act_df("gelu", x64)).max() <= 1e-6
    # The left tail keeps its relative accuracy (against erfc: 1 + erf loses it) up to what
    # the driver's exp gives (Vulkan asks 3 + 2|x| ULP: ~1e-5 at exp(−72)).
    cdf = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x64])
    tail = x64 < -3
    assert np.allclose(got["a"][tail], (x64 * cdf)[tail], rtol=5e-5, atol=0)


@pytest.mark.parametrize("rows,cols,splits", [(1, 5, None), (300, 7, None), (1000, 3, 4), (257, 64, 3), (64, 1, None)],
                         ids=str)
def test_colsum(gpu, rng, rows, cols, splits):
    """Bias gradients: alpha·Σ_rows + beta·out at an offset, split into row ranges or not."""
    from neuroflow.gpu import ops

    record = lambda rec, b: ops.colsum(rec, rows, cols, b["x"], b["out"], out_off=4, alpha=0.5, beta=1.0, splits=splits)

    def reference(a):
        out = a["out"].astype(np.float64).copy()
        out[4 : 4 + cols] += 0.5 * a["x"].astype(np.float64).sum(axis=0)
        return {"out": out}

    parity(kernel_run(gpu, record, {}, inout=("out",)), reference, {"x": (rows, cols), "out": (4 + cols,)},
           rng=rng, what=f"colsum {rows}x{cols}")


def _targets(rng, name, rows, k, mult):
    if name.startswith("softmax"):
        t = rng.uniform(0.1, 1.0, (rows, k))
        t *= (mult if name == "softmax_log_mult_entropy" else 1.0) / t.sum(axis=1, keepdims=True)
        t[::3, 0] = 0.0  # zero targets: their terms must contribute nothing (without smoothing)
        return t.astype(np.float32)
    return random(rng, (rows, k))


@pytest.mark.parametrize("k", [1, 2, 10])
@pytest.mark.parametrize("name,smoothing", [(n, 0.0) for n in LOSSES] + [(n, 0.2) for n in LOSSES[:2]], ids=str)
def test_loss_and_gradient(gpu, rng, name, k, smoothing):
    """Per-sample losses and ∂L/∂y; label smoothing (a softmax loss's) spreads ε·m/K."""
    from neuroflow.gpu import ops
    from neuroflow.gpu.spec import LOSSES as IDS

    rows, mult = 37, 2.0
    # Rows alternate between small and huge outputs: log-softmax must stay finite.
    y = random(rng, (rows, k)) * np.where(np.arange(rows) % 2, 1.0, 80.0).astype(np.float32)[:, None]
    record = lambda rec, b: ops.loss_grad(rec, IDS.index(name), mult, rows, k, b["y"], b["t"], b["loss"], b["g"], smoothing)

    def reference(a):
        values, g = ref.sample_losses(name, a["y"].astype(np.float64), a["t"].astype(np.float64), mult, smoothing)
        return {"loss": values, "g": g}

    parity(kernel_run(gpu, record, {"loss": (rows,), "g": (rows, k)}), reference,
           {"y": y, "t": _targets(rng, name, rows, k, mult)}, rng=rng, what=f"{name} k={k} ε={smoothing}")


@pytest.mark.parametrize("act", ["relu", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("name", ["softmax_log_entropy", "squared_error", "abs_cubic_error"])
def test_loss_gradient_folds_the_last_layers_derivative(gpu, rng, name, act):
    """g = ∂L/∂y ⊙ f′ of the last layer, f′ taken from its output y."""
    from neuroflow.gpu import ops
    from neuroflow.gpu.spec import LOSSES as IDS

    rows, k = 23, 5
    y, df = _fold_input(rng, act, (rows, k))
    f = _activator(act, 0.07, 0.0)
    record = lambda rec, b: ops.loss_grad(rec, IDS.index(name), 1.0, rows, k, b["y"], b["t"], b["loss"], b["g"], fold=f)

    def reference(a):
        values, g = ref.sample_losses(name, a["y"].astype(np.float64), a["t"].astype(np.float64))
        return {"loss": values, "g": g * df}

    parity(kernel_run(gpu, record, {"loss": (rows,), "g": (rows, k)}), reference,
           {"y": y, "t": _targets(rng, name, rows, k, 1.0)}, rng=rng, what=f"{name} folding {act}")


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


UPDATE_RULES = {
    "vanilla": {"name": "vanilla", "weight_decay": 0.01},
    "momentum": {"name": "momentum", "mu": 0.9, "weight_decay": 0.01},
    "nesterov": {"name": "nesterov", "mu": 0.8, "weight_decay": 0.02},
    "adam": {"name": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
    "adamw": {"name": "adamw", "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1},
}


@pytest.mark.parametrize("step", [0, 6])
@pytest.mark.parametrize("rule", list(UPDATE_RULES))
def test_update_every_tensor_in_one_dispatch(gpu, rng, rule, step):
    """Three tensors of a flat buffer (gaps between them untouched), each with its own
    lr_mult and wd_mult; Adam's bias corrections for t = step + 1."""
    from neuroflow.gpu import ops
    from neuroflow.gpu.spec import SLOTS

    r = UPDATE_RULES[rule]
    hyper = {"mu": r.get("mu", 0.0), "beta1": r.get("beta1", 0.9), "beta2": r.get("beta2", 0.999),
             "eps": r.get("eps", 1e-8), "weight_decay": r["weight_decay"]}
    lr, t = 0.05, step + 1
    tensors = [(0, 1001, 1.0, 1.0), (1004, 7, 10.0, 0.0), (1012, 300, 0.5, 2.0)]  # offset, size, lr_mult, wd_mult
    total = 1312
    nslots = len(SLOTS[rule])
    seg = np.array([(o, s, np.float32(lm).view(np.uint32), np.float32(wm).view(np.uint32)) for o, s, lm, wm in tensors],
                   dtype=np.uint32)
    rate = np.array([lr, 0, 1 - r.get("beta1", 0.9) ** t, 1 - r.get("beta2", 0.999) ** t], np.float32)
    rate[1:2] = np.array([step], np.uint32).view(np.float32)
    rate_buf = gpu.uniform(rate.tobytes())

    def record(rec, b):
        slots = [b.get("m0", b["spare0"]), b.get("m1", b["spare1"])]
        ops.update(rec, rule, hyper, len(tensors), 1001, rate_buf, b["w"], b["g"], slots[0], slots[1], b["seg"])

    def reference(a):
        w = a["w"].astype(np.float64).copy()
        ms = [a[f"m{j}"].astype(np.float64).copy() for j in range(nslots)]
        for o, s, lm, wm in tensors:
            sl = slice(o, o + s)
            w2, new = ref.apply_update(r, w[sl], a["g"][sl], [m[sl] for m in ms], lr * lm, r["weight_decay"] * wm, t)
            w[sl] = w2
            for m, n in zip(ms, new):
                m[sl] = n
        return {"w": w, **{f"m{j}": ms[j] for j in range(nslots)}}

    inputs = {"w": (total,), "g": (total,), "seg": seg, "spare0": (4,), "spare1": (4,)}
    for j in range(nslots):
        inputs[f"m{j}"] = np.abs(random(rng, total)) * 1e-2 if SLOTS[rule][j] == "v" else random(rng, total) * 0.1
    parity(kernel_run(gpu, record, {}, inout=("w",) + tuple(f"m{j}" for j in range(nslots))), reference, inputs,
           rng=rng, what=f"{rule} step {step}")


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


# ---------------------------------------------------------------- residual join


@pytest.mark.parametrize("name", ["linear", "relu", "gelu", "tanh"])
def test_residual_join(gpu, rng, name):
    """forward a = f(x + u + bias); backward g = d ⊙ f′(x + u + bias); add dx += g."""
    from neuroflow.gpu.kernels import kernel
    from neuroflow.gpu.ops import add, groups

    count, alpha, bias = 1237, 0.0, 0.1
    f = _activator(name, alpha, bias)

    def record(rec, b):
        p = rec.params(count, f.id, alpha, bias)
        rec.dispatch(kernel(gpu, "residual", "forward"), (p, b["x"], b["u"], b["a"]), groups(rec, count))
        rec.dispatch(kernel(gpu, "residual", "backward"), (p, b["x"], b["u"], b["d"], b["g"]), groups(rec, count))
        add(rec, count, b["g"], b["dx"])

    def reference(a):
        s = a["x"].astype(np.float64) + a["u"] + bias
        g = a["d"] * ref.act_df(name, s)
        return {"a": ref.act_f(name, s), "g": g, "dx": a["dx"] + g}

    parity(kernel_run(gpu, record, {"a": (count,), "g": (count,)}, inout=("dx",)), reference,
           {"x": (count,), "u": (count,), "d": (count,), "dx": (count,)}, rng=rng, what=f"residual {name}")


# ---------------------------------------------------------------- layer kinds


def layer_run(gpu, d: dict, n: int, *, train=True, backward=True, update_state=False, scale=1.0,
              accumulate=False, base=0, seed=0, step=0, fold_prev=None, d_folded=False):
    """A gpu_run recording one layer (resolved spec `d`) exactly as the engine does: its
    forward on n samples of input "x", then (backward) its backward from "dy" = ∂L/∂output.
    Inputs "p<i>" / "st<i>" are its params / state, "g<i>" the gradients it adds to
    (accumulate). Returns "y" (output), "dx", "g<i>" and, when it moves them, "st<i>".
    Conv and dense only: `fold_prev` (an Activator) is the f′ of the layer before, which the
    input gradient folds in from "x" (that layer's output); `d_folded`: "dy" is ∂L/∂s
    already (the layer after folded this layer's f′ in)."""
    from neuroflow.gpu import ops
    from neuroflow.gpu.kernels import Cache
    from neuroflow.gpu.layers import Ctx, build_chain
    from neuroflow.gpu.spec import ALIGN

    def flat(tensors, arrays, fill=0.0):
        end = max([t.offset + t.size for t in tensors] + [ALIGN])
        v = np.full(end, fill, np.float32)
        for t, a in zip(tensors, arrays):
            v[t.offset : t.offset + t.size] = np.asarray(a, np.float32).reshape(-1)
        return v

    def storage(a):
        buf = gpu.storage(a.nbytes)
        gpu.write(buf, a)
        return buf

    def poisoned(floats):
        buf = gpu.storage(4 * floats)
        gpu.fill(buf, POISON)
        return buf

    def run(arrays):
        walk: list = []
        (layer,) = build_chain([d], tuple(d["dim_in"]), walk, "", "test")
        if fold_prev is not None:
            layer.fold_prev = fold_prev
        if d_folded:
            layer.d_folded = True
        off = 0
        for t in layer.params:
            t.offset, off = off, off + -(-t.size // ALIGN) * ALIGN + ALIGN  # gaps between tensors
        off = 0
        for t in layer.state:
            t.offset, off = off, off + -(-t.size // ALIGN) * ALIGN
        np_ = len(layer.params)
        P = storage(flat(layer.params, [arrays[f"p{i}"] for i in range(np_)]))
        S = storage(flat(layer.state, [arrays[f"st{i}"] for i in range(len(layer.state))]))
        if accumulate:
            G = storage(flat(layer.params, [arrays[f"g{i}"] for i in range(np_)], POISON))
        else:
            G = poisoned(flat(layer.params, []).size)
        ws = {}
        for key, size in layer.buffers().items():
            ws[f"{key}{layer.uid}"] = poisoned(size * n)
        for key, size in layer.fixed().items():
            ws[f"{key}{layer.uid}"] = poisoned(size)
        x = storage(np.ascontiguousarray(arrays["x"], np.float32))
        dx = poisoned(n * layer.in_size)
        rate = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
        rate[1:2] = np.array([step], np.uint32).view(np.float32)
        rec = ops.Recorder(gpu, Cache(gpu))
        ctx = Ctx(rec=rec, ws=ws, params=P, grads=G, state=S, rate=gpu.uniform(rate.tobytes()), seed=seed, rows=n,
                  base=base, train=train, update_state=update_state, scale=scale, accumulate=accumulate)
        y = layer.forward(ctx, x)
        ctx.outputs[layer.uid] = y
        if backward:
            layer.backward(ctx, x, storage(np.ascontiguousarray(arrays["dy"], np.float32)), dx)
        rec.submit()
        out = {"y": gpu.read(y, n * layer.out_size).reshape(n, *layer.dim_out)}
        if backward:
            out["dx"] = gpu.read(dx, n * layer.in_size).reshape(n, *layer.dim_in)
            g = gpu.read(G, flat(layer.params, []).size)
            for i, t in enumerate(layer.params):
                out[f"g{i}"] = g[t.offset : t.offset + t.size].reshape(t.shape)
        if update_state:
            s = gpu.read(S, flat(layer.state, []).size)
            for i, t in enumerate(layer.state):
                out[f"st{i}"] = s[t.offset : t.offset + t.size].reshape(t.shape)
        return out

    return run


def _param_inputs(d: dict, rng) -> dict:
    out = {}
    for i, p in enumerate(d["params"]):
        shape = tuple(p["shape"])
        if p["name"] == "weight":
            out[f"p{i}"] = random(rng, shape) / np.float32(math.sqrt(math.prod(shape[:-1])))
        elif p["name"] == "scale":
            out[f"p{i}"] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            out[f"p{i}"] = random(rng, shape, 0.05, 0.5)
    return out


CONVS = [
    # (input, conv layer, n, the activator of the layer before, whose f′ the input gradient
    # folds in): several filters, bias, strides (phases, some without taps), padding, 1×1
    ((7, 5, 3), ref.conv("c", 4, padding=1, bias=True, activator=ref.act("tanh", bias=0.1)), 3, None),
    ((8, 9, 2), ref.conv("c", 5, field=(4, 3), stride=(2, 1), padding=(1, 0), activator=ref.act("leaky_relu", 0.1)), 3,
     "relu"),
    ((5, 6, 4), ref.conv("c", 3, field=1, bias=True, activator=ref.act("gelu")), 2, "sigmoid"),
    ((6, 7, 3), ref.conv("c", 1, field=5, stride=(1, 2), padding=2, bias=True, activator=ref.act("square")), 4, None),
    # linear: no f′ pass; without any bias no epilogue either (the output is s)
    ((5, 5, 3), ref.conv("c", 4, padding=1), 3, "tanh"),
    ((5, 5, 3), ref.conv("c", 4, padding=1, bias=True), 2, None),
    ((4, 5, 2), ref.conv("c", 3, field=1, activator=ref.act("linear", bias=0.2)), 2, "leaky_relu"),
    # channels and filters multiples of 4: vec4 gathers, vec4 stores; 4 phases
    ((10, 10, 8), ref.conv("c", 8, field=4, stride=2, padding=1, activator=ref.act("relu")), 2, "relu"),
    ((6, 6, 8), ref.conv("c", 8, padding=1, bias=True, activator=ref.act("softplus")), 2, "tanh"),
    # 1×1 stride 2: three of the four phases have no taps (their input gradient is 0)
    ((5, 5, 4), ref.conv("c", 4, field=1, stride=2, activator=ref.act("sigmoid")), 2, None),
]


@pytest.mark.parametrize("accumulate", [False, True], ids=["fresh", "accumulate"])
@pytest.mark.parametrize("case", CONVS, ids=lambda c: str(c[0]) + str(c[1]["field"]) + str(c[1]["stride"]))
def test_conv_layer(gpu, rng, case, accumulate):
    """Implicit GEMM with bias and activator in its epilogue; backward: f′ (from s or from
    the output), the bias gradient as a column sum, the weight gradient (scaled, accumulated),
    the input gradient by phases with the f′ of the layer before folded in."""
    shape, layer, n, fold = case
    d = ref.layer_spec(shape, layer)
    fx, fy = d["field"]
    (px, py), (sx, sy) = d["padding"], d["stride"]
    a0 = d["activator"]
    bias = d["bias"]
    scale = 0.5
    x_in, fold_df = _fold_input(rng, fold, (n, *shape)) if fold else (random(rng, (n, *shape)), 1.0)

    def reference(a):
        x, w = a["x"].astype(np.float64), a["p0"].astype(np.float64)
        col = ref.im2col(x, px, py, fx, fy, sx, sy)
        s = col @ w.reshape(-1, w.shape[-1]) + (a["p1"] if bias else 0.0) + a0["bias"]
        ds = a["dy"].reshape(s.shape) * ref.act_df(a0["name"], s, a0["alpha"])
        out = {"y": ref.act_f(a0["name"], s, a0["alpha"]).reshape(n, *d["dim_out"]),
               "g0": scale * (col.T @ ds).reshape(w.shape) + (a["g0"] if accumulate else 0.0),
               "dx": ref.col2im(ds @ w.reshape(-1, w.shape[-1]).T, x.shape, px, py, fx, fy, sx, sy) * fold_df}
        if bias:
            out["g1"] = scale * ds.sum(axis=0) + (a["g1"] if accumulate else 0.0)
        return out

    inputs = {"x": x_in, "dy": (n, *d["dim_out"]), **_param_inputs(d, rng)}
    if accumulate:
        inputs.update({f"g{i}": tuple(p["shape"]) for i, p in enumerate(d["params"])})
    parity(layer_run(gpu, d, n, scale=scale, accumulate=accumulate, fold_prev=fold and _activator(fold, 0.07, 0.0)),
           reference, inputs, rng=rng, what=f"conv {shape}")


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "leaky_relu"])
def test_layer_whose_delta_arrives_folded(gpu, rng, name):
    """When the layer after folds this layer's f′ in, dy is ∂L/∂s: no f′ pass, no s kept."""
    shape, n = (6, 5, 4), 2
    d = ref.layer_spec(shape, ref.conv("c", 4, padding=1, bias=True, activator=ref.act(name, 0.1)))

    def reference(a):
        x, w = a["x"].astype(np.float64), a["p0"].astype(np.float64)
        col = ref.im2col(x, 1, 1, 3, 3, 1, 1)
        s = col @ w.reshape(-1, 4) + a["p1"]
        ds = a["dy"].reshape(s.shape).astype(np.float64)
        return {"y": ref.act_f(name, s, 0.1).reshape(n, *d["dim_out"]), "g0": (col.T @ ds).reshape(w.shape),
                "g1": ds.sum(axis=0), "dx": ref.col2im(ds @ w.reshape(-1, 4).T, x.shape, 1, 1, 3, 3, 1, 1)}

    parity(layer_run(gpu, d, n, d_folded=True), reference, {"x": (n, *shape), "dy": (n, *d["dim_out"]),
                                                            **_param_inputs(d, rng)}, rng=rng, what=f"folded {name}")


@pytest.mark.parametrize("f,fold", [("sigmoid", None), ("linear", None), ("gelu", "relu"), ("relu", "tanh")])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(13,), (3, 4, 2)], ids=str)
def test_dense_layer(gpu, rng, shape, bias, f, fold):
    n = 5
    d = ref.layer_spec(shape, ref.dense("d", 7, bias=bias, activator=ref.act(f)))
    x_in, fold_df = _fold_input(rng, fold, (n, *shape)) if fold else (random(rng, (n, *shape)), 1.0)

    def reference(a):
        x, w = a["x"].reshape(n, -1).astype(np.float64), a["p0"].astype(np.float64)
        s = x @ w + (a["p1"] if bias else 0.0)
        ds = a["dy"] * ref.act_df(f, s)
        out = {"y": ref.act_f(f, s), "g0": x.T @ ds, "dx": (ds @ w.T).reshape(n, *shape) * fold_df}
        if bias:
            out["g1"] = ds.sum(axis=0)
        return out

    parity(layer_run(gpu, d, n, fold_prev=fold and _activator(fold, 0.07, 0.0)), reference,
           {"x": x_in, "dy": (n, 7), **_param_inputs(d, rng)}, rng=rng, what=f"dense {shape}")


BNS = [
    ((4, 5, 3), ref.bn("b", activator=ref.act("relu")), 3),
    ((4, 5, 3), ref.bn("b", scale=False, activator=ref.act("tanh", bias=0.1), momentum=0.3, eps=1e-3), 2),
    ((5, 3, 2), ref.bn("b", shift=False, activator=ref.act("gelu")), 4),
    ((5, 3, 2), ref.bn("b", scale=False, shift=False, activator=ref.act("softplus")), 2),
    ((9,), ref.bn("b", activator=ref.act("sigmoid"), momentum=0.5), 6),  # flat: P = 1
    ((6,), ref.bn("b"), 1),  # one value per channel: σ² = 0, the running variance takes σ² itself
    ((3, 3, 300), ref.bn("b", activator=ref.act("linear")), 2),  # many channels
    # enough rows for several ranges per channel, merged (the last range shorter)
    ((8, 8, 3), ref.bn("b", activator=ref.act("relu"), momentum=0.2), 6),
    ((13, 11, 5), ref.bn("b", shift=False, activator=ref.act("tanh")), 3),
]


def _bn_inputs(d, rng, n, shape):
    c = d["dim_in"][-1]
    return {"x": random(rng, (n, *shape)) * 3 + np.float32(0.5), "dy": (n, *shape), **_param_inputs(d, rng),
            "st0": random(rng, (c,), 0.05, 0.5), "st1": rng.uniform(0.5, 2.0, c).astype(np.float32)}


def _bn_params(d, a):
    names = [p["name"] for p in d["params"]]
    return [a[f"p{names.index(k)}"].astype(np.float64) for k in ("scale", "shift") if k in names]


@pytest.mark.parametrize("case", BNS, ids=lambda c: str(c[0]) + str(c[2]) + str(c[1]["scale"]) + str(c[1]["shift"]))
def test_batchnorm_train(gpu, rng, case):
    """Batch statistics (per-channel reductions over row ranges, merged), the running
    statistics moved, the activator after normalising; backward: ∂scale, ∂shift (scaled), ∂x."""
    shape, layer, n = case
    d = ref.layer_spec(shape, layer)
    ac = d["activator"]

    def reference(a):
        x, params = a["x"].astype(np.float64), _bn_params(d, a)
        state = [a["st0"].astype(np.float64), a["st1"].astype(np.float64)]
        y, cache = ref.bn_forward(d, x, params, state, True)
        z = y + ac["bias"]
        g = a["dy"] * ref.act_df(ac["name"], z, ac["alpha"])
        dx, grads = ref.bn_backward(d, g, params, cache)
        run_mean, run_var = ref.bn_running(d, state, cache)
        out = {"y": ref.act_f(ac["name"], z, ac["alpha"]), "dx": dx, "st0": run_mean, "st1": run_var}
        out.update({f"g{i}": 0.25 * gi for i, gi in enumerate(grads)})
        return out

    parity(layer_run(gpu, d, n, update_state=True, scale=0.25), reference, _bn_inputs(d, rng, n, shape), rng=rng,
           what=f"batchnorm {shape}")


@pytest.mark.parametrize("case", BNS[:5] + BNS[-1:], ids=lambda c: str(c[0]) + str(c[2]))
def test_batchnorm_eval(gpu, rng, case):
    """Eval mode: the running statistics, untouched."""
    shape, layer, n = case
    d = ref.layer_spec(shape, layer)
    ac = d["activator"]

    def reference(a):
        state = [a["st0"].astype(np.float64), a["st1"].astype(np.float64)]
        y, _ = ref.bn_forward(d, a["x"].astype(np.float64), _bn_params(d, a), state, False)
        return {"y": ref.act_f(ac["name"], y + ac["bias"], ac["alpha"]), "st0": state[0], "st1": state[1]}

    inputs = _bn_inputs(d, rng, n, shape)
    del inputs["dy"]
    parity(layer_run(gpu, d, n, train=False, backward=False, update_state=True), reference, inputs, rng=rng,
           what=f"batchnorm eval {shape}")


POOLS = [
    ((6, 6, 2), ref.maxpool("m", 2), 3),
    ((7, 5, 3), ref.maxpool("m", 3, stride=2, padding=1), 2),  # overlapping, padding
    ((5, 4, 2), ref.maxpool("m", 3, stride=1, padding=1), 2),
    ((5, 6, 2), ref.maxpool("m", (2, 3), stride=(1, 2), padding=(0, 1)), 3),  # floor, rectangular
    ((6, 4, 2), ref.avgpool("a", 2), 3),
    ((7, 5, 3), ref.avgpool("a", 3, stride=2, padding=1), 2),
    ((4, 5, 2), ref.avgpool("a", 3, stride=1, padding=1), 2),
    ((5, 6, 3), ref.avgpool("a", (3, 2), stride=(2, 3)), 2),  # floor drops the last columns
    ((5, 4, 3), ref.gap("g"), 3),
    ((1, 1, 7), ref.gap("g"), 2),
]


@pytest.mark.parametrize("negative", [False, True], ids=["mixed", "negative"])
@pytest.mark.parametrize("case", POOLS, ids=lambda c: c[1]["kind"] + str(c[0]) + str(c[1].get("field", "")) +
                         str(c[1].get("stride", "")) + str(c[1].get("padding", "")))
def test_pool_layer(gpu, rng, case, negative):
    """Forward and the gather backward; all-negative inputs: padding must not win a max."""
    shape, layer, n = case
    d = ref.layer_spec(shape, layer)

    def reference(a):
        y, cache = ref.pool_forward(d, a["x"].astype(np.float64))
        return {"y": y, "dx": ref.pool_backward(d, a["dy"].astype(np.float64), cache)}

    x = random(rng, (n, *shape))
    parity(layer_run(gpu, d, n), reference, {"x": -np.abs(x) if negative else x, "dy": (n, *d["dim_out"])}, rng=rng,
           what=f"{d['kind']} {shape}")


def test_maxpool_ties_go_to_the_first_in_window_order(gpu, rng):
    """Inputs from two levels only: most windows tie; the gradient goes to the first."""
    shape, n = (5, 5, 2), 3
    d = ref.layer_spec(shape, ref.maxpool("m", 3, stride=1, padding=1))
    x = rng.choice(np.array([1.0, 2.0], np.float32), size=(n, *shape))

    def reference(a):
        y, cache = ref.pool_forward(d, a["x"].astype(np.float64))
        return {"y": y, "dx": ref.pool_backward(d, a["dy"].astype(np.float64), cache)}

    parity(layer_run(gpu, d, n), reference, {"x": x, "dy": (n, *d["dim_out"])}, rng=rng, what="maxpool ties")


@pytest.mark.parametrize("rate,seed,step,base", [(0.5, 0, 0, 0), (0.1, 0x9E3779B97F4A7C15, 7, 3), (0.25, 12345678901, 2**32 + 5, 1),
                                                 (0.9, 1, 1, 0)], ids=str)
def test_dropout_masks_are_the_documented_hash(gpu, rng, rate, seed, step, base):
    """Bit-identical masks: a kept element is exactly x/(1 − rate) rounded once, a dropped
    one exactly 0; the element index counts from the chunk's first sample (`base`)."""
    shape, n = (3, 4, 5), 6
    d = ref.layer_spec(shape, ref.dropout("p", rate))
    uid = 0

    def reference(a):
        keep = ref.keep_mask(seed, step, uid, base + n, math.prod(shape), rate)[base:].reshape(n, *shape)
        factor = np.float32(1.0 / (1.0 - rate))
        return {"y": np.where(keep, a["x"] * factor, 0.0), "dx": np.where(keep, a["dy"] * factor, 0.0)}

    inputs = {"x": random(rng, (n, *shape)), "dy": random(rng, (n, *shape))}
    got = layer_run(gpu, d, n, seed=seed, step=step % 2**32, base=base)(inputs)
    want = reference(inputs)
    for k in ("y", "dx"):  # exact, not within a tolerance
        assert np.array_equal(got[k], want[k].astype(np.float32)), f"dropout {k}: masks differ"
    kept = (want["y"] != 0).mean()
    assert abs(kept - (1 - rate)) < 0.2


def test_dropout_in_eval_mode_is_its_input(gpu, rng):
    d = ref.layer_spec((5,), ref.dropout("p", 0.5))
    parity(layer_run(gpu, d, 4, train=False, backward=False), lambda a: {"y": a["x"]}, {"x": (4, 5)}, rng=rng,
           what="dropout eval")


def test_kernels_loop_past_a_capped_dispatch(gpu, rng, monkeypatch):
    """With the dispatch capped at 2 workgroups per dimension every kernel must loop over
    the rest (the same path that sizes beyond 65,535 workgroups take, at a tenth of the cost)."""
    from neuroflow.gpu import ops

    monkeypatch.setattr(gpu, "max_groups", 2)
    m, n, k = 300, 200, 20  # 5 × 4 blocks of 64
    g = _window(9, 8, 3, 1, 1, 3, 3, 1, 1)
    tanh = _activator("tanh", 0.0, 0.1)

    def record(rec, b):
        ops.gemm(rec, b["a"], b["b"], b["c"], m, n, k)
        ops.im2col(rec, g, 7, b["x"], b["col"])
        ops.col2im(rec, g, 7, b["dcol"], b["dx"])
        for tile in ("32x32", "direct", None):  # implicit GEMM, tiled (blocks looped), registers only, per element
            pin = {"tile": tile} if tile else {"small": True}
            ops.gemm(rec, b["x"], b["w"], b[f"s{tile}"], 7 * 72, 4, 27, conv=ops.Conv(g, 7, 4), **pin)
            ops.gemm(rec, b["x"], b["ds"], b[f"gw{tile}"], 27, 4, 7 * 72, trans_a=True, conv=ops.Conv(g, 7, 4), splits=1, **pin)
            ops.gemm(rec, b["ds"], b["w"], b[f"dx{tile}"], 7 * 72, 3, 27, conv=ops.Conv(g, 7, 4, phased=True), **pin)
        ops.act_forward(rec, tanh, 2000, b["s"], b["act"])
        ops.loss_grad(rec, 2, 1.0, 600, 2, b["y"], b["t"], b["loss"], b["grad"])
        ops.colsum(rec, 600, 2, b["y"], b["cs"], splits=1)

    def reference(a):
        loss, grad = ref.sample_losses("squared_error", a["y"].astype(np.float64), a["t"].astype(np.float64))
        col, w, ds = ref.im2col(a["x"].astype(np.float64), 1, 1, 3, 3, 1, 1), a["w"].astype(np.float64), a["ds"]
        conv = {"s": col @ w, "gw": col.T @ ds, "dx": ref.col2im(ds @ w.T, (7, 9, 8, 3), 1, 1, 3, 3, 1, 1).reshape(-1, 3)}
        return {
            "c": a["a"].astype(np.float64) @ a["b"],
            "col": ref.im2col(a["x"].astype(np.float64), 1, 1, 3, 3, 1, 1),
            "dx": ref.col2im(a["dcol"].astype(np.float64), (7, 9, 8, 3), 1, 1, 3, 3, 1, 1),
            "act": np.tanh(a["s"].astype(np.float64) + 0.1),
            "loss": loss,
            "grad": grad,
            "cs": a["y"].astype(np.float64).sum(axis=0),
            **{f"{k}{tile}": v for tile in ("32x32", "direct", None) for k, v in conv.items()},
        }

    outputs = {"c": (m, n), "col": (7 * 72, 27), "dx": (7, 9, 8, 3), "act": (2000,), "loss": (600,), "grad": (600, 2),
               "cs": (2,), **{f"{k}{t}": v for t in ("32x32", "direct", None) for k, v in
                              {"s": (7 * 72, 4), "gw": (27, 4), "dx": (7 * 72, 3)}.items()}}
    inputs = {"a": (m, k), "b": (k, n), "x": (7, 9, 8, 3), "dcol": (7 * 72, 27), "s": (2000,), "y": (600, 2), "t": (600, 2),
              "w": (27, 4), "ds": (7 * 72, 4)}
    parity(kernel_run(gpu, record, outputs), reference, inputs, rng=rng, what="capped dispatch")


@pytest.mark.parametrize("case", [CONVS[1], ((7, 5, 3), ref.maxpool("m", 3, stride=2, padding=1), 9),
                                  ((6, 4, 2), ref.avgpool("a", 2), 9), ((5, 4, 3), ref.gap("g"), 300),
                                  ((8, 8, 3), ref.bn("b", activator=ref.act("relu")), 6)],
                         ids=lambda c: c[1]["kind"])
def test_layer_kernels_loop_past_a_capped_dispatch(gpu, rng, monkeypatch, case):
    """Every layer kind's kernels with 2 workgroups per dimension at most."""
    monkeypatch.setattr(gpu, "max_groups", 2)
    kind = case[1]["kind"]
    if kind == "conv":
        test_conv_layer(gpu, rng, case, False)
    elif kind == "batchnorm":
        test_batchnorm_train(gpu, rng, case)
    else:
        test_pool_layer(gpu, rng, case, False)


# ---------------------------------------------------------------- the gemm plan


def test_gemm_plan_is_deterministic_and_pinnable(gpu, monkeypatch, tmp_path):
    """The choice among the kernels is a pure function of the shape and the device's fill
    (no timing on a software device); NEUROFLOW_GPU_GEMM pins a kernel everywhere and a
    tuning file (what the device check writes) pins it per shape."""
    import json

    from neuroflow.gpu import ops
    from neuroflow.gpu.device import Gpu

    sim = Gpu.__new__(Gpu)
    sim.configure({"name": "sim", "adapter_type": "DiscreteGPU"},
                  {"max-storage-buffer-binding-size": 2**31, "max-buffer-size": 2**32,
                   "max-compute-workgroups-per-dimension": 65535, "max-compute-workgroup-storage-size": 49152,
                   "max-compute-invocations-per-workgroup": 1024})
    monkeypatch.delenv("NEUROFLOW_GPU_GEMM", raising=False)
    monkeypatch.delenv("NEUROFLOW_GPU_TUNING", raising=False)
    # a big square product: the largest tile, no split (its grid fills the device)
    assert ops.plan(sim, 4096, 4096, 4096) == ("128x128", 1)
    # a forward convolution: many rows, 32 filters: a narrow tile, never split
    name, splits = ops.plan(sim, 128 * 1024, 32, 288)
    assert splits == 1 and ops.TILES[name].bn <= 64
    # a weight gradient: few outputs over a long K: split, within the limits
    name, splits = ops.plan(sim, 288, 32, 131072)
    assert 1 < splits <= ops.MAX_SPLITS
    assert ops.plan(sim, 288, 32, 131072, can_split=False)[1] == 1
    # one filter: the per-element kernel
    assert ops.plan(sim, 20 * 400 * 400, 1, 27)[0] == ops.SMALL
    assert ops.plan(sim, 4096, 4096, 4096) == ops.plan(sim, 4096, 4096, 4096)
    monkeypatch.setenv("NEUROFLOW_GPU_GEMM", "64x32/3")
    assert ops.plan(sim, 4096, 4096, 4096) == ("64x32", 3)
    monkeypatch.delenv("NEUROFLOW_GPU_GEMM")
    key = ops.shape_key("NN", 4096, 4096, 4096)
    f = tmp_path / "tuning.json"
    f.write_text(json.dumps({"sim": {key: "32x64"}}))
    monkeypatch.setenv("NEUROFLOW_GPU_TUNING", str(f))
    assert ops.plan(sim, 4096, 4096, 4096, key=key) == ("32x64", 1)
    assert ops.plan(sim, 4096, 4096, 4096, key="NN:1x1x1") == ("128x128", 1)
    monkeypatch.setenv("NEUROFLOW_GPU_GEMM", "huge")
    with pytest.raises(ValueError, match="unknown gemm kernel 'huge'"):
        ops.plan(sim, 64, 64, 64)

"""GpuEngine against a reference engine, method by method, through the one parity helper.

The reference is the Rust CPU engine (`neuroflow._core.Engine`) when it is built, and
always the NumPy engine of tests/gpu_reference.py. Nets: a scaled-down version of the
article's glasses net, a multi-filter net (1×1 and strided convolutions, mean reduction,
nesterov) and dense-only nets; batches split into chunks that do not divide them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpu_parity import engine_reference, engine_run, parity, random, require_gpu
from gpu_reference import NumpyEngine


def act(name, alpha=0.0, bias=0.0):
    return {"name": name, "alpha": alpha, "bias": bias}


def conv(dim_in, field, filters, activator, padding=(0, 0), stride=(1, 1)):
    return {"kind": "conv", "dim_in": list(dim_in), "padding": list(padding), "field": list(field),
            "stride": list(stride), "filters": filters, "activator": activator}


def dense(d, o, activator):
    return {"kind": "dense", "dim_in": d, "neurons": o, "activator": activator}


def spec(layers, loss, update, reduction="sum", n=1):
    return json.dumps({"dtype": "f32", "layers": layers, "loss": {"name": loss, "n": n},
                       "update": update, "reduction": reduction})


NETS = {
    # The article's glasses net, scaled down: 24×24×3 → 3×3 p1 (1 filter) → 4×4 s2 p1 → dense 2.
    "glasses": spec(
        [conv((24, 24, 3), (3, 3), 1, act("relu"), padding=(1, 1)),
         conv((24, 24, 1), (4, 4), 1, act("leaky_relu", 0.1, 0.05), padding=(1, 1), stride=(2, 2)),
         dense(144, 2, act("linear"))],
        "softmax_log_entropy", {"name": "momentum", "mu": 0.9}),
    # Several filters, a 1×1 convolution, a strided one with asymmetric geometry.
    "multi_filter": spec(
        [conv((9, 7, 3), (3, 3), 4, act("leaky_relu", 0.1, 0.1), padding=(1, 1)),
         conv((9, 7, 4), (1, 1), 3, act("tanh", bias=-0.1)),
         conv((9, 7, 3), (3, 3), 5, act("sigmoid"), padding=(1, 1), stride=(2, 2)),
         dense(100, 6, act("softplus")),
         dense(6, 3, act("linear"))],
        "squared_error", {"name": "nesterov", "mu": 0.8}, reduction="mean"),
    "dense_cubic": spec(
        [dense(13, 7, act("square", bias=0.2)), dense(7, 4, act("sigmoid", bias=-0.3))],
        "abs_cubic_error", {"name": "vanilla"}),
    "dense_mult": spec(
        [dense(11, 9, act("relu", bias=0.1)), dense(9, 5, act("tanh"))],
        "softmax_log_mult_entropy", {"name": "momentum", "mu": 0.5}, n=2),
    # Smooth and small, for finite differences.
    "tiny_conv": spec(
        [conv((5, 4, 2), (3, 3), 2, act("tanh"), padding=(1, 1)), dense(40, 2, act("sigmoid"))],
        "squared_error", {"name": "momentum", "mu": 0.9}),
}


def _cpu_engine_class():
    try:
        from neuroflow._core import Engine
    except ImportError as e:
        pytest.skip(f"the CPU engine neuroflow._core is not built yet ({e}); compared with NumPy only")
    return Engine


@pytest.fixture(scope="module")
def gpu():
    return require_gpu()


@pytest.fixture(params=["numpy", "cpu"])
def reference_kind(request):
    if request.param == "cpu":
        _cpu_engine_class()
    return request.param


def make(name, reference_kind, rng, max_chunk=None):
    """A GPU engine and a reference engine holding the same random non-zero weights."""
    from neuroflow.gpu import GpuEngine

    s = NETS[name]
    ref = NumpyEngine(s) if reference_kind == "numpy" else _cpu_engine_class()(s)
    eng = GpuEngine(s, max_chunk=max_chunk)
    ws = [random(rng, tuple(w.shape)) / np.float32(np.sqrt(np.prod(w.shape[:-1]))) for w in ref.get_weights()]
    eng.set_weights(ws)
    ref.set_weights([w.astype(np.float32 if reference_kind == "cpu" else np.float64) for w in ws])
    return eng, ref


def batch(name, n, rng, uint8=False):
    """Inputs and targets of n samples; targets are probability rows for softmax losses."""
    first, last = json.loads(NETS[name])["layers"][0], json.loads(NETS[name])["layers"][-1]
    shape = (n, *first["dim_in"]) if first["kind"] == "conv" else (n, first["dim_in"])
    x = rng.integers(1, 256, shape, dtype=np.uint8) if uint8 else random(rng, shape)
    k = last["neurons"] if last["kind"] == "dense" else None
    loss = json.loads(NETS[name])["loss"]
    if loss["name"].startswith("softmax"):
        t = rng.uniform(0.1, 1.0, (n, k))
        t = (t * loss["n"] / t.sum(axis=1, keepdims=True)).astype(np.float32)
    else:
        t = random(rng, (n, k))
    return x, t


def check(eng, ref, method, inputs, *names, extra=(), what=""):
    """Parity of one engine method called with the named (already drawn) inputs."""
    return parity(engine_run(eng, method, *names, extra=extra), engine_reference(ref, method, *names, extra=extra),
                  inputs, what=what or method)


# (net, batch size, chunk cap): chunk caps that split the batch unevenly, and none
CASES = [("glasses", 5, None), ("glasses", 7, 3), ("multi_filter", 6, None), ("multi_filter", 5, 2),
         ("dense_cubic", 9, 4), ("dense_mult", 4, None)]


@pytest.mark.parametrize("name,n,chunk", CASES, ids=lambda v: str(v))
def test_forward_predict_focus_loss_gradients(gpu, rng, reference_kind, name, n, chunk):
    eng, ref = make(name, reference_kind, rng, chunk)
    x, t = batch(name, n, rng)
    inputs = {"x": x, "t": t}
    check(eng, ref, "forward", inputs, "x")
    check(eng, ref, "predict", inputs, "x")
    for layer in range(len(json.loads(NETS[name])["layers"])):
        check(eng, ref, "focus", inputs, "x", extra=(layer,), what=f"focus({layer})")
    check(eng, ref, "loss", inputs, "x", "t")
    check(eng, ref, "gradients", inputs, "x", "t")


@pytest.mark.parametrize("name,n,chunk", CASES, ids=lambda v: str(v))
def test_train_steps(gpu, rng, reference_kind, name, n, chunk):
    """Several steps with a learning rate that changes every step; weights and optimizer
    state compared at the end (read back from the GPU, never stale)."""
    eng, ref = make(name, reference_kind, rng, chunk)
    for step, lr in enumerate([0.05, 0.02, 0.04, 0.01]):
        x, t = batch(name, n, rng)
        check(eng, ref, "train_step", {"x": x, "t": t}, "x", "t", extra=(lr,), what=f"train_step {step}")
    check(eng, ref, "get_weights", {}, what="weights after training")
    check(eng, ref, "get_state", {}, what="state after training")


def test_uint8_input_is_scaled(gpu, rng, reference_kind):
    eng, ref = make("glasses", reference_kind, rng)
    x, t = batch("glasses", 3, rng, uint8=True)
    check(eng, ref, "forward", {"x": x}, "x", what="forward on uint8")
    check(eng, ref, "gradients", {"x": x, "t": t}, "x", "t", what="gradients on uint8")


def test_batch_sizes_change_between_calls(gpu, rng):
    """Workspaces and whole-batch buffers grow with the batch, recorded programs are replayed
    or dropped with them: results do not depend on the history of batch sizes."""
    eng, ref = make("multi_filter", "numpy", rng, max_chunk=4)
    for n in (2, 9, 1, 13, 9, 4):
        x, t = batch("multi_filter", n, rng)
        check(eng, ref, "gradients", {"x": x, "t": t}, "x", "t", what=f"gradients n={n}")
        check(eng, ref, "predict", {"x": x}, "x", what=f"predict n={n}")
        check(eng, ref, "train_step", {"x": x, "t": t}, "x", "t", extra=(0.03,), what=f"train_step n={n}")


def test_contract_details(gpu, rng):
    from neuroflow.gpu import GpuEngine

    eng, _ = make("glasses", "numpy", rng)
    assert eng.num_weights() == 3 * 3 * 3 + 4 * 4 + 144 * 2
    assert [w.shape for w in eng.get_weights()] == [(3, 3, 3, 1), (4, 4, 1, 1), (144, 2)]
    assert all(w.dtype == np.float32 for w in eng.get_weights() + eng.get_state())
    assert GpuEngine(NETS["dense_cubic"]).get_state() == []
    fresh = GpuEngine(NETS["glasses"])
    assert all((w == 0).all() for w in fresh.get_weights() + fresh.get_state())
    x, t = batch("glasses", 2, rng)
    assert eng.focus(x, 1).shape == (2, 12, 12, 1)
    with pytest.raises(ValueError, match="f32 only"):
        GpuEngine(NETS["glasses"].replace('"f32"', '"f64"'))
    with pytest.raises(ValueError, match="stride"):
        GpuEngine(spec([conv((5, 5, 1), (2, 2), 1, act("relu"), stride=(2, 2))], "squared_error", {"name": "vanilla"}))
    with pytest.raises(ValueError, match="targets"):
        eng.loss(x, t[:1])
    with pytest.raises(ValueError, match="x:"):
        eng.forward(x[:, :5])
    with pytest.raises(TypeError, match="x:"):
        eng.forward(x.astype(np.float64))
    with pytest.raises(ValueError, match="layer"):
        eng.focus(x, 3)
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        eng.set_weights([np.zeros((3, 3, 3, 1), np.float32), np.zeros((4, 4, 1, 2), np.float32), np.zeros((144, 2), np.float32)])
    with pytest.raises(ValueError, match="learning_rate"):
        eng.train_step(x, t, float("nan"))


@pytest.mark.parametrize("name,chunk", [("dense_cubic", None), ("tiny_conv", 2)], ids=str)
def test_finite_difference_gradients(gpu, rng, name, chunk):
    """NeuroFlow's Approximation (what Network calls with settings.approximation): central
    differences agree with backprop to the accuracy f32 differences allow."""
    eng, ref = make(name, "numpy", rng, chunk)
    x, t = batch(name, 3, rng)
    parity(engine_run(eng, "fd_gradients", "x", "t", extra=(1e-2,)), engine_reference(ref, "gradients", "x", "t"),
           {"x": x, "t": t}, rtol=2e-2, what="fd_gradients vs backprop")
    before = eng.get_weights()
    # A training step on finite differences: the loss before the update is exact, the
    # weights after it carry the differences' small error.
    parity(engine_run(eng, "train_step", "x", "t", extra=(0.1, 1e-2)), engine_reference(ref, "train_step", "x", "t", extra=(0.1,)),
           {"x": x, "t": t}, what="train_step on finite differences")
    parity(engine_run(eng, "get_weights"), engine_reference(ref, "get_weights"), {}, rtol=1e-3, what="weights after an fd step")
    assert not all(np.array_equal(a, b) for a, b in zip(before, eng.get_weights()))

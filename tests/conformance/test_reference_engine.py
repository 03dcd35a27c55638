"""Hand-worked checks of the reference engine where finite differences cannot speak (the
max-pool tie rule, running statistics, update rules, the f32 spec) or where a known value
is the clearest statement of the doc (activators, label smoothing, padding counts)."""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from cases import CASES, act, avgpool, bn, dense, hand_resolve, loss, maxpool, update
from checks import Run
from neuroflow.engines.protocol import Engine
from neuroflow.engines.reference import ReferenceEngine
from neuroflow.engines.reference import maxpool as mp
from neuroflow.engines.reference.activators import activate
from registry import ENGINES


def engine(input_, layers, lossd=None, upd=None, reduction="sum", dtype="f64", seed=0) -> ReferenceEngine:
    spec = {"version": 2, "dtype": dtype, "input": list(input_), "layers": layers, "loss": lossd or loss("squared_error"),
            "update": upd or update(), "reduction": reduction, "seed": seed}
    return ReferenceEngine(json.dumps(hand_resolve(spec)))


def test_protocol():
    assert isinstance(Run(ENGINES["reference"], CASES["residual_nested"]).engine, Engine)


def test_maxpool_ties_go_to_the_first_tap_and_padding_never_wins():
    layer = SimpleNamespace(cfg={"name": "m", "field": (2, 2), "stride": (1, 1), "padding": (1, 1), "dim_out": (3, 3, 1)})
    # every value negative (padding at 0 would win), and ties inside windows
    x = -np.array([[1.0, 1.0], [2.0, 1.0]]).reshape(1, 2, 2, 1)
    y, cache = mp.forward(layer, x, [], [], None)
    assert y[0, :, :, 0].tolist() == [[-1, -1, -1], [-1, -1, -1], [-2, -1, -1]]
    # window (ox, oy) covers padded rows ox..ox+1, columns oy..oy+1, i.e. input rows ox-1..ox;
    # window (1, 1) holds all four elements: -1 at (0,0), (0,1), (1,1): the first in kx-outer order is (0,0)
    dx, grads = mp.backward(layer, np.ones((1, 3, 3, 1)), [], cache, None)
    assert grads == []
    # routed: (0,0) from windows (0,0), (0,1), (1,0), (1,1); (0,1) from (0,2), (1,2); (1,1) from (2,1), (2,2); (1,0) from (2,0)
    assert dx[0, :, :, 0].tolist() == [[4, 2], [1, 2]]


def test_pooling_and_global_average_by_hand():
    x = np.arange(1.0, 10.0).reshape(1, 3, 3, 1)
    e = engine((3, 3, 1), [avgpool("a0", 2, stride=2, padding=1), {"kind": "global_avg_pool", "name": "g1"}])
    # windows of the zero-padded 5x5: sums 1, 2+3, 4+7, 5+6+8+9, each divided by 4 (padding counts)
    np.testing.assert_allclose(e.forward(x, 0)[0, :, :, 0], np.array([[1, 5], [11, 28]]) / 4)
    np.testing.assert_allclose(e.forward(x, 1), [[45 / 16]])
    e = engine((3, 3, 1), [maxpool("m0", 3, stride=2, padding=1)])
    np.testing.assert_allclose(e.forward(x)[0, :, :, 0], [[5, 6], [8, 9]])


def test_activators_known_values():
    x = np.array([-1000.0, -2.0, -0.5, 0.5, 2.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # stable both ways: no overflow anywhere
        for name in ("sigmoid", "softplus", "tanh", "gelu"):
            activate(act(name), x)
    y, d = activate(act("gelu"), np.array([1.0]))
    assert y[0] == pytest.approx(0.8413447460685429) and d[0] == pytest.approx(0.8413447460685429 + 0.24197072451914337)
    y, d = activate(act("softplus", bias=0.5), np.array([-0.5, 1000.0]))
    assert y.tolist() == pytest.approx([math.log(2), 1000.5]) and d.tolist() == pytest.approx([0.5, 1.0])
    y, d = activate(act("leaky_relu", 0.1, 0.0), np.array([-2.0, 3.0]))
    assert y.tolist() == pytest.approx([-0.2, 3.0]) and d.tolist() == pytest.approx([0.1, 1.0])
    y, d = activate(act("relu"), np.array([0.0]))
    assert y[0] == 0 and d[0] == 0  # f′ is x > 0


def test_label_smoothing_and_mult_entropy_by_hand():
    y = np.array([[1.0, 2.0, 0.5, -1.0]])
    lp = y - np.log(np.exp(y).sum())
    for name, n, eps, t in [("softmax_log_entropy", 1, 0.1, [0, 1, 0, 0]), ("softmax_log_mult_entropy", 2, 0.2, [1, 1, 0, 0])]:
        e = engine((4,), [dense("d0", 4)], loss(name, n, eps))
        e.set_params([np.eye(4)])
        tt = (1 - eps) * np.array(t, float) + eps * n / 4
        assert e.loss(y, np.array([t], float)) == pytest.approx(-(tt * lp).sum(), rel=1e-14)
        np.testing.assert_allclose(e.gradients(y, np.array([t], float))[0], y.T @ (n * np.exp(lp) - tt), rtol=1e-13)
        np.testing.assert_allclose(e.predict(y), np.exp(lp), rtol=1e-14)


def test_batchnorm_running_statistics():
    """PyTorch's convention: running ← (1 − m)·running + m·batch, variance unbiased by M/(M − 1)."""
    e = engine((2, 3, 2), [bn("b0", momentum=0.25)], reduction="mean")
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 1.0, (2, 2, 3, 2))
    e.set_params([np.full(2, 1.5), np.full(2, 0.2)])
    e.set_state([np.array([0.3, -0.2]), np.array([2.0, 0.5])])
    e.train_step(x, rng.uniform(0.1, 1.0, (2, 12)), 0.0)
    flat = x.reshape(-1, 2)
    m, v = e.get_state()
    np.testing.assert_allclose(m, 0.75 * np.array([0.3, -0.2]) + 0.25 * flat.mean(0), rtol=1e-14)
    np.testing.assert_allclose(v, 0.75 * np.array([2.0, 0.5]) + 0.25 * flat.var(0, ddof=1), rtol=1e-14)
    # M = 1 (one flat sample): σ² = 0 itself, x̂ = 0, output = shift
    e = engine((3,), [bn("b0", momentum=0.5)])
    e.set_params([np.full(3, 2.0), np.array([0.1, 0.2, 0.3])])
    x1, t1 = np.array([[0.4, -0.7, 0.9]]), np.array([[0.5, 0.5, 0.5]])
    np.testing.assert_allclose(e.forward(x1, mode="train"), [[0.1, 0.2, 0.3]])
    e.train_step(x1, t1, 0.0)
    np.testing.assert_allclose(e.get_state()[1], [0.5, 0.5, 0.5])


@pytest.mark.parametrize("rule", ["vanilla", "momentum", "nesterov", "adam", "adamw"])
def test_update_rules_by_hand(rule):
    """Two steps of a linear dense layer under squared error, whose gradient is Xᵀ(XW − T):
    each rule as the doc writes it, with weight decay, lr_mult and wd_mult."""
    kw = {"mu": 0.9} if rule in ("momentum", "nesterov") else {"beta1": 0.8, "beta2": 0.95, "eps": 1e-3} if rule.startswith("adam") else {}
    spec = hand_resolve({"version": 2, "dtype": "f64", "input": [3], "layers": [dense("d0", 2, bias=True)], "loss": loss("squared_error"),
                         "update": update(rule, 0.1, **kw), "reduction": "sum", "seed": 0})
    spec["layers"][0]["params"][1].update(lr_mult=3.0, wd_mult=0.5)
    e = ReferenceEngine(json.dumps(spec))
    rng = np.random.default_rng(5)
    w = [rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, 2)]
    e.set_params([a.copy() for a in w])
    slots = [np.zeros_like(a) for a in w for _ in e.optimizer_slots()]
    alpha, lam, mults = 0.05, 0.1, [(1.0, 1.0), (3.0, 0.5)]
    for t in (1, 2):
        x, y = rng.uniform(-1, 1, (4, 3)), rng.uniform(-1, 1, (4, 2))
        r = x @ w[0] + w[1] - y
        grads = [x.T @ r, r.sum(0)]
        e.train_step(x, y, alpha)
        for i, (g, (lm, wm)) in enumerate(zip(grads, mults)):
            a, l = alpha * lm, lam * wm
            if rule == "vanilla":
                w[i] = w[i] - a * (g + l * w[i])
            elif rule == "momentum":
                slots[i] = 0.9 * slots[i] - a * (g + l * w[i])
                w[i] = w[i] + slots[i]
            elif rule == "nesterov":
                new = 0.9 * slots[i] - a * (g + l * w[i])
                w[i] = w[i] - 0.9 * slots[i] + 1.9 * new
                slots[i] = new
            else:
                if rule == "adamw":
                    w[i] = w[i] - a * l * w[i]
                else:
                    g = g + l * w[i]
                m, v = slots[2 * i], slots[2 * i + 1]
                m, v = 0.8 * m + 0.2 * g, 0.95 * v + 0.05 * g * g
                w[i] = w[i] - a * (m / (1 - 0.8**t)) / (np.sqrt(v / (1 - 0.95**t)) + 1e-3)
                slots[2 * i], slots[2 * i + 1] = m, v
        for got, want in zip(e.get_params(), w):
            np.testing.assert_allclose(got, want, rtol=1e-13)
        for got, want in zip(e.get_optimizer_state(), [s for s in slots]):
            np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-16)
        assert e.get_step() == t


def test_f32_spec_is_computed_in_f64_and_handed_out_in_f32():
    case = CASES["residual_nested"]
    r64, r32 = Run(ENGINES["reference"], case), Run(dataclasses.replace(ENGINES["reference"], dtype="f32"), case)
    e64, e32 = r64.load(), r32.load()
    x, t = r64.batch(0)
    x32, t32 = r32.batch(0)
    assert e32.forward(x32).dtype == np.float32 and all(p.dtype == np.float32 for p in e32.get_params())
    assert np.array_equal(e32.forward(x32, mode="train"), e64.forward(x, mode="train").astype(np.float32))
    assert e32.loss(x32, t32, "train") == e64.loss(x, t, "train")  # the same f64 computation
    for a, b in zip(e32.gradients(x32, t32), e64.gradients(x, t)):
        assert a.dtype == np.float32 and np.array_equal(a, b.astype(np.float32))
    with pytest.raises(TypeError):
        e32.forward(x)  # float64 input to an f32 engine


def test_uint8_input_is_scaled():
    run = Run(ENGINES["reference"], CASES["conv_uint8"])
    e = run.load()
    x, _ = run.batch(0)
    assert x.dtype == np.uint8
    np.testing.assert_array_equal(e.forward(x), e.forward(x / 255.0))


def test_residual_default_layer_is_the_last_top_level_layer():
    e = engine((3,), [dense("d0", 3, activator=act("tanh")),
                      {"kind": "residual", "name": "r1", "layers": [dense("d2", 3)], "activator": act("linear")}])
    assert [n for n, _ in e.param_info()] == ["d0.weight", "r1.d2.weight"]
    rng = np.random.default_rng(1)
    e.set_params([rng.uniform(-1, 1, (3, 3)), rng.uniform(-1, 1, (3, 3))])
    x = rng.uniform(0.1, 1, (2, 3))
    h = np.tanh(x @ e.get_params()[0])
    np.testing.assert_allclose(e.forward(x), h + h @ e.get_params()[1], rtol=1e-14)
    np.testing.assert_allclose(e.forward(x, 2), h @ e.get_params()[1], rtol=1e-14)

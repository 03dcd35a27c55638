"""The Python API: outputs, focus, weights, banner, training loop and its settings."""

import threading

import numpy as np
import pytest

import neuroflow as nf
import reference as ref
from neuroflow import (
    Convolution, Dense, Linear, LossFuncOutput, Momentum, Nesterov, Network, ReLU, Settings, Sigmoid,
    SoftmaxLogEntropy, SquaredError, Tanh, Vanilla, Waypoint, WeightBreeder,
)


def small(settings=None, seed=1, **kw):
    c0 = Convolution((9, 7, 3), padding=1, field=3, stride=1, filters=3, activator=ReLU)
    c1 = Convolution(c0.dim_out, padding=(1, 0), field=(3, 3), stride=(2, 1), filters=2, activator=Tanh)
    layout = [c0, c1, Dense(4, Linear), SoftmaxLogEntropy()]
    return Network(layout, settings or Settings(verbose=False, **kw), weights=WeightBreeder.normal(0, 0.3, seed=seed))


def data(rng, n=10):
    return rng.uniform(0, 1, (n, 9, 7, 3)), rng.integers(0, 4, n)


def test_outputs_and_focus(rng):
    net = small()
    x, _ = data(rng, 5)
    p = net(x)
    assert p.shape == (5, 4) and np.allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(net(x[2]), p[2], rtol=1e-12)
    c0 = net.layout[0]
    t0 = net.focus(c0)(x[0])
    assert t0.shape == c0.dim_out == (9, 7, 3)
    np.testing.assert_array_equal(net.Ω(0)(x)[0], t0)
    assert net.focus(2)(x).shape == (5, 4)
    with pytest.raises(ValueError, match=r"layer: index 3 is not a layer of the layout \(0..2\)"):
        net.focus(3)
    with pytest.raises(ValueError, match="not in this network's layout"):
        net.focus(Dense(2, ReLU))


def test_weights_are_copies_and_assignable(rng):
    net = small()
    x, _ = data(rng, 3)
    w = net.weights
    before = net(x)
    w[0][...] = 0.5  # a copy: the net does not change
    np.testing.assert_array_equal(net(x), before)
    net.weights = w
    np.testing.assert_array_equal(net.weights[0], np.full_like(w[0], 0.5))
    assert not np.allclose(net(x), before)
    np.testing.assert_allclose(net(x), ref.predict(net.layout, net.weights, x), rtol=1e-10)
    assert [a.shape for a in w] == [(3, 3, 3, 3), (3, 3, 3, 2), (5 * 5 * 2, 4)]
    assert net.num_weights == 81 + 54 + 200


def test_num_weights_of_the_article_layout():
    c0 = Convolution(dim_in=(400, 400, 3), padding=1, field=3, stride=1, filters=1, activator=ReLU)
    c1 = Convolution(dim_in=c0.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
    c2 = Convolution(dim_in=c1.dim_out, padding=1, field=4, stride=2, filters=1, activator=ReLU)
    c3 = Convolution(dim_in=c2.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
    assert (c0.dim_out, c2.dim_out, c3.dim_out) == ((400, 400, 1), (200, 200, 1), (200, 200, 1))
    net = Network([c0, c1, c2, c3, Dense(2, ReLU), SoftmaxLogEntropy()], Settings(pretty_print=True))
    assert net.num_weights == 80061
    text = net.banner()
    for line in ["402*402*3 ~> [3*3 : 1*1] ~> 400*400*1 (ReLU)", "402*402*1 ~> [4*4 : 2*2] ~> 200*200*1 (ReLU)",
                 "202*202*1 ~> [3*3 : 1*1] ~> 200*200*1 (ReLU)", "2 Dense (ReLU)", "80,061", "SoftmaxLogEntropy",
                 "Momentum(0.9)", "float64", nf.__version__]:
        assert line in text
    assert "O" in text.split("2 Dense (ReLU)")[1]  # pretty_print's columns


def test_constructor_is_quiet_and_verbose_training_prints(rng, capsys):
    x, y = data(rng)
    net = small(Settings(verbose=True, iterations=3))
    assert capsys.readouterr().out == ""
    net.train(x, y)
    out = capsys.readouterr().out
    assert "Layout" in out and "Iteration 3" in out
    small(Settings(verbose=False, iterations=3)).train(x, y)
    assert capsys.readouterr().out == ""


def test_run_record_loss_output_waypoint_and_learning_rate(rng, tmp_path):
    x, y = data(rng)
    seen, calls, rates = [], [], []

    def lr(i, alpha):
        rates.append((i, alpha))
        return 0.01 if i < 4 else 0.001

    path = tmp_path / "loss.txt"
    s = Settings(verbose=False, iterations=7, batch_size=4, learning_rate=lr,
                 loss_func_output=LossFuncOutput(file=path, action=seen.append),
                 waypoint=Waypoint(3, lambda i, net: calls.append((i, net.weights[0].sum()))))
    net = small(s)
    run = net.train(x, y)
    assert run.iterations == 7 and run.stopped_by == "iterations" and len(run.losses) == 7
    assert run.final_loss == run.losses[-1] and run.start <= run.end and run.images_per_second > 0
    assert [float(v) for v in path.read_text().split()] == list(run.losses) == seen
    assert [i for i, _ in calls] == [3, 6]
    assert rates[0] == (1, 1.0) and rates[1] == (2, 0.01) and rates[4] == (5, 0.001)
    assert net.iteration == 7
    net.train(x, y)  # iterations keep counting, as the learning-rate schedule expects
    assert net.iteration == 14 and rates[-1][0] == 14


def test_precision_stops_training(rng):
    x, y = data(rng)
    run = small(precision=1e9, iterations=50).train(x, y)
    assert run.iterations == 1 and run.stopped_by == "precision"


def test_training_lowers_the_loss_and_is_reproducible(rng):
    x, y = data(rng, 24)
    # lr 0.05 let the bias-free ReLU layer die on about 1 draw in 120 (loss stuck at ln 4);
    # at 0.01 for 300 steps the worst of 3000 draws ends at 0.31 of its first loss.
    s = Settings(verbose=False, iterations=300, batch_size=8, learning_rate=0.01, seed=3, reduction="mean")
    a, b = small(s), small(s)
    first = a.loss(x, y)
    a.train(x, y)
    b.train(x, y)
    assert a.loss(x, y) < 0.7 * first
    assert all(np.array_equal(p, q) for p, q in zip(a.weights, b.weights))
    assert all(np.array_equal(p, q) for p, q in zip(a.optimizer_state, b.optimizer_state))


def test_reduction_mean_is_sum_over_n(rng):
    x, y = data(rng, 6)
    s, m = small(reduction="sum"), small(reduction="mean")
    assert m.loss(x, y) == pytest.approx(s.loss(x, y) / 6, rel=1e-12)
    for gs, gm in zip(s.gradients(x, y), m.gradients(x, y)):
        np.testing.assert_allclose(gm, gs / 6, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("rule", [Vanilla(), Momentum(0.8), Nesterov(0.7)])
def test_update_rules_follow_their_formulas(rule, rng):
    x, y = data(rng, 5)
    lr = 0.05
    net = small(update_rule=rule, learning_rate=lr, batch_size=5, iterations=1, shuffle=False)
    w, m = [a.copy() for a in net.weights], [np.zeros_like(a) for a in net.weights]
    for step in range(3):
        g = net.gradients(x, y)
        net.train(x, y)
        for i in range(len(w)):
            if isinstance(rule, Vanilla):
                w[i] = w[i] - lr * g[i]
            elif isinstance(rule, Momentum):
                m[i] = rule.mu * m[i] - lr * g[i]
                w[i] = w[i] + m[i]
            else:
                new = rule.mu * m[i] - lr * g[i]
                w[i] = w[i] - rule.mu * m[i] + (1 + rule.mu) * new
                m[i] = new
        np.testing.assert_allclose(np.concatenate([a.ravel() for a in net.weights]),
                                   np.concatenate([a.ravel() for a in w]), rtol=1e-10, atol=1e-12)
    assert (net.optimizer_state == []) == isinstance(rule, Vanilla)


def test_optimizer_state_belongs_to_the_network(rng):
    x, y = data(rng)
    s = Settings(verbose=False, iterations=2)
    a, b = small(s), small(s)
    a.train(x, y)
    assert any(np.abs(m).sum() > 0 for m in a.optimizer_state)
    assert all(np.abs(m).sum() == 0 for m in b.optimizer_state)
    assert s.update_rule == Momentum(0.9)  # the settings object holds no state


def test_ctrl_c_keeps_the_last_finished_step(rng):
    x, y = data(rng)

    def interrupt(loss, count=[0]):
        count[0] += 1
        if count[0] == 3:
            raise KeyboardInterrupt

    net = small(Settings(verbose=False, iterations=10, shuffle=False, loss_func_output=interrupt))
    run = net.train(x, y)
    assert run.interrupted and run.iterations == 3 and net.iteration == 3
    ref_net = small(Settings(verbose=False, iterations=3, shuffle=False))
    ref_net.train(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(net.weights, ref_net.weights))


def test_uint8_and_float32(rng):
    x8 = rng.integers(0, 256, (6, 9, 7, 3), dtype=np.uint8)
    y = rng.integers(0, 4, 6)
    net32 = small(dtype=np.float32, iterations=3)
    assert net32.weights[0].dtype == np.float32
    net32.train(x8, y)
    np.testing.assert_allclose(net32(x8), net32(x8.astype(np.float32) / 255), rtol=1e-6)


def test_a_dense_only_network_learns_xor():
    # no biases in NeuroFlow's layers: a constant third input plays the bias
    x = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
    y = np.array([[0.0], [1], [1], [0]])
    net = Network([Dense(8, Tanh, dim_in=3), Dense(1, Sigmoid), SquaredError()],
                  Settings(verbose=False, learning_rate=0.5, iterations=2000, batch_size=4, update_rule=Momentum(0.9), precision=1e-4),
                  weights=WeightBreeder.normal(0, 1, seed=0))
    net.train(x, y)
    assert np.all(np.abs(net(x) - y) < 0.1)


def test_threads_can_be_set_and_give_the_same_numbers(rng):
    x, y = data(rng)
    # small() runs the direct kernels; `tiled` im2col tiles over several samples (40 of 49
    # output positions: 8 tiles of 256 rows, so 8 partial weight gradients)
    c0 = Convolution((7, 7, 2), padding=1, field=3, stride=1, filters=8, activator=ReLU)
    tiled = Network([c0, Convolution(c0.dim_out, padding=0, field=3, stride=2, filters=6, activator=Tanh), Dense(3, Linear),
                     SoftmaxLogEntropy()], Settings(verbose=False), weights=WeightBreeder.normal(0, 0.3, seed=2))
    xt, yt = rng.uniform(-1, 1, (40, 7, 7, 2)), rng.integers(0, 3, 40)
    old = nf.num_threads()
    try:
        nf.set_num_threads(1)
        assert nf.num_threads() == 1
        g1, t1 = small().gradients(x, y), tiled.gradients(xt, yt)
        nf.set_num_threads(2)
        g2, t2 = small().gradients(x, y), tiled.gradients(xt, yt)
    finally:
        nf.set_num_threads(old)
    # fixed summation groups and order: bit-identical whatever the thread count
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))
    assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
    np.testing.assert_allclose(tiled(xt), ref.predict(tiled.layout, tiled.weights, xt), rtol=1e-10)  # the gradients: conformance


def test_training_releases_the_interpreter(rng):
    """Another Python thread runs while one long engine call computes in Rust."""
    import time

    c0 = Convolution((64, 64, 3), padding=1, field=3, stride=1, filters=16, activator=ReLU)
    net = Network([c0, Dense(2, Linear), SoftmaxLogEntropy()], Settings(verbose=False))
    x, y = rng.uniform(0, 1, (96, 64, 64, 3)), rng.integers(0, 2, 96)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            done.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        start = time.perf_counter()
        net.gradients(x, y)  # one engine call
        end = time.perf_counter()
    finally:
        done.set()
        t.join()
    # ticks strictly inside the call: none if the call held the interpreter lock
    inside = [v for v in ticks if start + 0.01 < v < end - 0.01]
    assert end - start > 0.05, "the call was too short to tell"
    assert len(inside) >= 0.2 * (end - start) / 0.001, f"{len(inside)} ticks in a {end - start:.3f} s call"

def test_default_precision_follows_the_backend(rng):
    """dtype=None: float64 on the CPU (NeuroFlow's Double); the GPU computes in float32."""
    net = small(Settings(verbose=False))
    assert net.dtype == np.float64 and net.weights[0].dtype == np.float64
    assert net.settings.dtype == np.float64
    net.settings = Settings(verbose=False, iterations=1)  # new settings cannot change the engine's precision
    x, y = data(rng, 4)
    net.train(x, y)
    assert net(x).dtype == np.float64


def test_the_readmes_modern_net_builds_and_trains(rng):
    """The README's "A modern conv net" example, run on a few random images."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = re.search(r"## A modern conv net\n\n```python\n(.*?)```", text, re.S).group(1)
    xs = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    env = {"xs": xs, "ys": rng.integers(0, 10, 6), "test_xs": xs[:3], "test_ys": rng.integers(0, 10, 3)}
    code = code.replace("iterations=2000", "iterations=2, verbose=False")
    exec(compile(code, "README.md", "exec"), env)
    net = env["net"]
    assert net.iteration == 2 and 0 <= env["accuracy"] <= 1 and np.isfinite(env["loss"])
    assert [type(x).__name__ for x in net.layout][:4] == ["Convolution", "BatchNorm", "Convolution", "BatchNorm"]


def test_momentum_takes_mu_as_neuroflow_writes_it():
    """Momentum(μ = 0.8f) in NeuroFlow; μ= beside mu= here, one of them, each checked."""
    assert Momentum(μ=0.8) == Momentum(0.8) == Momentum(mu=0.8) and Nesterov(μ=0.5, weight_decay=1e-4) == Nesterov(0.5, 1e-4)
    assert Momentum().mu == 0.9 and repr(Momentum(μ=0.25)) == "Momentum(0.25)"
    with pytest.raises(TypeError, match="give mu or μ, not both"):
        Momentum(mu=0.9, μ=0.5)
    with pytest.raises(TypeError, match=r"unexpected argument\(s\) \['nu'\]"):
        Momentum(nu=0.5)
    with pytest.raises(ValueError, match=r"mu: expected a momentum in \[0, 1\)"):
        Momentum(μ=1.5)

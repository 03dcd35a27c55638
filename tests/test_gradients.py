"""Backprop against central finite differences in float64, for every layer kind, activator
and loss, on small random nets with padding and stride > 1."""

import numpy as np
import pytest

import reference as ref
from neuroflow import (
    AbsCubicError, Convolution, Dense, FiniteDifferences, LeakyReLU, Linear, Momentum, Network, ReLU, Settings,
    Sigmoid, SoftmaxLogEntropy, SoftmaxLogMultEntropy, SoftPlus, Square, SquaredError, Tanh, WeightBreeder,
)

ACTIVATORS = [ReLU.biased(0.2), LeakyReLU(0.1), Sigmoid, Tanh.biased(-0.1), Linear, SoftPlus, Square]
LOSSES = [SoftmaxLogEntropy(), SoftmaxLogMultEntropy(2), SquaredError(), AbsCubicError()]


def small_layout(a0, a1, a2, loss):
    # 6 filters: im2col × gemm; 2 filters: the direct kernels
    c0 = Convolution((7, 6, 2), padding=1, field=3, stride=(2, 1), filters=6, activator=a0)
    c1 = Convolution(c0.dim_out, padding=(1, 0), field=2, stride=(2, 1), filters=2, activator=a1)
    c2 = Convolution(c1.dim_out, padding=0, field=1, stride=1, filters=2, activator=a2.biased(0.3) if a2 is ReLU else a2)
    return [c0, c1, c2, Dense(4, Tanh.biased(0.05)), loss]


def targets(loss, n, k, rng):
    if isinstance(loss, SoftmaxLogEntropy):
        return rng.integers(0, k, n)
    if isinstance(loss, SoftmaxLogMultEntropy):
        t = np.zeros((n, k))
        for row in t:
            row[rng.choice(k, loss.n, replace=False)] = 1
        return t
    return rng.uniform(-1, 1, (n, k))


def one_hot(t, k):
    t = np.asarray(t)
    return np.eye(k)[t] if t.ndim == 1 else t


CASES = [(a, LOSSES[i % 4], ACTIVATORS[(i + 3) % 7], ACTIVATORS[(i + 5) % 7], "sum" if i % 2 else "mean") for i, a in enumerate(ACTIVATORS)]
CASES += [(ReLU, loss, Sigmoid, Linear, "sum") for loss in LOSSES]


@pytest.mark.parametrize("a0,loss,a1,a2,reduction", CASES, ids=[f"{c[0]!r}-{c[1]!r}-{c[4]}" for c in CASES])
def test_backprop_matches_finite_differences(a0, loss, a1, a2, reduction, rng):
    layout = small_layout(a0, a1, a2, loss)
    x = rng.uniform(-1, 1, (3, 7, 6, 2))
    t = targets(loss, 3, 4, rng)
    # A draw where every ReLU is dead has a zero gradient and proves nothing: draw again.
    for _ in range(10):
        net = Network(layout, Settings(reduction=reduction, dtype=np.float64, verbose=False),
                      weights=WeightBreeder.random(-0.6, 0.6, seed=int(rng.integers(1 << 30))))
        w = net.weights
        fd = ref.fd_gradients(lambda ws: ref.network_loss(layout, ws, x, one_hot(t, 4), reduction), w)
        if sum(float(np.abs(g).sum()) for g in fd) > 1e-3:
            break
    else:
        pytest.fail("every draw gave a vanishing gradient")
    want_loss = ref.network_loss(layout, w, x, one_hot(t, 4), reduction)
    assert net.loss(x, t) == pytest.approx(want_loss, rel=1e-10)
    bp = net.gradients(x, t)
    assert [g.shape for g in bp] == [a.shape for a in w]
    assert ref.relative_error(bp, fd) <= 1e-6


def test_finite_differences_approximation_agrees_with_backprop(rng):
    layout = small_layout(Sigmoid, Tanh, SoftPlus, SoftmaxLogEntropy())
    breeder = WeightBreeder.normal(0, 0.5, seed=3)
    exact = Network(layout, Settings(dtype=np.float64, verbose=False), weights=breeder)
    approx = Network(layout, Settings(dtype=np.float64, verbose=False, approximation=FiniteDifferences(1e-6)), weights=breeder)
    x, t = rng.uniform(-1, 1, (4, 7, 6, 2)), rng.integers(0, 4, 4)
    assert ref.relative_error(approx.gradients(x, t), exact.gradients(x, t)) <= 1e-6
    # and training on them follows backprop's path
    settings = dict(dtype=np.float64, verbose=False, learning_rate=0.05, iterations=5, batch_size=4, update_rule=Momentum(0.9), shuffle=False)
    a = Network(layout, Settings(**settings), weights=breeder)
    b = Network(layout, Settings(**settings, approximation=FiniteDifferences(1e-6)), weights=breeder)
    a.train(x, t)
    b.train(x, t)
    assert ref.relative_error(b.weights, a.weights) <= 1e-6


def test_float32_gradients_follow_float64(rng):
    layout = small_layout(ReLU, Sigmoid, Linear, SoftmaxLogEntropy())
    breeder = WeightBreeder.normal(0, 0.4, seed=5)
    n64 = Network(layout, Settings(dtype=np.float64, verbose=False), weights=breeder)
    n32 = Network(layout, Settings(dtype=np.float32, verbose=False), weights=breeder)
    x, t = rng.uniform(-1, 1, (5, 7, 6, 2)), rng.integers(0, 4, 5)
    g32 = n32.gradients(x.astype(np.float32), t)
    assert all(g.dtype == np.float32 for g in g32)
    assert ref.relative_error(g32, n64.gradients(x, t)) <= 1e-4

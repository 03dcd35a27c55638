"""Convolution and dense forward against the plain NumPy reference, float32 and float64."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import reference as ref
from neuroflow import Convolution, Dense, Linear, Network, ReLU, Settings, SquaredError, WeightBreeder, Tanh


def conv_net(dim_in, padding, field, stride, filters, act, dtype, seed):
    conv = Convolution(dim_in, padding=padding, field=field, stride=stride, filters=filters, activator=act)
    layout = [conv, Dense(2, Linear), SquaredError()]
    net = Network(layout, Settings(dtype=dtype, verbose=False), weights=WeightBreeder.normal(0, 1, seed=seed))
    return net, conv


def check(net, conv, x, tol):
    w = net.weights[0]
    want = conv.activator(ref.conv_forward(x.astype(np.float64), w, conv.padding, conv.stride))
    got = net.focus(conv)(x)
    assert got.shape == want.shape == (len(x),) + conv.dim_out
    scale = max(np.abs(want).max(), 1e-30)
    assert np.abs(got - want).max() <= tol * scale


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    x=st.integers(1, 13), y=st.integers(1, 13), z=st.integers(1, 5), filters=st.integers(1, 6),
    fx=st.integers(1, 5), fy=st.integers(1, 5), px=st.integers(0, 2), py=st.integers(0, 2),
    sx=st.integers(1, 3), sy=st.integers(1, 3), n=st.integers(1, 3), seed=st.integers(0, 2**31 - 1),
)
def test_conv_forward_matches_numpy_float32(x, y, z, filters, fx, fy, px, py, sx, sy, n, seed):
    assume(fx <= x + 2 * px and fy <= y + 2 * py)
    assume((x + 2 * px - fx) % sx == 0 and (y + 2 * py - fy) % sy == 0)
    net, conv = conv_net((x, y, z), (px, py), (fx, fy), (sx, sy), filters, Linear, np.float32, seed)
    data = np.random.default_rng(seed).uniform(-1, 1, (n, x, y, z)).astype(np.float32)
    check(net, conv, data, 1e-5)


@pytest.mark.parametrize("case", [
    # (dim_in, padding, field, stride, filters): the article's, 1×1 (no im2col), large tiles
    ((400, 400, 3), 1, 3, 1, 1),
    ((102, 57, 2), 1, 4, (2, 5), 3),
    ((32, 32, 16), 0, 1, 1, 7),
    ((9, 13, 5), 2, (5, 1), (1, 2), 4),
])
def test_conv_forward_large_and_special(case, rng):
    dim_in, padding, field, stride, filters = case
    net, conv = conv_net(dim_in, padding, field, stride, filters, ReLU.biased(0.1), np.float32, int(rng.integers(1 << 30)))
    check(net, conv, rng.uniform(-1, 1, (2,) + dim_in).astype(np.float32), 1e-5)


def test_float64_is_exact_to_rounding(rng):
    net, conv = conv_net((11, 8, 3), (2, 1), (3, 4), (2, 1), 5, Tanh, np.float64, 1)
    check(net, conv, rng.uniform(-1, 1, (4, 11, 8, 3)), 1e-12)


def test_network_output_matches_numpy(rng):
    c0 = Convolution((12, 10, 3), padding=1, field=3, stride=1, filters=4, activator=ReLU)
    c1 = Convolution(c0.dim_out, padding=1, field=4, stride=2, filters=3, activator=Tanh)
    layout = [c0, c1, Dense(5, Tanh), Dense(3, Linear), SquaredError()]
    net = Network(layout, Settings(dtype=np.float32, verbose=False), weights=WeightBreeder.normal(0, 0.3, seed=2))
    x = rng.uniform(0, 1, (6, 12, 10, 3)).astype(np.float32)
    want = ref.predict(layout, net.weights, x)
    np.testing.assert_allclose(net(x), want, rtol=1e-5, atol=1e-6)
    assert net(x[0]).shape == (3,)
    np.testing.assert_allclose(net.focus(2)(x), ref.forward(layout, net.weights, x)[2], rtol=1e-5, atol=1e-6)


def test_uint8_is_scaled_by_1_over_255(rng):
    net, conv = conv_net((6, 5, 3), 1, 3, 1, 2, Linear, np.float64, 4)
    bytes_ = rng.integers(0, 256, (3, 6, 5, 3), dtype=np.uint8)
    np.testing.assert_allclose(net.focus(conv)(bytes_), net.focus(conv)(bytes_ / 255.0), rtol=1e-12)

"""Bad input never crashes and never starts work: each gets a ValueError/TypeError that
names the argument and what was expected."""

import json

import numpy as np
import pytest

from neuroflow import (
    Convolution, Dense, LeakyReLU, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, SoftmaxLogMultEntropy,
    SquaredError, WeightBreeder, Waypoint, _core,
)


@pytest.fixture
def net():
    c0 = Convolution((8, 6, 3), padding=1, field=3, stride=1, filters=2, activator=ReLU)
    c1 = Convolution(c0.dim_out, padding=1, field=4, stride=2, filters=2, activator=ReLU)
    return Network([c0, c1, Dense(3, ReLU), SoftmaxLogEntropy()], Settings(verbose=False), weights=WeightBreeder.normal(0, 0.2, seed=1))


def unchanged(net):
    """Weights and state before a failing call, to check nothing was touched."""
    before = [w.copy() for w in net.weights] + net.optimizer_state

    def check():
        after = net.weights + net.optimizer_state
        assert all(np.array_equal(a, b) for a, b in zip(before, after))

    return check


@pytest.mark.parametrize("xs,match", [
    (np.zeros((2, 6, 8, 3)), r"xs: expected shape \(N, 8, 6, 3\)"),
    (np.zeros((2, 8, 6)), r"xs: expected shape"),
    (np.zeros((8, 6, 3, 1, 1)), r"xs: expected shape"),
    (np.zeros((0, 8, 6, 3)), r"xs: the batch is empty"),
])
def test_bad_shapes(net, xs, match):
    check = unchanged(net)
    with pytest.raises(ValueError, match=match):
        net.train(xs, np.zeros(len(xs), dtype=int))
    with pytest.raises(ValueError, match=match):
        net(xs)
    check()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input(net, bad, rng):
    xs = rng.uniform(0, 1, (3, 8, 6, 3))
    xs[1, 4, 2, 0] = bad
    check = unchanged(net)
    with pytest.raises(ValueError, match=r"xs: contains NaN or infinity \(first at index \(1, 4, 2, 0\)\)"):
        net.train(xs, [0, 1, 2])
    check()


def test_wrong_dtypes(net, rng):
    with pytest.raises(TypeError, match="xs: expected float32, float64 or uint8"):
        net(rng.integers(0, 5, (2, 8, 6, 3)))
    with pytest.raises(TypeError, match="xs: expected float32, float64 or uint8"):
        net(np.zeros((2, 8, 6, 3), dtype=complex))
    with pytest.raises(TypeError, match="dtype: expected np.float32 or np.float64"):
        Settings(dtype=np.int32)
    with pytest.raises(TypeError, match="dtype"):
        Settings(dtype="float17")


def test_bad_targets(net, rng):
    xs = rng.uniform(0, 1, (4, 8, 6, 3))
    check = unchanged(net)
    with pytest.raises(ValueError, match=r"ys: expected targets of shape \(4, 3\)"):
        net.train(xs, np.ones((4, 2)) / 2)
    with pytest.raises(ValueError, match=r"ys: expected 4 class ids"):
        net.train(xs, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"ys: class ids must be in 0..2"):
        net.train(xs, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"ys: contains NaN"):
        net.loss(xs, np.full((4, 3), np.nan))
    with pytest.raises(ValueError, match=r"sum to 1"):
        net.loss(xs, np.ones((4, 3)))
    check()


def test_mult_entropy_targets_sum_to_n(rng):
    net = Network([Dense(4, ReLU, dim_in=3), SoftmaxLogMultEntropy(2)], Settings(verbose=False))
    x = rng.uniform(0, 1, (2, 3))
    with pytest.raises(ValueError, match="sum to 2"):
        net.loss(x, np.array([[1.0, 0, 0, 0], [0, 1, 0, 0]]))
    assert np.isfinite(net.loss(x, np.array([[1.0, 1, 0, 0], [0, 1, 0, 1]])))


def test_layouts_refused():
    c0 = Convolution((8, 8, 1), padding=0, field=3, stride=1, filters=2, activator=ReLU)
    with pytest.raises(ValueError, match="must end in a loss"):
        Network([c0, Dense(2, ReLU)])
    with pytest.raises(TypeError, match=r"the loss must be an instance: SoftmaxLogEntropy\(\)"):
        Network([c0, Dense(2, ReLU), SoftmaxLogEntropy])
    with pytest.raises(ValueError, match=r"layout\[1\] \(c1\) needs a 3-D input \(X, Y, Z\) but gets \(4,\)"):
        Network([Dense(4, ReLU, dim_in=64), Convolution((2, 2, 1), 0, 1, 1, 1, ReLU), SquaredError()])
    with pytest.raises(ValueError, match=r"layout\[1\]: Convolution expects dim_in \(7, 7, 2\) but layout\[0\] gives \(6, 6, 2\)"):
        Network([c0, Convolution((7, 7, 2), 0, 2, 1, 1, ReLU), Dense(2, ReLU), SoftmaxLogEntropy()])
    with pytest.raises(ValueError, match="a loss can only be the last item"):
        Network([c0, SquaredError(), Dense(2, ReLU), SoftmaxLogEntropy()])
    with pytest.raises(ValueError, match=r"needs its input size"):
        Network([Dense(2, ReLU), SquaredError()])
    with pytest.raises(ValueError, match="expected a list of layers"):
        Network([])
    with pytest.raises(ValueError, match='backend: expected "cpu", "gpu", "auto" or "reference"'):
        Network([c0, Dense(2, ReLU), SquaredError()], backend="tpu")


def test_convolution_geometry_refused_with_a_suggestion():
    with pytest.raises(ValueError, match=r"Convolution with dim_in \(10, 10, 3\): on X, 10 \+ 2·0 − 3 = 7 is not divisible by the stride 3; try padding 1 or stride 1"):
        Convolution((10, 10, 3), padding=0, field=3, stride=3, filters=1, activator=ReLU)
    with pytest.raises(ValueError, match=r"c9 with dim_in \(4, 20, 1\): the field 7 on X is larger than the padded input 4 \+ 2·1 = 6; try padding 2"):
        Convolution((4, 20, 1), padding=1, field=(7, 3), stride=1, filters=1, activator=ReLU, name="c9")
    with pytest.raises(TypeError, match="padding must be an int or a pair"):
        Convolution((4, 4, 1), padding=(1, 1, 1), field=3, stride=1, filters=1, activator=ReLU)
    with pytest.raises(ValueError, match="stride must be ≥ 1"):
        Convolution((4, 4, 1), padding=1, field=3, stride=0, filters=1, activator=ReLU)
    with pytest.raises(ValueError, match="dim_in must be three positive ints"):
        Convolution((4, 4), padding=1, field=3, stride=1, filters=1, activator=ReLU)
    with pytest.raises(TypeError, match=r"LeakyReLU needs its slope, e.g. LeakyReLU\(0.01\)"):
        Convolution((4, 4, 1), padding=1, field=3, stride=1, filters=1, activator=LeakyReLU)
    with pytest.raises(ValueError, match="filters must be a positive int"):
        Convolution((4, 4, 1), padding=1, field=3, stride=1, filters=0, activator=ReLU)


def test_weight_breeder_errors():
    c0 = Convolution((8, 8, 1), padding=0, field=3, stride=1, filters=2, activator=ReLU)
    layout = [c0, Dense(2, ReLU), SoftmaxLogEntropy()]
    with pytest.raises(ValueError, match=r"no parameters for layer 1 \(Dense\(2, ReLU\)\)"):
        Network(layout, weights=WeightBreeder.normal({0: (0, 0.1)}))
    with pytest.raises(ValueError, match="layer 2 has no weights"):
        Network(layout, weights=WeightBreeder.normal({0: (0, 0.1), 1: (0, 1), 2: (0, 1)}))
    with pytest.raises(ValueError, match="std must be ≥ 0"):
        WeightBreeder.normal(0, -1)
    with pytest.raises(ValueError, match="low must be < high"):
        WeightBreeder.random(1, -1)


def test_weights_assignment_checked(net):
    check = unchanged(net)
    w = net.weights
    with pytest.raises(ValueError, match=r"weights\[1\]: expected shape \(4, 4, 2, 2\), got \(4, 4, 2\)"):
        net.weights = [w[0], w[1][..., 0], w[2]]
    with pytest.raises(ValueError, match="weights: expected 3 arrays, got 2"):
        net.weights = w[:2]
    w[2][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"weights\[2\]: contains NaN"):
        net.weights = w
    check()


def test_settings_refused():
    with pytest.raises(ValueError, match="learning_rate: expected a positive number"):
        Settings(learning_rate=-1)
    with pytest.raises(TypeError, match="learning_rate: expected a number, a schedule or callable"):
        Settings(learning_rate="fast")
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        Settings(batch_size=0)
    with pytest.raises(ValueError, match='reduction: expected "sum" or "mean"'):
        Settings(reduction="max")
    with pytest.raises(ValueError, match=r"mu: expected a momentum in \[0, 1\)"):
        Momentum(1.5)
    with pytest.raises(TypeError, match="update_rule"):
        Settings(update_rule="adam")
    with pytest.raises(ValueError, match="every_n must be a positive int"):
        Waypoint(0, print)


def test_learning_rate_that_returns_nan_stops_before_the_step(net, rng):
    net.settings = Settings(verbose=False, learning_rate=lambda i, a: float("nan"))
    check = unchanged(net)
    with pytest.raises(ValueError, match="learning_rate: returned nan at iteration 1"):
        net.train(rng.uniform(0, 1, (2, 8, 6, 3)), [0, 1])
    check()


def test_engine_errors_are_exceptions_not_aborts():
    spec = {"version": 2, "dtype": "f32", "input": [3], "layers": [{"kind": "dense", "name": "d", "neurons": 2,
            "activator": {"name": "relu"}}], "loss": {"name": "squared_error"},
            "update": {"name": "vanilla"}, "reduction": "sum"}
    engine = _core.Engine(json.dumps(spec))
    with pytest.raises(ValueError, match=r"x: expected a batch of shape \(N, 3\), got \[2, 2\]"):
        engine.forward(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="x: expected a non-empty batch of samples of 3 values"):
        engine.forward(np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError, match="targets: expected 1 rows of 2 values"):
        engine.loss(np.zeros((1, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="x: expected a numpy array of f32 or uint8"):
        engine.forward(np.zeros((1, 3), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        engine.forward(np.zeros((2, 6), np.float32)[:, ::2])
    with pytest.raises(ValueError, match="not a valid network spec"):
        _core.Engine("{}")
    with pytest.raises(ValueError, match='dtype: expected "f32" or "f64"'):
        _core.Engine(json.dumps({**spec, "dtype": "f16"}))
    with pytest.raises(ValueError, match=r"layout\[0\] \(c\) with dim_in \(5, 5, 1\): on X, 5 \+ 2·0 − 2 = 3 is not divisible by the stride 2"):
        _core.Engine(json.dumps({**spec, "input": [5, 5, 1], "layers": [{"kind": "conv", "name": "c", "padding": [0, 0],
                     "field": [2, 2], "stride": [2, 2], "filters": 1, "activator": {"name": "relu"}}]}))
    with pytest.raises(ValueError, match="the resolved shapes in the spec are not those of its layout"):
        bad = json.loads(_core.resolve(json.dumps(spec)))
        bad["layers"][0]["dim_out"] = [3]
        _core.Engine(json.dumps(bad))
    with pytest.raises(ValueError, match="n: expected a positive number of threads"):
        _core.set_num_threads(0)

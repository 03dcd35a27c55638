"""``Settings(batch_size=None)``: the whole data set per weight update, as NeuroFlow's default."""

import json

import numpy as np
import pytest
from safetensors import safe_open

import neuroflow as nf
from neuroflow import Convolution, Dense, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, Tanh, WeightBreeder


def small(batch_size, shuffle=True):
    c0 = Convolution((6, 5, 2), padding=1, field=3, stride=1, filters=2, activator=ReLU)
    layout = [c0, Dense(5, Tanh), Dense(3, Tanh), SoftmaxLogEntropy()]
    s = Settings(verbose=False, iterations=4, batch_size=batch_size, learning_rate=0.01, update_rule=Momentum(0.8),
                 shuffle=shuffle, seed=5)
    return Network(layout, s, weights=WeightBreeder.normal(0, 0.3, seed=1))


def data(rng, n):
    return rng.uniform(0, 1, (n, 6, 5, 2)), rng.integers(0, 3, n)


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("shuffle", [True, False])
def test_none_trains_on_the_whole_data_set(rng, shuffle):
    # 40 samples: more than the default 32, so None is not the default either
    xs, ys = data(rng, 40)
    whole, by_n, default = small(None, shuffle), small(len(xs), shuffle), small(32, shuffle)
    runs = [net.train(xs, ys) for net in (whole, by_n, default)]
    assert same(whole.weights, by_n.weights)
    assert np.array_equal(runs[0].losses, runs[1].losses)
    assert not same(whole.weights, default.weights)
    assert whole.settings.batch_size is None


def test_settings_accept_none_and_still_refuse_bad_sizes():
    assert Settings(batch_size=None).batch_size is None
    assert Settings().batch_size == 32
    for bad in (0, -1, 2.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size: expected a positive int or None"):
            Settings(batch_size=bad)


def test_a_model_file_keeps_none(rng, tmp_path):
    xs, ys = data(rng, 12)
    net = small(None)
    net.train(xs, ys)
    path = net.save(tmp_path / "whole.safetensors")
    with safe_open(str(path), "np") as f:
        stored = json.loads(f.metadata()["settings"])
    assert stored["batch_size"] is None
    back = nf.load(path)
    assert back.settings.batch_size is None
    assert same(back.weights, net.weights)
    # training on from the file goes on as the original does
    net.train(xs, ys)
    back.train(xs, ys)
    assert same(back.weights, net.weights)

"""Lookahead: the slow copy is pulled at the right iterations by the right fraction, covers
BatchNorm's statistics, survives save / load / resume exactly, and refuses bad settings."""

from dataclasses import replace

import numpy as np
import pytest

import neuroflow as nf
from neuroflow import (
    BatchNorm, Convolution, Dense, Linear, Lookahead, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, Tanh,
    Waypoint, WeightBreeder,
)
from gpu_parity import assert_close, require_gpu


def net_for(iterations, lookahead=None, waypoint=None, batch_size=None, shuffle=False, act=ReLU, backend="cpu", **kw):
    # precision 0: every run takes all its iterations. With the default (1e-5) about one seed
    # in a hundred stopped a run early where the reference, trained in pieces, went on.
    kw.setdefault("precision", 0.0)
    layout = [Convolution((6, 5, 2), padding=1, field=3, filters=3, activator=Linear, name="c0"),
              BatchNorm(activator=act, name="bn"), Dense(3, Linear, name="out"), SoftmaxLogEntropy()]
    settings = Settings(verbose=False, iterations=iterations, batch_size=batch_size, learning_rate=0.05,
                        update_rule=Momentum(0.8), seed=3, shuffle=shuffle, dtype=np.float32, lookahead=lookahead,
                        waypoint=waypoint, **kw)
    return Network(layout, settings, weights=WeightBreeder.normal(0, 0.4, seed=9), backend=backend)


def data(rng, n=9):
    return rng.uniform(-1, 1, (n, 6, 5, 2)), rng.integers(0, 3, n)


@pytest.mark.parametrize("total", [15, 12])  # 12: the last pull is at the run's end, off the 5-step grid
def test_pulls_match_a_numpy_reference(rng, total):
    x, y = data(rng)
    la = Lookahead(every=5, decay=0.95**5, power=3.0)
    net = net_for(total, la)
    net.train(x, y)
    # the reference: the same net without lookahead, trained in pieces, pulled by hand
    ref = net_for(total)
    slow = [*ref.weights, *ref.state.values()]
    ends = sorted({*range(5, total + 1, 5), total})
    done = 0
    for end in ends:
        ref.settings = replace(ref.settings, iterations=end - done)
        ref.train(x, y)
        done = end
        fraction = np.float32(1.0 - 0.95**5 * (end / total) ** 3)
        fast = [*ref.weights, *ref.state.values()]
        slow = [s + fraction * (f - s) for s, f in zip(slow, fast)]
        k = len(ref.weights)
        ref.weights = slow[:k]
        ref.state = dict(zip(ref.state, slow[k:]))
    for got, want in zip([*net.weights, *net.state.values()], slow):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    plain = net_for(total)
    plain.train(x, y)
    assert not all(np.allclose(a, b) for a, b in zip(plain.weights, net.weights)), "the pulls changed nothing"
    assert not np.allclose(plain.state["bn.running_mean"], net.state["bn.running_mean"])  # statistics are pulled too


def test_constant_pull_and_its_fraction():
    la = Lookahead(every=4, decay=0.5)
    assert [la.due(i, 10) for i in range(1, 11)] == [False, False, False, True, False, False, False, True, False, True]
    assert la.pull(4, 10) == la.pull(10, 10) == 0.5
    air = Lookahead.airbench(steps=100)
    assert air.pull(0, 7) == 1.0 and air.pull(100, 7) == pytest.approx(1 - 0.95**5) and air.last(7) == 100
    assert air.pull(200, 7) == air.pull(100, 7)  # past `steps`, the last value


def test_resume_mid_interval_is_exact(rng, tmp_path):
    x, y = data(rng, 13)
    la = Lookahead(every=5, decay=0.6, power=1.0)
    whole = net_for(17, la, batch_size=4, shuffle=True)
    whole.train(x, y)
    ckpt = str(tmp_path / "ckpt-{iteration:02d}.safetensors")
    pointed = net_for(17, la, Waypoint(7, nf.checkpoint_to(ckpt)), batch_size=4, shuffle=True)
    pointed.train(x, y)
    for k in (7, 14):  # between pulls: the slow copy differs from the weights and must come from the file
        resumed = net_for(17, la, batch_size=4, shuffle=True)
        resumed.train(x, y, resume=tmp_path / f"ckpt-{k:02d}.safetensors")
        for a, b in zip([*whole.weights, *whole.state.values()], [*resumed.weights, *resumed.state.values()]):
            np.testing.assert_array_equal(a, b)
    loaded = nf.load(tmp_path / "ckpt-07.safetensors")
    assert loaded.settings.lookahead == la
    loaded.train(x, y, resume=True)
    for a, b in zip(whole.weights, loaded.weights):
        np.testing.assert_array_equal(a, b)


def test_a_file_without_its_slow_copy_is_refused(rng, tmp_path):
    from safetensors.numpy import load_file, save_file
    from safetensors import safe_open

    x, y = data(rng)
    net = net_for(3, Lookahead(every=2))
    net.train(x, y)
    path = net.save(tmp_path / "m.safetensors")
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    tensors = {k: v for k, v in load_file(str(path)).items() if not k.startswith("lookahead.")}
    save_file(tensors, str(tmp_path / "cut.safetensors"), metadata=meta)
    with pytest.raises(nf.io.modelfile.ModelFileError, match="lookahead.param"):
        nf.load(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("kw, match", [
    ({"every": 0}, "every"), ({"every": 2.5}, "every"), ({"decay": 1.0}, "decay"), ({"decay": -0.1}, "decay"),
    ({"power": -1}, "power"), ({"steps": 0}, "steps"), ({"decay": True}, "decay"),
])
def test_bad_lookahead_is_named(kw, match):
    with pytest.raises(ValueError, match=f"lookahead: {match}"):
        Lookahead(**kw)


def test_settings_refuse_what_is_not_a_lookahead():
    with pytest.raises(TypeError, match="lookahead: expected Lookahead"):
        Settings(lookahead=0.5)  # type: ignore[arg-type]


def test_gpu_lookahead_matches_cpu(rng):
    require_gpu()
    x, y = data(rng, 11)
    la = Lookahead(every=3, decay=0.7, power=2.0)
    cpu, gpu = (net_for(8, la, batch_size=4, shuffle=True, act=Tanh, backend=b) for b in ("cpu", "gpu"))
    cpu.train(x, y)
    gpu.train(x, y)
    for what, g, c in (("weights", gpu.weights, cpu.weights), ("state", gpu.state.values(), cpu.state.values())):
        for a, b in zip(g, c):
            assert_close(a, b, f"{what} after training with lookahead", 1e-4)

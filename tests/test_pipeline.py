"""The batch pipeline (rust/data.rs): a data set held once, batches gathered, converted,
normalised and augmented straight into the engine; the same batches for every engine and
thread count; reproducible and resumable runs with augmentation."""

import numpy as np
import pytest

import neuroflow as nf
from neuroflow import (
    Adam, Augment, BatchNorm, Convolution, Dense, Linear, MaxPool, Network, ReLU, Settings, SoftmaxLogEntropy, Waypoint,
)
from neuroflow import _core


def images(rng, n=13, shape=(8, 7, 3)):
    return rng.integers(0, 256, (n,) + shape, dtype=np.uint8), rng.integers(0, 4, n)


def net_for(dtype=np.float64, augment=None, norm=((0.5, 0.4, 0.45), (0.25, 0.3, 0.2)), iterations=9, **kw):
    layout = [Convolution((8, 7, 3), padding=1, field=3, filters=4, activator=Linear, bias=True), BatchNorm(activator=ReLU),
              MaxPool(2), Dense(4, Linear, bias=True), SoftmaxLogEntropy()]
    s = Settings(verbose=False, iterations=iterations, batch_size=4, update_rule=Adam(), learning_rate=0.01, dtype=dtype,
                 augment=augment, seed=3, **kw)
    return Network(layout, s, input_norm=norm)


AUG = Augment(translate=2, flip="alternate", cutout=3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("augment", [None, AUG, Augment(translate=1, flip="random", padding="zero")])
def test_gathering_in_the_engine_equals_gathering_in_python(dtype, augment, rng):
    """The CPU engine's fused path (gather, convert, normalise, augment into its input
    buffer) against the data set's gather handed to the plain train_step: bit-identical."""
    x, y = images(rng)
    a, b = net_for(dtype), net_for(dtype)
    t = np.eye(4)[y]
    data = _core.Dataset(x, t)
    js = None if augment is None else augment.to_json(3)
    for epoch, idx in enumerate([np.array([3, 0, 7, 12]), np.array([5, 5, 1, 9]), np.array([2, 11, 4, 8])]):
        la = a._engine.train_step_data(data, idx, 0.01, js, epoch)
        xb = data.gather(idx, js, epoch, a.dtype_name)
        lb = b._engine.train_step(xb, data.targets(idx).astype(dtype), 0.01)
        assert la == lb
    for p, q in zip(a.weights + list(a.state.values()), b.weights + list(b.state.values())):
        np.testing.assert_array_equal(p, q)


def test_gather_follows_its_definition(rng):
    x, y = images(rng, 5, (6, 5, 2))
    data = _core.Dataset(x, np.eye(4)[y])
    plain = data.gather(np.array([4, 0]), None, 0, "f64")
    np.testing.assert_allclose(plain, x[[4, 0]] / 255.0, rtol=1e-15)  # b·(1/255): within rounding of b/255
    flipped = data.gather(np.array([2, 2]), Augment(flip="alternate").to_json(1), 0, "f64")
    other = data.gather(np.array([2]), Augment(flip="alternate").to_json(1), 1, "f64")[0]
    # alternate flips: epoch 0 and 1 differ by one mirror along X
    assert np.array_equal(flipped[0], flipped[1])
    assert np.array_equal(other, flipped[0][::-1]) and not np.array_equal(other, flipped[0])
    assert {np.allclose(other, x[2] / 255.0, rtol=1e-15), np.allclose(flipped[0], x[2] / 255.0, rtol=1e-15)} == {True, False}
    assert data.fingerprint == _core.Dataset(x.copy(), np.eye(4)[y]).fingerprint
    x2 = x.copy()
    x2[3, 1, 1, 0] ^= 1
    assert data.fingerprint != _core.Dataset(x2, np.eye(4)[y]).fingerprint
    with pytest.raises(ValueError, match=r"indices: 5 is not a sample of this data set \(0..5\)"):
        data.gather(np.array([5]))


def test_the_data_set_is_read_not_copied(rng):
    x, y = images(rng, 4)
    data = _core.Dataset(x, np.eye(4)[y])
    assert x.flags.writeable, "the caller's array stays the caller's"
    del x  # the data set keeps what it reads alive
    assert data.gather(np.array([0, 3])).shape == (2, 8, 7, 3)


def test_augmented_runs_are_reproducible_and_resume_exactly(rng, tmp_path):
    x, y = images(rng)
    whole = net_for(augment=AUG, iterations=11)
    whole.train(x, y)
    again = net_for(augment=AUG, iterations=11)
    again.train(x, y)
    assert all(np.array_equal(p, q) for p, q in zip(whole.weights, again.weights))
    plain = net_for(iterations=11)
    plain.train(x, y)
    assert not np.array_equal(plain.weights[0], whole.weights[0]), "augmentation changes the run"
    ck = net_for(augment=AUG, iterations=11, waypoint=Waypoint(5, nf.checkpoint_to(str(tmp_path / "c{iteration}.st"))))
    ck.train(x, y)
    resumed = net_for(augment=AUG, iterations=11)
    resumed.train(x, y, resume=tmp_path / "c5.st")  # mid-epoch 1 (4 batches an epoch), the epoch counter restored
    for p, q in zip(resumed.weights + list(resumed.state.values()), whole.weights + list(whole.state.values())):
        np.testing.assert_array_equal(p, q)
    back = nf.load(tmp_path / "c10.st")
    assert back.settings.augment == AUG and back.input_norm == whole.input_norm


def test_threads_do_not_change_the_batches(rng):
    x, y = images(rng)
    runs = []
    for threads in (1, 2):
        nf.set_num_threads(threads)
        net = net_for(augment=AUG)
        net.train(x, y)
        runs.append(net.weights)
    nf.set_num_threads(2)
    for p, q in zip(*runs):
        np.testing.assert_array_equal(p, q)


def test_input_normalisation_is_part_of_the_network(rng):
    x, y = images(rng, 5)
    net = net_for()
    raw = net_for(norm=None)
    raw.weights = net.weights
    mean, std = np.array(net.input_norm[0]), np.array(net.input_norm[1])
    np.testing.assert_allclose(net(x), raw((x / 255.0 - mean) / std), rtol=1e-10)
    with pytest.raises(ValueError, match="input_norm: expected 3 means and 3 standard deviations"):
        net_for(norm=((0.5, 0.5), (1, 1, 1)))
    with pytest.raises(ValueError, match="input_norm: means must be finite and standard deviations positive"):
        net_for(norm=((0.5, 0.5, 0.5), (1, 0, 1)))


def test_bad_augmentation_is_refused_before_any_work(rng):
    with pytest.raises(ValueError, match='augment.flip: expected "none", "random" or "alternate", got \'sideways\''):
        Augment(flip="sideways")
    with pytest.raises(ValueError, match="augment.translate: expected a whole number ≥ 0 of pixels, got -1"):
        Augment(translate=-1)
    with pytest.raises(TypeError, match="augment: expected Augment"):
        Settings(augment={"translate": 2})
    x, y = images(rng)
    net = net_for(augment=Augment(translate=9))
    with pytest.raises(ValueError, match="augment.translate: 9 pixels is not less than the image's side 7"):
        net.train(x, y)
    assert net.iteration == 0
    flat = Network([Dense(2, Linear, dim_in=5), SoftmaxLogEntropy()], Settings(verbose=False, augment=Augment(flip="random")))
    with pytest.raises(ValueError, match=r"augment: images \(X, Y, Z\) are needed, the network takes \(5,\)"):
        flat.train(rng.uniform(0, 1, (4, 5)), [0, 1, 0, 1])


def test_augment_and_input_norm_reach_the_gpu_the_same_way(rng):
    """The GPU engine is handed the data set's gathered batches and normalises as the CPU
    engine does (the conformance suite checks input_norm on every engine)."""
    from gpu_parity import assert_close, require_gpu

    require_gpu()
    x, y = images(rng)
    gpu = Network(net_for().layout, net_for(dtype=np.float32, augment=AUG).settings, backend="gpu", input_norm=net_for().input_norm)
    cpu = net_for(dtype=np.float32, augment=AUG)
    gpu.weights = cpu.weights
    assert_close(gpu(x), cpu(x), "outputs")
    run_g, run_c = gpu.train(x, y), cpu.train(x, y)
    assert_close(run_g.losses[:3], run_c.losses[:3], "first losses", 1e-4)

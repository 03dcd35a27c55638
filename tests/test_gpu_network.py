"""Network(..., backend="gpu"): the same API and the same numbers as the CPU backend."""

import numpy as np

from gpu_parity import assert_close, require_gpu
from neuroflow import Convolution, Dense, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, Tanh, WeightBreeder


def layout():
    # a scaled-down glasses net, then a multi-filter layer (im2col path on the CPU)
    c0 = Convolution((22, 18, 3), padding=1, field=3, stride=1, filters=1, activator=ReLU.biased(0.05))
    c1 = Convolution(c0.dim_out, padding=1, field=4, stride=2, filters=6, activator=Tanh)
    c2 = Convolution(c1.dim_out, padding=0, field=1, stride=1, filters=3, activator=ReLU)
    return [c0, c1, c2, Dense(2, ReLU), SoftmaxLogEntropy()]


def test_gpu_network_matches_cpu(rng):
    require_gpu()
    breeder = WeightBreeder.normal(0.05, 0.3, seed=int(rng.integers(1 << 30)))
    settings = dict(learning_rate=2e-3, update_rule=Momentum(0.8), batch_size=7, iterations=6, seed=4, verbose=False)
    gpu = Network(layout(), Settings(**settings), weights=breeder, backend="gpu")
    cpu = Network(layout(), Settings(**settings, dtype=np.float32), weights=breeder, backend="cpu")
    assert gpu.backend == "gpu" and gpu.dtype == np.float32  # the default precision on a GPU
    x, y = rng.uniform(0.05, 1, (17, 22, 18, 3)).astype(np.float32), rng.integers(0, 2, 17)
    assert_close(gpu(x), cpu(x), "predict before training")
    for i in range(3):
        assert_close(gpu.focus(i)(x[:5]), cpu.focus(i)(x[:5]), f"focus {i}")
    for g, c in zip(gpu.gradients(x, y), cpu.gradients(x, y)):
        assert_close(g, c, "gradients")
    run_g, run_c = gpu.train(x, y), cpu.train(x, y)  # 17 samples, batches of 7: a partial batch too
    assert_close(run_g.losses, run_c.losses, "losses")
    for g, c in zip(gpu.weights, cpu.weights):
        assert_close(g, c, "weights after training")
    for g, c in zip(gpu.optimizer_state, cpu.optimizer_state):
        assert_close(g, c, "momentum after training")
    assert_close(gpu(x), cpu(x), "predict after training")
    assert abs(gpu.loss(x, y) - cpu.loss(x, y)) <= 1e-4 * abs(cpu.loss(x, y))


def test_auto_backend_uses_the_gpu_when_there_is_one():
    require_gpu()
    net = Network(layout(), Settings(verbose=False), backend="auto")
    assert net.backend == "gpu"

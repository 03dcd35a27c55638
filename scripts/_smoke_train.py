"""A small net trained on the CPU with the installed neuroflow; prints what ran where and
fails unless the loss fell. Used by scripts/aarch64-check.sh (under qemu-aarch64)."""

import json, platform
import numpy as np
import neuroflow as nf
from neuroflow import Convolution, Dense, Network, ReLU, Settings, SoftmaxLogEntropy, WeightBreeder
rng = np.random.default_rng(0)
xs = rng.uniform(0, 1, (24, 10, 8, 3))
ys = (xs[:, :5].mean(axis=(1, 2, 3)) > xs[:, 5:].mean(axis=(1, 2, 3))).astype(np.int64)
c0 = Convolution((10, 8, 3), padding=1, field=3, stride=1, filters=2, activator=ReLU)
net = Network([c0, Dense(2, ReLU), SoftmaxLogEntropy()],
              Settings(learning_rate=0.01, batch_size=8, iterations=30, verbose=False),
              weights=WeightBreeder.normal(0.05, 0.2, seed=3), backend="cpu")
before = float(net.loss(xs, ys)); net.train(xs, ys); after = float(net.loss(xs, ys))
import wgpu
print(json.dumps({"machine": platform.machine(), "version": nf.__version__, "before": before, "after": after, "wgpu": wgpu.__version__}))
assert after < before

"""How often does the article's glasses net learn? Trains its exact layout, init
distribution and settings (float64, 250 iterations) on the article's 20 avatars for
several seeds of the init draw, and prints loss and training accuracy per seed.

    python benchmarks/glasses_seeds.py [--seeds 0-11] [--data ../shared/datasets/avatars]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

from neuroflow import Convolution, Dense, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy, WeightBreeder
from neuroflow.datasets import image_folder


def main():
    default = Path(os.environ.get("NEUROFLOW_DATA", Path(__file__).resolve().parents[2] / "shared" / "datasets")) / "avatars"
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0-11")
    ap.add_argument("--data", default=str(default))
    args = ap.parse_args()
    lo, _, hi = args.seeds.partition("-")
    xs, ys, classes = image_folder(args.data)
    assert classes == ["glasses", "noglasses"], classes
    for seed in range(int(lo), int(hi or lo) + 1):
        c0 = Convolution(dim_in=xs.shape[1:], padding=1, field=3, stride=1, filters=1, activator=ReLU)
        c1 = Convolution(dim_in=c0.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
        c2 = Convolution(dim_in=c1.dim_out, padding=1, field=4, stride=2, filters=1, activator=ReLU)
        c3 = Convolution(dim_in=c2.dim_out, padding=1, field=3, stride=1, filters=1, activator=ReLU)
        weights = WeightBreeder.normal({0: (0, 0.1), 1: (0, 1), 2: (0, 0.1), 3: (0, 1), 4: (1e-4, 1e-4)}, seed=seed)
        net = Network([c0, c1, c2, c3, Dense(2, ReLU), SoftmaxLogEntropy()],
                      Settings(learning_rate=lambda i, a: 1e-3, update_rule=Momentum(0.8), batch_size=20,
                               iterations=250, dtype=np.float64, verbose=False), weights=weights)
        t = time.perf_counter()
        run = net.train(xs, ys)
        acc = float((net(xs).argmax(axis=1) == ys).mean())
        print(f"seed {seed:3d}: loss {run.losses[0]:.6f} -> {run.final_loss:.3g} after {run.iterations} iterations "
              f"({run.stopped_by}), training accuracy {acc:.0%}, {time.perf_counter() - t:.1f} s", flush=True)


if __name__ == "__main__":
    main()

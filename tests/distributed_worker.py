"""One rank of the distributed tests (tests/test_distributed.py runs it under mpiexec):

    mpiexec -n R python tests/distributed_worker.py SCENARIO OUT [options as JSON]

Each scenario builds the same small nets and data as the test (``make_net``, ``make_data``)
and writes what it finds into OUT (rank 0, or every rank where the test wants each)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from neuroflow import (BatchNorm, Convolution, Dense, Dropout, Linear, Momentum, Network, ReLU, Settings, SoftmaxLogEntropy,
                       Tanh, Waypoint)


def make_data(n: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6, 6, 2)), rng.integers(0, 3, n)


def make_net(kind: str = "plain", backend: str = "cpu", iterations: int = 7, batch: int = 8, dtype=np.float64, **kw) -> Network:
    """plain: conv, dropout, dense (mean reduction); bn: conv, BatchNorm, dense (sum)."""
    c0 = Convolution((6, 6, 2), padding=1, field=3, stride=1, filters=4, activator=Tanh if kind == "plain" else Linear,
                     bias=kind == "plain", name="c0")
    if kind == "plain":
        layout = [c0, Dropout(0.25), Dense(5, ReLU), Dense(3, Tanh), SoftmaxLogEntropy()]
        reduction = "mean"
    else:
        layout = [c0, BatchNorm(activator=ReLU), Dense(3, Tanh), SoftmaxLogEntropy()]
        reduction = "sum"
    settings = Settings(learning_rate=0.05, update_rule=Momentum(0.9), batch_size=batch, iterations=iterations,
                        reduction=reduction, seed=3, verbose=False, dtype=dtype, **kw)
    return Network(layout, settings, backend=backend)


def main() -> None:
    scenario, out = sys.argv[1], Path(sys.argv[2])
    opts = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    from neuroflow.distributed import Distributed

    dist = Distributed(sync_batchnorm=opts.get("sync", False), timeout=opts.get("timeout"),
                       check_every=opts.get("check_every", 1))
    xs, ys = make_data()
    dtype = np.float32 if opts.get("backend") == "gpu" else np.float64
    common = dict(backend=opts.get("backend", "cpu"), iterations=opts.get("iterations", 7), batch=opts.get("batch", 8),
                  dtype=dtype)

    if scenario == "train":
        net = make_net(opts.get("kind", "plain"), **common)
        run = net.train(xs, ys, distributed=dist)
        weights, state = net.weights, list(net.state.values())
        np.savez(out / f"rank{dist.rank}.npz", *weights, *state, losses=run.losses)
        net.save(out / "model.safetensors")
        if dist.rank == 0:
            (out / "info.json").write_text(json.dumps({"size": dist.size, "iterations": net.iteration,
                                                       "n_weights": len(weights), "stopped_by": run.stopped_by}))
    elif scenario == "checkpoint":  # train with a checkpoint every `every` iterations
        every = opts["every"]
        net = make_net(opts.get("kind", "plain"), waypoint=Waypoint(every, lambda i, n: n.save(out / f"ckpt-{i}.safetensors")),
                       **common)
        net.train(xs, ys, distributed=dist)
    elif scenario == "resume":
        net = make_net(opts.get("kind", "plain"), **common)
        net.train(xs, ys, resume=opts["from"], distributed=dist)
        np.savez(out / f"resumed-rank{dist.rank}.npz", *net.weights, *net.state.values())
    elif scenario == "fault":  # rank `who` dies (kill) or hangs (stop) in iteration `at`; checkpoints every 2
        who, at, how = opts["who"], opts["at"], opts["how"]

        def action(loss):
            if dist.rank == who and net.iteration == at:  # called once iteration `at` is done
                Path(out / f"{how}-rank{who}").write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL if how == "kill" else signal.SIGSTOP)

        net = make_net("plain", waypoint=Waypoint(2, lambda i, n: n.save(out / "checkpoint.safetensors")),
                       loss_func_output=action, **common)
        net.train(xs, ys, distributed=dist)
        (out / f"finished-rank{dist.rank}").write_text("")
    elif scenario == "disagree":  # each rank watches other validation labels, so their early stops would differ
        net = make_net("bn", **common)
        vy = ys if dist.rank == 0 else np.random.default_rng(dist.rank).integers(0, 3, len(ys))
        run = net.train(xs, ys, validation=(xs, vy), patience=1, distributed=dist)
        (out / f"rank{dist.rank}.json").write_text(json.dumps({"iterations": net.iteration, "stopped_by": run.stopped_by,
                                                               "epochs": len(run.extra["validation"])}))
    else:
        raise SystemExit(f"unknown scenario {scenario}")


if __name__ == "__main__":
    main()

"""NeuroFlow's Approximation on the GPU: gradients by central differences of the train-mode
loss, two forward passes per parameter (for checking backprop and for tiny nets; the CPU
engine does the same). Nothing the passes touch is state: running statistics stay, and
dropout draws the masks of the engine's current step in every pass.

The forward pass is recorded once and replayed for every perturbed value. Each perturbed
value is copied into place on the GPU from a buffer of prepared values, so a few hundred
values share one command buffer and one read-back, and each pass's per-sample losses are
copied out and summed on the host in float64, as the CPU engine sums them.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops

VALUES_PER_SUBMIT = 256  # bounds the work recorded into one command buffer


def central_differences(engine, ws, n: int, x, t, delta: float):
    """Returns (reduced loss, gradients shaped like the params) on the batch (x, t)."""
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta: must be positive and finite, got {delta}")
    gpu, net = engine._gpu, engine._net
    engine._upload(ws, n, x, t)
    rec = ops.Recorder(gpu, ws.cache)
    losses = engine._record_losses(rec, ws, n, train=True)
    body = rec.steps

    def evaluate(steps: list, out, slot: int) -> None:
        steps += body
        steps.append((losses, 0, out, 4 * slot * n, 4 * n))

    def reduce(v):
        return v.sum(axis=-1) / n if net.mean else v.sum(axis=-1)

    base = gpu.storage(4 * n, "fd-base")
    steps: list = []
    evaluate(steps, base, 0)
    ops.run(gpu, steps)
    loss = float(reduce(gpu.read(base, n).astype(np.float64)))
    grads = []
    for tensor, w in zip(net.params, engine.get_params()):
        flat = w.reshape(-1)
        g = np.empty(flat.size)
        for lo in range(0, flat.size, VALUES_PER_SUBMIT):
            idx = np.arange(lo, min(lo + VALUES_PER_SUBMIT, flat.size))
            # Per value: w + Δ, w − Δ, then w again to restore it; in f32 as the CPU engine.
            d = np.float32(delta)
            values = np.stack([flat[idx] + d, flat[idx] - d, flat[idx]], axis=1).astype(np.float32)
            src = gpu.storage(values.nbytes, "fd-values")
            gpu.write(src, values)
            out = gpu.storage(4 * 2 * len(idx) * n, "fd-losses")
            steps = []
            for j, i in enumerate(idx):
                at = 4 * (tensor.offset + int(i))
                for sign in range(2):
                    steps.append((src, 4 * (3 * j + sign), engine._w, at, 4))
                    evaluate(steps, out, 2 * j + sign)
                steps.append((src, 4 * (3 * j + 2), engine._w, at, 4))
            ops.run(gpu, steps)
            both = reduce(gpu.read(out, 2 * len(idx) * n).astype(np.float64).reshape(len(idx), 2, n))
            g[idx] = (both[:, 0] - both[:, 1]) / (2 * delta)
        grads.append(g.astype(np.float32).reshape(w.shape))
    return loss, grads

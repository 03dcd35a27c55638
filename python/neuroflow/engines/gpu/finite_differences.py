"""NeuroFlow's Approximation on the GPU: gradients by central differences, two forward
passes per weight (for checking backprop and for tiny nets; the CPU engine does the same).

The forward pass is recorded once and replayed for every perturbed weight. Each perturbed
value is copied into place on the GPU from a buffer of prepared values, so a few hundred
weights share one command buffer and one read-back, and each pass's per-sample losses are
copied out and summed on the host in float64, as the CPU engine sums them.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops

WEIGHTS_PER_SUBMIT = 256  # bounds the work recorded into one command buffer


def central_differences(engine, ws, n: int, x, t, delta: float):
    """Returns (reduced loss, gradients shaped like the weights) on the batch (x, t)."""
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta: must be positive and finite, got {delta}")
    gpu, spec = engine._gpu, engine._s
    engine._upload(ws, n, x, t)
    # One forward and loss over every chunk, losses copied to `losses` row `c`.
    rec = ops.Recorder(gpu, ws.cache)
    chunks = []
    for c, rows in engine._chunks(ws, n):
        start = len(rec.steps)
        engine._load_chunk(rec, ws, n, c, rows, True)
        engine._forward(rec, ws, rows, len(spec.layers) - 1)
        engine._loss(rec, ws, rows)
        chunks.append((rec.steps[start:], c, rows))

    def evaluate(steps: list, out, slot: int) -> None:
        for body, c, rows in chunks:
            steps += body
            steps.append((ws["losses"], 0, out, 4 * (slot * n + c), 4 * rows))

    def reduce(v):
        return v.sum(axis=-1) / n if spec.mean else v.sum(axis=-1)

    base = gpu.storage(4 * n, "fd-base")
    steps = []
    evaluate(steps, base, 0)
    ops.run(gpu, steps)
    loss = float(reduce(gpu.read(base, n).astype(np.float64)))
    grads = []
    for w_buf, w in zip(engine._w, engine.get_weights()):
        flat = w.reshape(-1)
        g = np.empty(flat.size)
        for lo in range(0, flat.size, WEIGHTS_PER_SUBMIT):
            idx = np.arange(lo, min(lo + WEIGHTS_PER_SUBMIT, flat.size))
            # Per weight: w + Δ, w − Δ, then w again to restore it; in f32 as the CPU engine.
            d = np.float32(delta)
            values = np.stack([flat[idx] + d, flat[idx] - d, flat[idx]], axis=1).astype(np.float32)
            src = gpu.storage(values.nbytes, "fd-values")
            gpu.write(src, values)
            out = gpu.storage(4 * 2 * len(idx) * n, "fd-losses")
            steps = []
            for j, i in enumerate(idx):
                for sign in range(2):
                    steps.append((src, 4 * (3 * j + sign), w_buf, 4 * int(i), 4))
                    evaluate(steps, out, 2 * j + sign)
                steps.append((src, 4 * (3 * j + 2), w_buf, 4 * int(i), 4))
            ops.run(gpu, steps)
            both = reduce(gpu.read(out, 2 * len(idx) * n).astype(np.float64).reshape(len(idx), 2, n))
            g[idx] = (both[:, 0] - both[:, 1]) / (2 * delta)
        grads.append(g.astype(np.float32).reshape(w.shape))
    return loss, grads

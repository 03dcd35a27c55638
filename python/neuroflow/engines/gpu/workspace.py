"""The per-batch GPU buffers of an engine: inputs, activations, deltas, im2col matrix.

A workspace holds `cap` samples (one chunk). Larger batches run as several chunks recorded
into the same command encoder, their weight gradients accumulated, so no buffer ever
exceeds the device's binding limit. Buffers and the bind groups over them are made once
per capacity and reused for every step.
"""

from __future__ import annotations

import os

from .device import Gpu
from .kernels import Cache
from .spec import Spec

# Bytes of chunk buffers (NEUROFLOW_GPU_WORKSPACE_BYTES overrides): plenty of samples at
# once to keep a large GPU busy, little enough to leave memory for everything else.
DEFAULT_BUDGET = 512 << 20


def per_sample(spec: Spec) -> dict:
    """Floats per sample of each chunk buffer."""
    sizes = {"x": spec.layers[0].in_size, "t": spec.layers[-1].out_size, "losses": 1}
    for i, layer in enumerate(spec.layers):
        for kind in "sad":
            sizes[f"{kind}{i}"] = layer.out_size
    col = max(layer.col_size for layer in spec.layers)
    if col:
        sizes["col"] = col
    return sizes


def chunk_capacity(gpu: Gpu, spec: Spec, limit: int | None = None) -> int:
    """The most samples one chunk may hold on this device."""
    sizes = per_sample(spec)
    biggest = max(sizes, key=sizes.get)
    if sizes[biggest] * 4 > gpu.max_binding:
        raise ValueError(
            f"one sample needs {sizes[biggest] * 4} bytes for buffer {biggest!r}, above this GPU's "
            f"storage binding limit of {gpu.max_binding} bytes ({gpu.info['name']})"
        )
    raw = os.environ.get("NEUROFLOW_GPU_WORKSPACE_BYTES", str(DEFAULT_BUDGET))
    try:
        budget = int(raw)
    except ValueError:
        raise ValueError(f"NEUROFLOW_GPU_WORKSPACE_BYTES: expected a number of bytes, got {raw!r}") from None
    cap = min(gpu.max_binding // (4 * sizes[biggest]), max(1, budget // (4 * sum(sizes.values()))))
    return max(1, min(cap, limit or cap))


class Workspace:
    def __init__(self, gpu: Gpu, spec: Spec, cap: int):
        self.gpu, self.cap = gpu, cap
        self.cache = Cache(gpu)
        self.buf = {name: gpu.storage(4 * n * cap, name) for name, n in per_sample(spec).items()}
        self.buf["out"] = gpu.storage(16, "out")
        self._batch: dict[str, object] = {}
        self.programs: dict[tuple, list] = {}  # recorded steps per (call, batch size)

    def __getitem__(self, name: str):
        return self.buf[name]

    def batch(self, name: str, nbytes: int):
        """A whole-batch buffer (inputs, losses, outputs) when a batch spans several chunks."""
        b = self._batch.get(name)
        if b is None or b.size < nbytes:
            b = self._batch[name] = self.gpu.storage(nbytes, name)
            self.programs.clear()  # recorded programs point at the old buffer
        return b

    def poison(self, value: float) -> None:
        for b in list(self.buf.values()) + list(self._batch.values()):
            self.gpu.fill(b, value)

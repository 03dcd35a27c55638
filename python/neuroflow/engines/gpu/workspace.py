"""The per-batch GPU buffers of an engine: inputs, targets, every layer's activations and
deltas (named `<key><uid>`, e.g. `a3`, `d3`, `s3`). Convolutions are implicit GEMMs: there
is no column buffer, so no buffer is larger than one layer's activations of a chunk.

A workspace holds `cap` samples (one chunk). Larger batches run as several chunks recorded
into the same command encoder, their parameter gradients accumulated, so no buffer
exceeds the device's binding limit — except where a pass couples the samples of a batch
(batch statistics in train mode): then the workspace is sized to the whole batch, or the
call is refused with the limit named. Buffers and the bind groups over them are made once
per capacity and reused for every step.
"""

from __future__ import annotations

import os

from .device import Buffer, CapacityError, Gpu
from .kernels import Cache
from .spec import Net

# Bytes of one chunk's buffers (NEUROFLOW_GPU_WORKSPACE_BYTES overrides): the device's
# largest storage binding, within [512 MiB, 4 GiB]. WebGPU reports no memory size; a device
# that binds 4 GiB at once (an H100/H200 through Vulkan) holds a CIFAR net's batch of 128 in
# one chunk, and a software or small device keeps the 512 MiB that suits it.
MIN_BUDGET = 512 << 20
MAX_BUDGET = 4 << 30


def budget(gpu: Gpu | None = None) -> int:
    raw = os.environ.get("NEUROFLOW_GPU_WORKSPACE_BYTES", "").strip()
    if raw:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"NEUROFLOW_GPU_WORKSPACE_BYTES: expected a number of bytes, got {raw!r}") from None
    if gpu is None:
        return MIN_BUDGET
    return max(MIN_BUDGET, min(gpu.max_binding, gpu.max_buffer, MAX_BUDGET))


def per_sample(net: Net) -> dict:
    """Floats per sample of each chunk buffer."""
    sizes = {"x": net.in_size, "t": net.last.out_size, "losses": 1}
    for layer in net.walk:
        for key, n in layer.buffers().items():
            sizes[f"{key}{layer.uid}"] = n
    return sizes


def fixed(net: Net) -> dict:
    """Floats of the buffers whose size does not depend on the batch."""
    sizes = {"out": 4}
    for layer in net.walk:
        for key, n in layer.fixed().items():
            sizes[f"{key}{layer.uid}"] = n
    return sizes


def _check_sample(gpu: Gpu, net: Net) -> None:
    sizes = per_sample(net)
    biggest = max(sizes, key=sizes.__getitem__)
    if sizes[biggest] * 4 > gpu.max_binding:
        raise CapacityError(
            f"one sample needs {sizes[biggest] * 4} bytes for buffer {biggest!r}, above this GPU's "
            f"storage binding limit of {gpu.max_binding} bytes ({gpu.info['name']})"
        )


def chunk_capacity(gpu: Gpu, net: Net, limit: int | None = None) -> int:
    """The most samples one chunk may hold on this device."""
    _check_sample(gpu, net)
    sizes = per_sample(net)
    cap = min(gpu.max_binding // (4 * max(sizes.values())), max(1, budget(gpu) // (4 * sum(sizes.values()))))
    return max(1, min(cap, limit or cap))


def whole_batch_check(gpu: Gpu, net: Net, n: int, why: str) -> None:
    """Refuse a batch that must be processed whole when one of its buffers cannot be bound."""
    sizes = per_sample(net)
    name = max(sizes, key=sizes.__getitem__)
    need = 4 * n * sizes[name]
    if need > gpu.max_binding:
        most = gpu.max_binding // (4 * sizes[name])
        raise CapacityError(
            f"a batch of {n} samples must be processed whole ({why}), but its buffer {name!r} would "
            f"need {need} bytes, above this GPU's storage binding limit of {gpu.max_binding} bytes "
            f"({gpu.info['name']}); use batches of at most {most} samples"
        )


class Workspace:
    def __init__(self, gpu: Gpu, net: Net, cap: int):
        self.gpu, self.cap = gpu, cap
        self.cache = Cache(gpu)
        self.buf = {name: gpu.storage(4 * n * cap, name) for name, n in per_sample(net).items()}
        self.buf.update({name: gpu.storage(4 * n, name) for name, n in fixed(net).items()})
        self._batch: dict[str, Buffer] = {}
        self.programs: dict[tuple, tuple] = {}  # recorded steps per (call, batch size, …)

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

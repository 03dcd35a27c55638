"""WGSL kernels: loading the shader files, compiled pipelines, and the per-shape caches.

A kernel is one entry point of one `shaders/<op>.wgsl` file with an explicit bind-group
layout (binding 0 is always the op's uniform parameters), so bind groups can be cached and
reused across steps. Pipelines live on the shared device; parameter buffers and bind
groups live in a `Cache` owned by whoever owns the buffers they point at.
"""

from __future__ import annotations

import importlib.resources
import struct
from pathlib import Path

from .device import Gpu

# (shader, entry point) -> binding kinds, in binding order.
LAYOUTS = {
    # gemm binds A and B twice: as f32 and as vec4 (for aligned loads).
    ("gemm", "main"): ("uniform", "read", "read", "rw", "read", "read"),
    ("gemm", "small"): ("uniform", "read", "read", "rw", "read", "read"),
    ("gemm_splits", "main"): ("uniform", "read", "rw"),
    ("im2col", "main"): ("uniform", "read", "rw"),
    ("col2im", "main"): ("uniform", "read", "rw"),
    ("act", "forward"): ("uniform", "read", "rw"),
    ("act", "backward"): ("uniform", "read", "rw"),
    ("loss", "loss_grad"): ("uniform", "read", "read", "rw", "rw"),
    ("softmax", "main"): ("uniform", "read", "rw"),
    ("update", "vanilla"): ("uniform", "uniform", "rw", "read"),
    ("update", "momentum"): ("uniform", "uniform", "rw", "read", "rw"),
    ("update", "nesterov"): ("uniform", "uniform", "rw", "read", "rw"),
    ("reduce", "sum"): ("uniform", "read", "rw"),
}

ELEMENTWISE_GROUP = 256  # invocations per workgroup of the element-wise kernels


def _shader_dirs():
    """The installed package's shaders (wheel: neuroflow/shaders/), then the repo's."""
    try:
        yield importlib.resources.files("neuroflow") / "shaders"
    except (ModuleNotFoundError, TypeError):
        pass
    yield Path(__file__).resolve().parents[4] / "shaders"


def shader_source(name: str) -> str:
    for folder in _shader_dirs():
        f = folder / f"{name}.wgsl"
        if f.is_file():
            return f.read_text(encoding="utf-8")
    raise FileNotFoundError(
        f"shader {name}.wgsl not found in the installed package (neuroflow/shaders/) "
        "nor in the source tree's shaders/ folder"
    )


class Kernel:
    """A compute pipeline with its explicit bind-group layout."""

    def __init__(self, gpu: Gpu, shader: str, entry: str, constants: dict | None = None):
        wgpu = gpu.wgpu
        self.name = f"{shader}.{entry}" + "".join(f".{k}={v}" for k, v in sorted((constants or {}).items()))
        self.kinds = LAYOUTS[(shader, entry)]
        kind = {
            "uniform": {"type": wgpu.BufferBindingType.uniform},
            "read": {"type": wgpu.BufferBindingType.read_only_storage},
            "rw": {"type": wgpu.BufferBindingType.storage},
        }
        # Layouts are shared by kinds, so one bind group serves every kernel alike in shape.
        lkey = ("layout", self.kinds)
        if lkey not in gpu.kernels:
            gpu.kernels[lkey] = gpu.device.create_bind_group_layout(
                entries=[
                    {"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": kind[k]}
                    for i, k in enumerate(self.kinds)
                ]
            )
        self.layout = gpu.kernels[lkey]
        module = _module(gpu, shader)
        stage = {"module": module, "entry_point": entry}
        if constants:
            stage["constants"] = {k: float(v) for k, v in constants.items()}
        self.pipeline = gpu.device.create_compute_pipeline(
            layout=gpu.device.create_pipeline_layout(bind_group_layouts=[self.layout]),
            compute=stage,
            label=self.name,
        )


def _module(gpu: Gpu, shader: str):
    key = ("module", shader)
    if key not in gpu.kernels:
        gpu.kernels[key] = gpu.device.create_shader_module(code=shader_source(shader), label=shader)
    return gpu.kernels[key]


def kernel(gpu: Gpu, shader: str, entry: str = "main", **constants) -> Kernel:
    """The compiled kernel, created once per device."""
    key = (shader, entry, tuple(sorted(constants.items())))
    k = gpu.kernels.get(key)
    if k is None:
        k = gpu.kernels[key] = Kernel(gpu, shader, entry, constants)
    return k


def pack(*values) -> bytes:
    """Uniform parameters: Python ints as u32, floats as f32, padded to 16 bytes."""
    fmt = "".join("I" if isinstance(v, (int, bool)) else "f" for v in values)
    data = struct.pack("<" + fmt, *values)
    return data + bytes(-len(data) % 16)


class Cache:
    """Parameter buffers (deduplicated by content) and bind groups (by the buffers they
    bind). Whoever owns the buffers owns the cache, so both go away together."""

    def __init__(self, gpu: Gpu):
        self.gpu = gpu
        self._params: dict[bytes, object] = {}
        self._groups: dict[tuple, tuple] = {}
        self._scratch: dict[str, object] = {}

    def params(self, *values):
        data = pack(*values)
        buf = self._params.get(data)
        if buf is None:
            buf = self._params[data] = self.gpu.uniform(data)
        return buf

    def scratch(self, name: str, nbytes: int):
        """A buffer reused by every op that needs `name` as temporary space; it only grows
        (dispatches recorded earlier keep the smaller one alive through their bind groups)."""
        buf = self._scratch.get(name)
        if buf is None or buf.size < nbytes:
            buf = self._scratch[name] = self.gpu.storage(nbytes, name)
        return buf

    def bind(self, k: Kernel, buffers) -> object:
        # Keyed by buffer identity; the entry keeps the buffers alive so ids stay unique.
        key = (id(k.layout),) + tuple(id(b) for b in buffers)
        hit = self._groups.get(key)
        if hit is None:
            if len(buffers) != len(k.kinds):
                raise ValueError(f"{k.name} takes {len(k.kinds)} bindings, got {len(buffers)}")
            group = self.gpu.device.create_bind_group(
                layout=k.layout,
                entries=[
                    {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}}
                    for i, b in enumerate(buffers)
                ],
            )
            hit = self._groups[key] = (group, tuple(buffers))
        return hit[0]

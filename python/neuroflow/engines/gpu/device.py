"""One shared wgpu device per process, and the buffer helpers every GPU op uses.

The adapter is picked once: `NEUROFLOW_GPU_ADAPTER` (a case-insensitive substring of the
adapter's name); else, in a process an MPI launcher started (a local rank in the
environment) on a host with several discrete GPUs, the local rank's one (round robin);
else wgpu's high-performance choice. Only the native backends (Vulkan,
Metal, DX12) are enabled unless `NEUROFLOW_GPU_BACKENDS` says otherwise: wgpu would
otherwise pick Mesa's OpenGL adapter on some machines, which blocks on every submit.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

# A wgpu GPUBuffer. wgpu-py ships no type information (pyproject.toml lets mypy import it
# untyped), so its objects are `Any` here; the alias says which kind of object is meant.
Buffer = Any

STORAGE_ALIGN = 16  # bytes: buffers are rounded up so they may also be bound as vec4 arrays

_lock = threading.Lock()
_gpu: Gpu | None = None
_backends_set = False

INSTALL_HINT = (
    "wgpu needs a Vulkan, Metal or DX12 driver. On Linux install your GPU's Vulkan driver "
    "and loader; for a software GPU on Debian/Ubuntu: `apt-get install mesa-vulkan-drivers "
    "libvulkan1`. Check with neuroflow.gpu.adapters()."
)


class CapacityError(ValueError):
    """A size beyond this device's limits (a buffer or binding too large). backend="auto"
    raises it instead of falling back to the CPU: sizes that large are a layout's or a
    batch's mistake, and the CPU would only run out of memory later."""


class BufferTooLarge(CapacityError, RuntimeError):
    """A buffer above the device's largest (still a RuntimeError, as it always was)."""


def _wgpu():
    try:
        import wgpu
    except ImportError as e:  # the GPU backend is an optional extra
        raise RuntimeError("the GPU backend needs wgpu-py: `pip install 'wgpu>=0.32,<0.33'`") from e
    return wgpu


def _select_backends(wgpu) -> None:
    """Restrict wgpu's instance to the native backends, once, before it is created."""
    global _backends_set
    if _backends_set:
        return
    _backends_set = True
    names = os.environ.get("NEUROFLOW_GPU_BACKENDS", "Primary")
    backends = [b.strip() for b in names.split(",") if b.strip()]
    try:
        from wgpu.backends.wgpu_native import extras

        extras.set_instance_extras(backends=backends)
    except KeyError as e:
        raise RuntimeError(
            f"NEUROFLOW_GPU_BACKENDS={names!r}: unknown backend {e}; "
            "use Vulkan, Metal, DX12, GL, Primary or All"
        ) from None
    except Exception:  # the instance already exists (someone used wgpu first): keep it
        pass


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise RuntimeError(f"{name}: expected a positive integer, got {raw!r}") from None
    if v < 1:
        raise RuntimeError(f"{name}: expected a positive integer, got {raw!r}")
    return v


def _describe(adapter) -> dict:
    info = adapter.info
    return {
        "name": info.get("device", ""),
        "backend": info.get("backend_type", ""),
        "adapter_type": info.get("adapter_type", ""),
        "vendor": info.get("vendor", ""),
        "description": info.get("description", ""),
    }


def adapters() -> list[dict]:
    """Every adapter wgpu sees on the enabled backends: name, backend, adapter_type, ..."""
    wgpu = _wgpu()
    _select_backends(wgpu)
    return [_describe(a) for a in wgpu.gpu.enumerate_adapters_sync()]


# What MPI launchers (Open MPI, MPICH's Hydra, Intel MPI) and SLURM call a process's rank on its host.
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID")


def _local_rank() -> int | None:
    for name in LOCAL_RANK_VARS:
        value = os.environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return None


def _request_adapter(wgpu):
    wanted = os.environ.get("NEUROFLOW_GPU_ADAPTER", "").strip()
    if wanted:
        found = wgpu.gpu.enumerate_adapters_sync()
        for a in found:
            if wanted.lower() in _describe(a)["name"].lower():
                return a
        if found:
            names = ", ".join(_describe(a)["name"] for a in found)
            hint = "set it to part of one of these names, or unset it"
            raise RuntimeError(f"no GPU adapter's name contains NEUROFLOW_GPU_ADAPTER={wanted!r}; found: {names}; {hint}")
        raise RuntimeError(f"no GPU adapter found (looked for one named like {wanted!r}). {INSTALL_HINT}")
    local = _local_rank()
    if local is not None:  # data-parallel ranks on one host: one discrete GPU each, where there are several
        gpus = [a for a in wgpu.gpu.enumerate_adapters_sync() if _describe(a)["adapter_type"].lower().startswith("discrete")]
        if len(gpus) > 1:
            return gpus[local % len(gpus)]
    try:
        return wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except Exception as e:
        backends = os.environ.get("NEUROFLOW_GPU_BACKENDS", "Primary")
        raise RuntimeError(
            f"no GPU adapter found (looked for any adapter on the {backends} backends). "
            f"{INSTALL_HINT} ({e})"
        ) from None


class Gpu:
    """The adapter, the device and its queue, with the limits this package relies on."""

    _tuning: dict | None = None  # ops._tuning's pinned gemm choices, read once per device

    def __init__(self) -> None:
        wgpu = _wgpu()
        _select_backends(wgpu)
        self.wgpu = wgpu
        self.adapter = _request_adapter(wgpu)
        self.info = _describe(self.adapter)
        lim = self.adapter.limits
        # Ask for the adapter's own buffer limits: the WebGPU defaults (128 MiB bindings,
        # 256 MiB buffers) would cap the batch far below what a real card holds.
        # Likewise the workgroup memory (gemm's larger tiles double-buffer more than the
        # default 16 KiB).
        wanted = {
            "max-storage-buffer-binding-size": lim["max-storage-buffer-binding-size"],
            "max-buffer-size": lim["max-buffer-size"],
            "max-compute-workgroup-storage-size": lim["max-compute-workgroup-storage-size"],
        }
        # GPU timestamps where the adapter has them (the device check times kernels with them)
        features = [f for f in ("timestamp-query",) if f in self.adapter.features]
        self.device = self.adapter.request_device_sync(required_features=features, required_limits=wanted)
        self.features = set(self.device.features)
        self.queue = self.device.queue
        self.configure(self.info, dict(self.device.limits))

    def configure(self, info: dict, limits: dict) -> None:
        """What the package derives from the device's limits (also used by the benchmarks'
        simulated devices, which have limits but no device)."""
        self.info, self.limits = info, limits
        # Sizes are kept 4-byte aligned and under 2^32 elements' worth of u32 indexing.
        self.max_binding = min(limits["max-storage-buffer-binding-size"], 2**32 - 4) // 4 * 4
        self.max_buffer = min(limits["max-buffer-size"], 2**34) // 4 * 4
        self.max_groups = limits["max-compute-workgroups-per-dimension"]
        # Workgroups worth keeping in flight; gemm splits K when it has fewer blocks.
        # WebGPU does not report the number of cores, so this is a generous guess for a
        # discrete GPU and a small one for a CPU adapter, where splitting only adds work.
        self.parallelism = 16 if info["adapter_type"] == "CPU" else 1024
        # Workgroups of a gemm that fill the device: about two 256-invocation workgroups
        # per streaming multiprocessor of a large discrete GPU (an H100 has 132); a CPU
        # adapter runs a few at once. NEUROFLOW_GPU_FILL overrides (the device check
        # measures it).
        cpu = info["adapter_type"] == "CPU"
        self.gemm_fill = _env_int("NEUROFLOW_GPU_FILL", 8 if cpu else 264)
        self.workgroup_storage = limits.get("max-compute-workgroup-storage-size", 16384)
        self.max_invocations = limits.get("max-compute-invocations-per-workgroup", 256)
        self.kernels: dict[tuple, Any] = {}  # kernels.py keeps compiled pipelines here

    def storage(self, nbytes: int, label: str = ""):
        """A storage buffer that can also be copied to and from."""
        u = self.wgpu.BufferUsage
        size = max(STORAGE_ALIGN, -(-int(nbytes) // STORAGE_ALIGN) * STORAGE_ALIGN)
        if size > self.max_buffer:
            raise BufferTooLarge(
                f"GPU buffer {label or ''} of {nbytes} bytes exceeds this device's limit of "
                f"{self.max_buffer} bytes ({self.info['name']}); use smaller batches"
            )
        return self.device.create_buffer(
            size=size, usage=u.STORAGE | u.COPY_SRC | u.COPY_DST, label=label
        )

    def uniform(self, data: bytes):
        u = self.wgpu.BufferUsage
        buf = self.device.create_buffer(size=len(data), usage=u.UNIFORM | u.COPY_DST)
        self.queue.write_buffer(buf, 0, data)
        return buf

    def write(self, buf, array: np.ndarray, offset: int = 0) -> None:
        self.queue.write_buffer(buf, offset, np.ascontiguousarray(array))

    def read(self, buf, count: int, offset: int = 0, dtype=np.float32) -> np.ndarray:
        """Blocks until the GPU has finished the work that writes `buf`."""
        itemsize = np.dtype(dtype).itemsize
        data = self.queue.read_buffer(buf, offset, count * itemsize)
        return np.frombuffer(data, dtype=dtype, count=count).copy()

    def readback(self, nbytes: int = 16):
        """A buffer the GPU copies results into and the host maps to read them (kept for an
        engine's lifetime: no staging buffer made per read)."""
        u = self.wgpu.BufferUsage
        return self.device.create_buffer(size=nbytes, usage=u.MAP_READ | u.COPY_DST, label="readback")

    def read_mapped(self, buf, count: int, dtype=np.float32) -> np.ndarray:
        """Map a readback buffer (blocks until the GPU has written it), read, unmap."""
        itemsize = np.dtype(dtype).itemsize
        buf.map_sync(self.wgpu.MapMode.READ, 0, buf.size)
        try:
            data = buf.read_mapped(0, count * itemsize, copy=True)
        finally:
            buf.unmap()
        return np.frombuffer(data, dtype=dtype, count=count).copy()

    def fill(self, buf, value: float) -> None:
        """Write `value` into every float of `buf` (tests poison outputs with NaN)."""
        self.write(buf, np.full(buf.size // 4, value, dtype=np.float32))


def get_gpu() -> Gpu:
    """The process's shared device (created on first use); RuntimeError if there is none."""
    global _gpu
    with _lock:
        if _gpu is None:
            _gpu = Gpu()
        return _gpu


def is_available() -> bool:
    """Whether a GPU adapter (hardware or software) can be opened."""
    try:
        get_gpu()
    except RuntimeError:
        return False
    return True

"""neuroflow's GPU backend: WGSL compute shaders driven through wgpu-py.

`GpuEngine` answers the engine contract of docs/engine.md (float32) on any adapter wgpu
finds: Vulkan, Metal or DX12, hardware or software (Mesa's lavapipe). Choose an adapter
with NEUROFLOW_GPU_ADAPTER=<part of its name>; list them with `adapters()`.
"""

from .device import adapters, get_gpu, is_available
from .engine import GpuEngine

__all__ = ["GpuEngine", "adapters", "get_gpu", "is_available"]

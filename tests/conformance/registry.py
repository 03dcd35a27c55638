"""The engines the conformance suite runs: each with the dtype it is given and the relative
tolerance it is held to against the float64 reference engine.

Tolerances, relative to the largest reference value of each compared array: float64
engines 1e-10 (each side rounds at 1.1e-16 per operation; measured on every case, the CPU
engine's forward, gradients and three training steps agree to 3e-15, so 1e-10 has a wide
margin yet catches any formula slip, which shows at 1e-3 or more); float32 engines 1e-4
(the project's GPU parity standard: float32 rounds at 6e-8; measured, CPU f32 and the GPU
on lavapipe agree to 5e-7 in forward and gradients and 3e-6 after three Adam steps).

Only a missing GPU adapter may skip (tests/gpu_parity.require_gpu, which fails instead
when CI is set); an engine that refuses a case, or lacks a method, fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class EngineKind:
    name: str
    dtype: str  # the spec's dtype: "f32" or "f64"
    make: Callable[[str], object]
    rtol: float

    @property
    def np_dtype(self):
        return np.float32 if self.dtype == "f32" else np.float64

    @property
    def eps(self) -> float:
        return float(np.finfo(self.np_dtype).eps)

    @property
    def fd_delta(self) -> float:
        """Central-difference step: truncation δ² against rounding ε/δ (1e-6 in f64, 1e-2 in f32)."""
        return 1e-6 if self.dtype == "f64" else 1e-2


def _reference(spec_json: str):
    from neuroflow.engines.reference import ReferenceEngine

    return ReferenceEngine(spec_json)


def _cpu(spec_json: str):
    from neuroflow import _core

    return _core.Engine(spec_json)


def _gpu(spec_json: str):
    from gpu_parity import require_gpu

    require_gpu()
    from neuroflow.engines.gpu import GpuEngine

    return GpuEngine(spec_json)


ENGINES = {
    e.name: e
    for e in (
        EngineKind("reference", "f64", _reference, 1e-10),
        EngineKind("cpu-f64", "f64", _cpu, 1e-10),
        EngineKind("cpu-f32", "f32", _cpu, 1e-4),
        EngineKind("gpu", "f32", _gpu, 1e-4),
    )
}

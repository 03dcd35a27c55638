"""The one parity helper every GPU test goes through, and the device the tests share.

`parity` draws fresh random float32 inputs (never zeros), runs the GPU side with its
output buffers poisoned (NaN) so an element no kernel writes cannot pass, runs the
reference on the same inputs, and asserts max|gpu − ref| ≤ 1e-4 · max|ref| per output.
The GPU side is either one kernel (`kernel_run`) or one engine method (`engine_run`).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

RTOL = 1e-4
POISON = float("nan")


def require_gpu():
    """The process's shared GPU; skips without one, and fails when env var CI is set."""
    try:
        from neuroflow.gpu.device import get_gpu

        return get_gpu()
    except RuntimeError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but no GPU adapter is usable: {e}")
        pytest.skip(f"no GPU adapter: {e}")


def random(rng, shape, low=0.1, high=1.0):
    """Uniform magnitudes in [low, high) with random signs: never zero."""
    v = rng.uniform(low, high, size=shape) * rng.choice([-1.0, 1.0], size=shape)
    return v.astype(np.float32)


def assert_close(got, want, what: str, rtol: float = RTOL) -> None:
    got, want = np.asarray(got), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    bad = ~np.isfinite(got)
    assert not bad.any(), f"{what}: {bad.sum()} of {got.size} elements not finite (unwritten?) at {np.argwhere(bad)[:5].tolist()}"
    scale = max(np.abs(want).max(initial=0.0), 1e-30)
    err = np.abs(got - want).max(initial=0.0) / scale
    worst = np.unravel_index(np.abs(got - want).argmax(), got.shape) if got.size else ()
    assert err <= rtol, f"{what}: max error {err:.3g} relative to max|ref| {scale:.3g} > {rtol} (worst at {worst}: {got[worst]} vs {want[worst]})"


def parity(gpu_run, reference, inputs: dict, *, rng=None, rtol: float = RTOL, what: str = "") -> dict:
    """inputs: name -> shape (random non-zero float32 drawn here from `rng`, the tests'
    seeded fixture, else fresh entropy) or a given array. gpu_run(arrays) and
    reference(arrays) return dicts of outputs; gpu_run must poison its outputs with
    POISON before it runs. Returns the GPU outputs."""
    rng = rng if rng is not None else np.random.default_rng()
    arrays = {k: (random(rng, v) if isinstance(v, tuple) else v) for k, v in inputs.items()}
    got = gpu_run(arrays)
    want = reference(arrays)
    assert set(got) == set(want), f"{what}: outputs {sorted(got)} vs reference {sorted(want)}"
    for name in want:
        assert_close(got[name], want[name], f"{what} {name}".strip(), rtol)
    return got


def kernel_run(gpu, record, outputs: dict, inout: tuple = (), dtypes: dict | None = None):
    """A gpu_run for single kernels: uploads every input array to its own buffer, makes
    each output (name -> shape) a NaN-filled buffer, records `record(rec, buffers)`,
    submits, and reads back the outputs and the in-place (`inout`) buffers. `dtypes`
    names outputs read back as another type than float32 (e.g. np.uint32)."""
    from neuroflow.gpu import ops
    from neuroflow.gpu.kernels import Cache

    dtypes = dtypes or {}

    def run(arrays):
        bufs = {}
        for name, a in arrays.items():
            bufs[name] = gpu.storage(a.nbytes, name)
            gpu.write(bufs[name], np.ascontiguousarray(a, dtype=a.dtype if a.dtype == np.uint32 else np.float32))
        for name, shape in outputs.items():
            bufs[name] = gpu.storage(4 * int(np.prod(shape)), name)
            gpu.fill(bufs[name], POISON)
        rec = ops.Recorder(gpu, Cache(gpu))
        record(rec, bufs)
        rec.submit()
        shapes = dict(outputs, **{k: arrays[k].shape for k in inout})
        return {k: gpu.read(bufs[k], int(np.prod(s)), dtype=dtypes.get(k, np.float32)).reshape(s) for k, s in shapes.items()}

    return run


def _named(out) -> dict:
    return {f"[{i}]": a for i, a in enumerate(out)} if isinstance(out, list) else {"out": out}


def engine_run(engine, method: str, *names: str, extra: tuple = ()):
    """A gpu_run for one engine method called with the named inputs (then `extra`):
    poisons every buffer the engine writes for this batch size first."""

    def run(arrays):
        if names:  # methods without a batch (get_weights, ...) write nothing to poison
            engine._poison(len(arrays[names[0]]), POISON)
        return _named(getattr(engine, method)(*[arrays[k] for k in names], *extra))

    return run


def engine_reference(engine, method: str, *names: str, extra: tuple = ()):
    """The same call on a reference engine (the NumPy ReferenceEngine or the CPU engine)."""

    def run(arrays):
        return _named(getattr(engine, method)(*[arrays[k] for k in names], *extra))

    return run

"""Sizes beyond memory (issue 11): a layout, a model file or a batch too large gives a
MemoryError or ValueError naming the layer and the bytes it needs, never an interpreter
killed by Rust's abort on a failed allocation. Each case runs in a child process whose
address space is capped at 4 GiB (a normal small net still trains under that cap)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import neuroflow as nf
from neuroflow.nn import network as network_module

LIMIT = 4 << 30

PRELUDE = f"""
import resource
resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))
import numpy as np
import neuroflow as nf

def expect(kinds, f, *words):
    try:
        f()
    except kinds as e:
        msg = str(e)
        assert all(w in msg for w in words), (type(e).__name__, msg)
        print(type(e).__name__ + ":", msg)
        return e
    raise SystemExit("no error raised")
"""


def child(code: str) -> str:
    """Run `code` under the limit; it must end normally (no signal, no abort)."""
    env = dict(os.environ, NEUROFLOW_NUM_THREADS="2", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="2")
    r = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout + r.stderr


def test_a_small_net_trains_under_the_limit():
    out = child("""
        xs = np.random.default_rng(0).random((64, 8, 8, 1))
        ys = np.eye(2)[np.arange(64) % 2]
        net = nf.Network([nf.Convolution((8, 8, 1), 1, 3, 1, 4, nf.ReLU), nf.Dense(2, nf.Linear), nf.SoftmaxLogEntropy()],
                         nf.Settings(iterations=20, batch_size=16, verbose=False))
        net.train(xs, ys)
        print("loss", net.evaluate(xs, ys).loss)
    """)
    assert "loss" in out


def test_convolution_on_a_huge_input():
    out = child("""
        layout = [nf.Convolution((100000, 100000, 3), 1, 3, 1, 4, nf.ReLU), nf.GlobalAvgPool(), nf.SquaredError()]
        expect(MemoryError, lambda: nf.Network(layout), "layer 0 (conv", "the activations buffer for a batch of 1 needs 320000000000 bytes (298.0 GiB)")
    """)
    assert "not enough memory" in out


def test_dense_too_large():
    child("""
        layout = [nf.Dense(100000, nf.ReLU, dim_in=(100000, 1, 1)), nf.SoftmaxLogEntropy()]
        expect(MemoryError, lambda: nf.Network(layout), "layer 0 (dense", "weight needs 80000000000 bytes (74.5 GiB); not enough memory")
        f32 = nf.Settings(dtype=np.float32)
        expect(MemoryError, lambda: nf.Network([nf.Dense(100000, nf.ReLU, dim_in=100000), nf.SoftmaxLogEntropy()], f32),
               "weight needs 40000000000 bytes (37.3 GiB)")
    """)


def test_auto_backend_does_not_fall_back_for_sizes():
    # with a GPU: its size error; without one: the CPU's MemoryError (never an abort)
    out = child("""
        layout = [nf.Dense(100000, nf.ReLU, dim_in=100000), nf.SoftmaxLogEntropy()]
        e = expect((MemoryError, ValueError), lambda: nf.Network(layout, backend="auto"), "bytes")
        print("GPU refused" if isinstance(e, ValueError) else "CPU refused")
    """)
    if "GPU refused" in out:
        assert "using the CPU" not in out, out


def test_auto_backend_reraises_capacity_errors(monkeypatch):
    from neuroflow.engines import gpu
    from neuroflow.engines.gpu.device import BufferTooLarge, CapacityError

    layout = [nf.Dense(2, nf.ReLU, dim_in=3), nf.SoftmaxLogEntropy()]
    for error in (CapacityError("the parameters take 99 bytes"), BufferTooLarge("GPU buffer of 99 bytes"), MemoryError("no")):
        def refuse(spec, error=error):
            raise error
        monkeypatch.setattr(gpu, "GpuEngine", refuse)
        with pytest.raises(type(error)):
            nf.Network(layout, backend="auto")
    # other GPU failures still fall back to the CPU
    def missing(spec):
        raise RuntimeError("no GPU adapter found")
    monkeypatch.setattr(gpu, "GpuEngine", missing)
    assert nf.Network(layout, nf.Settings(verbose=False), backend="auto").backend == "cpu"
    assert network_module._too_large(BufferTooLarge("x")) and isinstance(BufferTooLarge("x"), RuntimeError)


def test_crafted_model_file(tmp_path):
    import json

    from neuroflow import _core
    from neuroflow.io import modelfile

    net = nf.Network([nf.Convolution((4, 4, 1), 0, 1, 1, 1, nf.ReLU), nf.GlobalAvgPool(), nf.SquaredError()], nf.Settings(verbose=False))
    small = tmp_path / "small.nf"
    net.save(small)
    mf = modelfile.read(small)
    spec = dict(mf.spec, input=[10**6, 10**6, 1])
    for layer in spec["layers"]:
        for k in ("dim_in", "dim_out", "params", "state"):
            layer.pop(k, None)
    mf.spec = json.loads(_core.resolve(json.dumps(spec)))
    crafted = tmp_path / "crafted.nf"
    modelfile.write(crafted, mf)
    assert crafted.stat().st_size < 4096
    child(f"""
        expect(MemoryError, lambda: nf.load({str(crafted)!r}), "layer 0 (conv", "the activations buffer for a batch of 1 needs 8000000000000 bytes")
    """)


def test_a_batch_too_large_for_memory():
    out = child("""
        net = nf.Network([nf.Convolution((64, 64, 3), 1, 3, 1, 16, nf.ReLU), nf.GlobalAvgPool(), nf.Dense(10, nf.Linear),
                          nf.SoftmaxLogEntropy()], nf.Settings(verbose=False))
        x = np.zeros((8000, 64, 64, 3), np.uint8)
        t = np.eye(10)[np.arange(8000) % 10]
        e = net._engine
        words = ("layer 0 (conv", "the activations buffer for a batch of 8000 needs 4194304000 bytes (3.9 GiB); not enough memory")
        expect(MemoryError, lambda: e.train_step(x, t, 0.01), *words)
        expect(MemoryError, lambda: e.forward(x), *words)
        # the engine is intact: a small batch still trains
        loss = e.train_step(x[:8], t[:8], 0.01)
        assert np.isfinite(loss), loss
        print("small batch", loss)
    """)
    assert "small batch" in out

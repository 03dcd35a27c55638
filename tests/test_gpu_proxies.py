"""The issue's speed proxies for the small CIFAR net at batch 128, on a simulated device
with an H200's limits (benchmarks/gpu_proxies.py: nothing runs, so this needs no GPU):
≤ 40 dispatches a training step, ≤ 1.0 GB moved, no buffer larger than the batch's largest
activation; uint8 input uploaded as bytes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture
def proxies():
    pytest.importorskip("wgpu")
    import gpu_proxies

    from neuroflow.engines.gpu import device

    before = device._gpu
    try:
        yield gpu_proxies
    finally:
        device._gpu = before  # the simulated device must not outlive the test


@pytest.mark.parametrize("dtype", ["float32", "uint8"])
def test_small_cifar_step_meets_the_proxy_goals(proxies, dtype):
    (name, spec, batch, train, dim_in, classes), = proxies.net_specs({"small-cifar-train"})
    row = proxies.simulated(name, spec, batch, train, dim_in, classes, dtype)
    assert batch == 128 and row["chunk"] == 128
    assert row["dispatches"] <= 40, row["by_kernel"]
    assert row["moved_bytes"] <= 1.0e9, row["by_kernel"]
    assert row["largest_within_activations"], row["largest_buffer"]
    assert not any(k.startswith(("im2col", "col2im")) for k in row["by_kernel"]), "a column matrix was built"
    assert row["uploaded_bytes_per_step"] < (1 if dtype == "uint8" else 4) * 128 * 3072 + 65536

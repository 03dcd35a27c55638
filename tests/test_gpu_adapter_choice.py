"""Which adapter a process takes: NEUROFLOW_GPU_ADAPTER, else one discrete GPU per local MPI
rank where a host has several, else wgpu's high-performance choice (a fake wgpu: no GPU needed)."""

from types import SimpleNamespace

import pytest

from neuroflow.engines.gpu import device


class FakeGpu:
    def __init__(self, kinds):
        self.found = [SimpleNamespace(info={"device": f"gpu{i} ({k})", "adapter_type": k}) for i, k in enumerate(kinds)]
        self.requested = 0

    def enumerate_adapters_sync(self):
        return list(self.found)

    def request_adapter_sync(self, power_preference):
        assert power_preference == "high-performance"
        self.requested += 1
        return self.found[0]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("NEUROFLOW_GPU_ADAPTER", *device.LOCAL_RANK_VARS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize("var", device.LOCAL_RANK_VARS)
def test_each_local_rank_takes_its_own_discrete_gpu(clean_env, var):
    gpu = FakeGpu(["IntegratedGPU", "DiscreteGPU", "DiscreteGPU", "DiscreteGPU"])
    wgpu = SimpleNamespace(gpu=gpu)
    picked = []
    for rank in range(5):
        clean_env.setenv(var, str(rank))
        picked.append(device._request_adapter(wgpu).info["device"])
    assert picked == ["gpu1 (DiscreteGPU)", "gpu2 (DiscreteGPU)", "gpu3 (DiscreteGPU)", "gpu1 (DiscreteGPU)",
                      "gpu2 (DiscreteGPU)"]
    assert gpu.requested == 0


def test_one_gpu_or_no_rank_leaves_the_choice_to_wgpu(clean_env):
    one = FakeGpu(["DiscreteGPU", "CPU"])
    clean_env.setenv("MPI_LOCALRANKID", "1")
    assert device._request_adapter(SimpleNamespace(gpu=one)) is one.found[0] and one.requested == 1
    many = FakeGpu(["DiscreteGPU", "DiscreteGPU"])
    clean_env.delenv("MPI_LOCALRANKID")
    clean_env.setenv("SLURM_LOCALID", "not a number")
    assert device._request_adapter(SimpleNamespace(gpu=many)) is many.found[0] and many.requested == 1


def test_the_named_adapter_wins_over_the_rank(clean_env):
    gpu = FakeGpu(["DiscreteGPU", "DiscreteGPU", "DiscreteGPU"])
    clean_env.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    clean_env.setenv("NEUROFLOW_GPU_ADAPTER", "GPU2")
    assert device._request_adapter(SimpleNamespace(gpu=gpu)).info["device"] == "gpu2 (DiscreteGPU)"

"""benchmarks/gpu_device_check.py, the script a lent GPU runs, works before device time is
spent on it: without an adapter it says so in one line, writes its report and exits 2;
on this machine's adapter its smoke mode runs every phase but the test suite and writes
what each measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_parity import require_gpu

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_device_check.py"


def _run(tmp_path, *args, env=None):
    e = dict(os.environ, **(env or {}))
    e.pop("CI", None)
    return subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--no-setup", *args], env=e,
                          capture_output=True, text=True, timeout=600)


def test_without_an_adapter_it_reports_and_exits_2(tmp_path):
    p = _run(tmp_path, env={"NEUROFLOW_GPU_ADAPTER": "no-such-adapter-anywhere"})
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    assert "gpu_device_check: no usable GPU adapter" in p.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert "error" in report["adapter"] and "environment" in report and "message" in report


def test_smoke_run_records_every_phase(tmp_path):
    require_gpu()
    p = _run(tmp_path, "--smoke", "--skip", "tests", "--budget-s", "90")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    for key in ("environment", "adapter", "training_parity", "gemm_sweep", "autotune", "summary"):
        assert key in report and "error" not in report[key], (key, report.get(key))
    assert report["training_parity"]["ok"], report["training_parity"]
    assert report["adapter"]["limits"]["max-storage-buffer-binding-size"] > 0
    assert report["gemm_sweep"]["rows"] and all(r["gflops"] > 0 for r in report["gemm_sweep"]["rows"])
    tuning = json.loads((tmp_path / "gpu_tuning.json").read_text())
    assert list(tuning) == [report["adapter"]["chosen"]["name"]]
    trained = [k for k in report if k.startswith("train_small-cifar_neuroflow")]
    assert trained and all(report[k]["images_per_s"] > 0 for k in trained)

"""Device check for a real GPU: parity, WGSL gemm speed, training throughput; JSON out.

    python benchmarks/gpu_device_check.py OUT.json [--peak-tflops 67] [--budget-s 420]

1. parity on the card: the GPU test suite (tests/test_gpu_ops.py, tests/test_gpu_engine.py,
   with CI=1 so a missing adapter fails) when pytest is importable, then a 4096³ gemm
   against NumPy, and each net below against the CPU engine (forward, loss, gradients,
   three training steps);
2. WGSL gemm GFLOP/s at 4096³ in the three forms training uses (NN, TN, NT), as a fraction
   of the fp32 peak given with --peak-tflops (H100 SXM: about 67; PCIe: about 51);
3. training throughput (images/s; one train_step per batch, the loss read back each step
   as training does) of the article's nets as benchmarks/nets.py defines them, with
   GpuEngine, PyTorch CUDA fp32 with TF32 off (when torch is importable) and the CPU engine.

Each phase has a share of --budget-s and stops early when it runs out: the whole run stays
well under 10 minutes. Needs neuroflow importable with its CPU engine (the installed wheel,
or this tree with python/neuroflow/_core*.so built) and wgpu. On a machine without a Vulkan
loader (see the device tool's README) first, e.g.:

    for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
    export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    pip install --no-index --no-deps wheels/*.whl   # wgpu, cffi, pycparser, rendercanvas, neuroflow
    NEUROFLOW_GPU_ADAPTER=NVIDIA python benchmarks/gpu_device_check.py $OUT/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:  # the installed package (a wheel carries the CPU engine), else the source tree's
    import neuroflow  # noqa: F401

    PYTHONPATH = os.environ.get("PYTHONPATH", "")
except ImportError:
    sys.path.insert(0, str(ROOT / "python"))
    PYTHONPATH = os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])


def spec_of(net) -> str:
    """The engine spec of a benchmarks/nets.py net: ReLU convolutions, dense layers, no
    biases, SoftmaxLogEntropy, Momentum(0.9), summed over the batch (as bench.py trains)."""
    layers, (x, y, z) = [], net.dim_in
    for f, k, st, p in net.convs:
        layers.append({"kind": "conv", "dim_in": [x, y, z], "padding": [p, p], "field": [k, k], "stride": [st, st],
                       "filters": f, "activator": {"name": "relu", "alpha": 0.0, "bias": 0.0}})
        x, y, z = (x + 2 * p - k) // st + 1, (y + 2 * p - k) // st + 1, f
    d = x * y * z
    for o, a in net.dense:
        layers.append({"kind": "dense", "dim_in": d, "neurons": o, "activator": {"name": a, "alpha": 0.0, "bias": 0.0}})
        d = o
    return json.dumps({"dtype": "f32", "layers": layers, "loss": {"name": "softmax_log_entropy", "n": 1},
                       "update": {"name": "momentum", "mu": 0.9}, "reduction": "sum"})


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.split(" train")[0]).strip("_")


# The article's nets as benchmarks/nets.py defines them (the CPU benchmark's nets), the
# training ones: name -> (spec JSON, batch size).
sys.path.insert(0, str(ROOT / "benchmarks"))
import nets as _nets  # noqa: E402

NETS = {slug(n.name): (spec_of(n), n.batch) for n in _nets.NETS if n.train}


class Deadline:
    def __init__(self, seconds):
        self.end = time.perf_counter() + seconds

    def left(self):
        return self.end - time.perf_counter()


def inputs(s, n, rng):
    layers = json.loads(s)["layers"]
    first, k = layers[0], layers[-1]["neurons"]
    x = rng.uniform(0, 1, (n, *first["dim_in"])).astype(np.float32)
    t = np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    return x, t


def init_weights(engine, rng):
    ws = [(rng.standard_normal(s) * np.sqrt(2.0 / np.prod(s[:-1]))).astype(np.float32) for s in engine.weight_shapes()]
    engine.set_weights(ws)
    return ws


def rel_err(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


# ---- 1. parity ----


def run_test_suite(seconds):
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "tests/test_gpu_ops.py", "tests/test_gpu_engine.py"]
    env = dict(os.environ, CI="1", PYTHONPATH=PYTHONPATH)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(10, seconds))
    except subprocess.TimeoutExpired:
        return {"timed_out_after_s": seconds}
    lines = (p.stdout + p.stderr).strip().splitlines()
    return {"returncode": p.returncode, "summary": lines[-1] if lines else "", "seconds": time.perf_counter() - t0,
            "failures": [l for l in lines if l.startswith("FAILED")][:20]}


def gemm_parity(gpu, n=4096):
    from neuroflow.gpu import ops
    from neuroflow.gpu.kernels import Cache

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    ba, bb, bc = gpu.storage(a.nbytes), gpu.storage(b.nbytes), gpu.storage(a.nbytes)
    gpu.write(ba, a)
    gpu.write(bb, b)
    gpu.fill(bc, float("nan"))
    rec = ops.Recorder(gpu, Cache(gpu))
    ops.gemm(rec, ba, bb, bc, n, n, n)
    rec.submit()
    c = gpu.read(bc, n * n).reshape(n, n)
    rows = rng.choice(n, min(n, 64), replace=False)  # float64 reference on a sample of rows
    return {"size": n, "rows_checked": len(rows), "all_finite": bool(np.isfinite(c).all()),
            "max_rel_err": rel_err(c[rows], a[rows].astype(np.float64) @ b)}


def engine_parity(name, n=2):
    from neuroflow.gpu import GpuEngine

    from neuroflow._core import Engine

    s = NETS[name][0]
    rng = np.random.default_rng(1)
    gpu_e, ref_e = GpuEngine(s), Engine(s)
    ws = init_weights(gpu_e, rng)
    ref_e.set_weights(ws)
    x, t = inputs(s, n, rng)
    out = {"reference": "cpu engine", "batch": n}
    out["forward"] = rel_err(gpu_e.forward(x), ref_e.forward(x))
    out["loss"] = rel_err(gpu_e.loss(x, t), ref_e.loss(x, t))
    out["gradients"] = max(rel_err(g, r) for g, r in zip(gpu_e.gradients(x, t), ref_e.gradients(x, t)))
    for _ in range(3):
        out["train_step_loss"] = rel_err(gpu_e.train_step(x, t, 1e-3), ref_e.train_step(x, t, 1e-3))
    out["weights_after_3_steps"] = max(rel_err(g, r) for g, r in zip(gpu_e.get_weights(), ref_e.get_weights()))
    out["ok"] = all(v <= 1e-4 for k, v in out.items() if isinstance(v, float))
    return out


# ---- 2. gemm speed ----


def gemm_speed(gpu, peak_tflops, deadline, n=4096):
    from neuroflow.gpu import ops
    from neuroflow.gpu.kernels import Cache

    bufs = [gpu.storage(4 * n * n) for _ in range(3)]
    rng = np.random.default_rng(0)
    for b in bufs[:2]:
        gpu.write(b, rng.standard_normal(n * n).astype(np.float32))
    cache, results = Cache(gpu), {}
    for form, ta, tb in (("NN", False, False), ("TN", True, False), ("NT", False, True)):
        if deadline.left() < 5:
            results[form] = "skipped: out of time"
            continue

        def run(reps):
            rec = ops.Recorder(gpu, cache)
            for _ in range(reps):
                ops.gemm(rec, bufs[0], bufs[1], bufs[2], n, n, n, trans_a=ta, trans_b=tb)
            rec.submit()
            gpu.read(bufs[2], 1)

        run(1)  # compile and warm up
        t0 = time.perf_counter()
        run(1)
        one = time.perf_counter() - t0
        reps = int(max(1, min(50, 3.0 / max(one, 1e-6))))
        t0 = time.perf_counter()
        run(reps)
        dt = (time.perf_counter() - t0) / reps
        gflops = 2 * n**3 / dt / 1e9
        results[form] = {"ms": dt * 1e3, "gflops": gflops, "fraction_of_peak": gflops / (peak_tflops * 1e3), "reps": reps}
    return results


# ---- 3. training throughput ----


def time_steps(step, batch, deadline, max_steps=30, share=40.0):
    """images/s over up to max_steps steps after one warm-up step, within `share` seconds
    and the deadline (at least one timed step once the warm-up fits)."""
    limit = min(share, deadline.left() - 5)
    if limit <= 0:
        return {"skipped": "out of time"}
    t0 = time.perf_counter()
    step()  # warm-up: pipelines, workspaces, cudnn autotuning
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    steps = 0
    while steps < max_steps and (steps == 0 or time.perf_counter() - t0 < limit - warm):
        step()
        steps += 1
    dt = time.perf_counter() - t0
    return {"steps": steps, "seconds": dt, "warmup_seconds": warm, "images_per_s": steps * batch / dt}


def gpu_engine_throughput(name, deadline):
    from neuroflow.gpu import GpuEngine

    s, batch = NETS[name]
    rng = np.random.default_rng(2)
    e = GpuEngine(s)
    init_weights(e, rng)
    x, t = inputs(s, batch, rng)
    return dict(time_steps(lambda: e.train_step(x, t, 1e-3), batch, deadline, share=25.0), batch=batch)


def cpu_engine_throughput(name, deadline):
    try:
        from neuroflow._core import Engine
    except ImportError as e:
        return {"skipped": f"neuroflow._core not importable: {e}"}
    s, batch = NETS[name]
    rng = np.random.default_rng(2)
    e = Engine(s)
    init_weights(e, rng)
    x, t = inputs(s, batch, rng)
    return dict(time_steps(lambda: e.train_step(x, t, 1e-3), batch, deadline, max_steps=10, share=15.0), batch=batch)


def torch_model(s):
    from torch import nn

    class Add(nn.Module):
        def __init__(self, b):
            super().__init__()
            self.b = b

        def forward(self, x):
            return x + self.b

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    def activation(a):
        f = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity,
             "softplus": nn.Softplus, "square": Square}.get(a["name"])
        layer = nn.LeakyReLU(a["alpha"]) if a["name"] == "leaky_relu" else f()
        return [Add(a["bias"]), layer] if a.get("bias") else [layer]

    mods = []
    for l in json.loads(s)["layers"]:
        if l["kind"] == "conv":
            mods.append(nn.Conv2d(l["dim_in"][2], l["filters"], tuple(l["field"]), tuple(l["stride"]),
                                  tuple(l["padding"]), bias=False))
        else:
            if not mods or not isinstance(mods[-1], nn.Flatten):
                mods.append(nn.Flatten())
            mods.append(nn.Linear(l["dim_in"], l["neurons"], bias=False))
        mods += activation(l["activator"])
    return nn.Sequential(*mods)


def torch_throughput(name, deadline):
    try:
        import torch
    except ImportError as e:
        return {"skipped": f"torch not importable: {e}"}
    if not torch.cuda.is_available():
        return {"skipped": "torch has no CUDA device"}
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    s, batch = NETS[name]
    first = json.loads(s)["layers"][0]
    dev = torch.device("cuda")
    model = torch_model(s).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    shape = (batch, first["dim_in"][2], first["dim_in"][0], first["dim_in"][1]) if first["kind"] == "conv" else (batch, first["dim_in"])
    x = torch.rand(shape, device=dev)
    k = json.loads(s)["layers"][-1]["neurons"]
    t = torch.nn.functional.one_hot(torch.randint(0, k, (batch,), device=dev), k).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = -(t * torch.log_softmax(model(x), dim=1)).sum()
        loss.backward()
        opt.step()
        return loss.item()  # read back each step, as GpuEngine.train_step does

    out = dict(time_steps(step, batch, deadline, share=25.0), batch=batch)
    out.update(torch=torch.__version__, device=torch.cuda.get_device_name(0), tf32=False)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="where to write the JSON report")
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="the card's fp32 peak (H100 SXM ~67, PCIe ~51)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of the whole run")
    ap.add_argument("--skip-tests", action="store_true", help="skip the pytest suite")
    ap.add_argument("--gemm-size", type=int, default=4096, help="M = N = K of the gemm checks")
    ap.add_argument("--nets", default=",".join(NETS), help=f"comma-separated subset of {', '.join(NETS)}")
    args = ap.parse_args()
    start = time.perf_counter()
    whole = Deadline(args.budget_s)
    report = {"python": platform.python_version(), "argv": sys.argv[1:]}

    def save():
        report["total_seconds"] = time.perf_counter() - start
        Path(args.out).write_text(json.dumps(report, indent=2, default=str))

    def phase(key, fn, *a):
        t0 = time.perf_counter()
        try:
            report[key] = fn(*a)
        except Exception as e:  # record and go on: one failing phase must not lose the rest
            report[key] = {"error": f"{type(e).__name__}: {e}"}
        print(f"[{time.perf_counter() - start:6.1f}s] {key}: {json.dumps(report[key], default=str)[:300]}", flush=True)
        if isinstance(report[key], dict):
            report[key].setdefault("phase_seconds", time.perf_counter() - t0)
        save()

    import wgpu

    from neuroflow.gpu import adapters, get_gpu

    report["wgpu"] = wgpu.__version__
    report["adapters"] = adapters()
    gpu = get_gpu()
    report["adapter"] = gpu.info
    report["limits"] = {"max_storage_binding": gpu.max_binding, "max_buffer": gpu.max_buffer}
    save()
    if not args.skip_tests:
        phase("test_suite", run_test_suite, min(90, whole.left() * 0.25))
    nets = [n for n in args.nets.split(",") if n]
    phase("gemm_parity", gemm_parity, gpu, args.gemm_size)
    for name in nets:
        phase(f"parity_{name}", engine_parity, name)
    phase("gemm_speed", gemm_speed, gpu, args.peak_tflops, Deadline(min(60, whole.left() * 0.3)), args.gemm_size)
    for name in nets:
        phase(f"train_{name}_gpu_engine", gpu_engine_throughput, name, whole)
        phase(f"train_{name}_torch", torch_throughput, name, whole)
        phase(f"train_{name}_cpu_engine", cpu_engine_throughput, name, whole)
    save()
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()

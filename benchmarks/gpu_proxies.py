"""GPU speed proxies that need no GPU: what one call of the GPU engine records.

    python benchmarks/gpu_proxies.py [--json OUT.json] [--nets small-cifar,...] [--no-encode]

For each benchmark net of benchmarks/nets.py (plus an airbench-like BatchNorm net), with
float32 and with uint8 input, it records one training step (one eval pass for the eval
net) on a *simulated device with an H200's limits* (no GPU needed: buffers, bind groups
and pipelines are stand-ins, nothing runs) and reports:

- dispatches: compute dispatches in the step (copies counted apart);
- moved: the estimated bytes read and written, summed over the dispatches. Each op that
  knows which part of a buffer it touches says so (a gemm: its A, B and C regions, C twice
  when it accumulates; an implicit-GEMM convolution: its input, weights and output once
  each, not the im2col matrix it never builds); other dispatches count the sizes of the
  distinct storage buffers they bind. Compulsory traffic, not cache behaviour: a kernel
  that re-reads a tile from L2 counts it once.
- largest: the largest GPU buffer the engine created, against the largest activation of
  the batch (one layer's output for the whole batch);
- upload: bytes written from the host per step (the batch, the targets, the uniforms).

Then, on this machine's own adapter (lavapipe here) when there is one, the host's share:
- encode: the time to encode the recorded step into a command buffer (ops.encode: what a
  replayed step costs the host besides the upload), median of repeats;
- host: a whole train_step call with the GPU work left out (batch checks, conversion,
  upload, encoding; the loss read-back is a no-op), median.
The lavapipe device has other limits (128 MiB bindings), so its recording may differ from
the H200's (chunks); its dispatch count is reported beside the encode time.

The issue's goals for small CIFAR at batch 128: ≤ 40 dispatches, ≤ 1.0 GB moved, no buffer
larger than the batch's activations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import nets as bench_nets  # noqa: E402

# What wgpu-native 29 reports for an NVIDIA H100/H200 through Vulkan (the limits the
# engine reads; the rest are WebGPU defaults).
H200_LIMITS = {
    "max-storage-buffer-binding-size": 2**32 - 1,
    "max-buffer-size": 2**40,
    "max-compute-workgroups-per-dimension": 65535,
    "max-compute-workgroup-storage-size": 49152,
    "max-compute-invocations-per-workgroup": 1024,
    "max-storage-buffers-per-shader-stage": 8,
}
H200_INFO = {"name": "NVIDIA H200 (simulated limits)", "backend": "Vulkan", "adapter_type": "DiscreteGPU",
             "vendor": "NVIDIA", "description": "simulated: no device"}


# ---- a device that records and runs nothing ----


class _Obj(SimpleNamespace):
    pass


class FakeBuffer:
    def __init__(self, size: int, usage=0, label: str = ""):
        self.size, self.usage, self.label = int(size), usage, label


class FakePass:
    def __init__(self, enc):
        self.enc = enc

    def set_pipeline(self, p):
        pass

    def set_bind_group(self, i, g):
        pass

    def dispatch_workgroups(self, *g):
        self.enc.dispatches += 1

    def end(self):
        pass


class FakeEncoder:
    def __init__(self):
        self.dispatches = 0

    def begin_compute_pass(self, **kw):
        return FakePass(self)

    def copy_buffer_to_buffer(self, *a):
        pass

    def finish(self):
        return self


class FakeQueue:
    def __init__(self):
        self.uploaded = 0

    def write_buffer(self, buf, offset, data, *a):
        self.uploaded += memoryview(data).nbytes

    def submit(self, bufs):
        pass

    def read_buffer(self, buf, offset=0, size=None):
        return bytes(size if size is not None else buf.size - offset)


class FakeDevice:
    def __init__(self, limits):
        self.limits, self.queue, self.buffers = limits, FakeQueue(), []

    def create_buffer(self, size, usage=0, label="", **kw):
        b = FakeBuffer(size, usage, label)
        self.buffers.append(b)
        return b

    def create_bind_group_layout(self, **kw):
        return _Obj(**kw)

    def create_pipeline_layout(self, **kw):
        return _Obj(**kw)

    def create_shader_module(self, **kw):
        return _Obj(**kw)

    def create_compute_pipeline(self, label="", **kw):
        return _Obj(label=label, **kw)

    def create_bind_group(self, **kw):
        return _Obj(**kw)

    def create_command_encoder(self, **kw):
        return FakeEncoder()

    def create_query_set(self, **kw):
        return _Obj(**kw)


def simulated_gpu(limits=H200_LIMITS, info=H200_INFO):
    import wgpu

    from neuroflow.engines.gpu.device import Gpu

    gpu = Gpu.__new__(Gpu)
    gpu.wgpu = wgpu
    gpu.adapter = None
    gpu.device = FakeDevice(dict(limits))
    gpu.queue = gpu.device.queue
    gpu.features = set()
    gpu.configure(dict(info), dict(limits))
    return gpu


def use_gpu(gpu) -> None:
    """Make `gpu` the process's device (what GpuEngine picks up)."""
    from neuroflow.engines.gpu import device

    device._gpu = gpu


# ---- the nets ----


def airbench_like(batch: int = 512):
    """An airbench-like CIFAR net (issue 13's speed recipe): conv 2×2 → three blocks of
    conv, max-pool, BatchNorm(GELU), conv, BatchNorm(GELU); widths 64/256/256; a global
    max… here a global average pool and a linear read-out; label smoothing, Nesterov."""
    import neuroflow as nf

    d = (32, 32, 3)
    layout = [nf.Convolution(d, padding=0, field=2, stride=1, filters=24, activator=nf.GELU)]
    dim = layout[0].dim_out
    for w in (64, 256, 256):
        c = nf.Convolution(dim, padding=1, field=3, stride=1, filters=w, activator=nf.Linear)
        layout += [c, nf.MaxPool(2), nf.BatchNorm(activator=nf.GELU)]
        dim = (dim[0] // 2, dim[1] // 2, w)
        layout += [nf.Convolution(dim, padding=1, field=3, stride=1, filters=w, activator=nf.Linear),
                   nf.BatchNorm(activator=nf.GELU)]
    layout += [nf.GlobalAvgPool(), nf.Dense(10, nf.Linear), nf.SoftmaxLogEntropy(label_smoothing=0.2)]
    settings = nf.Settings(learning_rate=0.01, update_rule=nf.Nesterov(0.9), batch_size=batch, verbose=False,
                           dtype=np.float32, shuffle=False)
    return nf.Network(layout, settings)


def net_specs(only: set | None = None) -> list:
    """(name, resolved spec JSON, batch, train) for each net."""
    out = []
    for n in bench_nets.NETS:
        name = n.name.split(" ")[0]
        key = f"{name}-{'train' if n.train else 'eval'}"
        if only and key not in only and name not in only:
            continue
        out.append((key, bench_nets.neuroflow_net(n, 0.01).spec_json, n.batch, n.train, n.dim_in, n.classes))
    if not only or "airbench" in only or "airbench-train" in only:
        try:
            out.append(("airbench-train", airbench_like().spec_json, 512, True, (32, 32, 3), 10))
        except Exception as e:  # a layer this checkout lacks
            print(f"airbench-like net skipped: {type(e).__name__}: {e}", file=sys.stderr)
    return out


def batch_of(dim_in, classes, n, dtype, rng):
    if dtype == "uint8":
        x = rng.integers(0, 256, (n, *dim_in), dtype=np.uint8)
    else:
        x = rng.uniform(0, 1, (n, *dim_in)).astype(np.float32)
    t = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return x, t


def _activation_bytes(spec_json: str, n: int) -> int:
    def walk(layers):
        for l in layers:
            yield l
            yield from walk(l.get("layers", []))

    spec = json.loads(spec_json)
    return 4 * n * max(int(np.prod(l["dim_out"])) for l in walk(spec["layers"]))


def _call(engine, train: bool, x, t):
    if train:
        return engine.train_step(x, t, 0.01)
    return engine.predict(x)


def _key(engine, train: bool):
    """The recorded program of the call just made."""
    progs = engine._ws.programs
    return next(k for k in reversed(list(progs)) if k[0] == ("train" if train else "outputs"))


def simulated(name, spec, batch, train, dim_in, classes, dtype) -> dict:
    from neuroflow.engines.gpu import GpuEngine

    gpu = simulated_gpu()
    use_gpu(gpu)
    rng = np.random.default_rng(0)
    x, t = batch_of(dim_in, classes, batch, dtype, rng)
    e = GpuEngine(spec)
    _call(e, train, x, t)  # records (and "runs" nothing)
    before = gpu.queue.uploaded
    _call(e, train, x, t)  # a replayed step: what it uploads
    uploaded = gpu.queue.uploaded - before
    key = _key(e, train)
    notes = e._notes(key)
    kernels = [nt for nt in notes if nt[0] != "copy"]
    by_kernel: dict = {}
    for k, b, _ in kernels:
        base = k.split(".")[0] + "." + k.split(".")[1] if "." in k else k
        agg = by_kernel.setdefault(base, [0, 0])
        agg[0] += 1
        agg[1] += b
    biggest = max(gpu.device.buffers, key=lambda b: b.size)
    act = _activation_bytes(spec, batch)
    return {
        "net": name, "batch": batch, "input": dtype, "call": "train_step" if train else "predict",
        "dispatches": len(kernels), "copies": len(notes) - len(kernels),
        "moved_bytes": sum(b for _, b, _ in notes),
        "largest_buffer": {"bytes": biggest.size, "label": biggest.label},
        "largest_activation_bytes": act,
        "largest_within_activations": biggest.size <= act,
        "uploaded_bytes_per_step": uploaded,
        "chunk": e._ws.cap,
        "by_kernel": {k: {"dispatches": v[0], "bytes": v[1]} for k, v in sorted(by_kernel.items(), key=lambda kv: -kv[1][1])},
    }


def host_times(name, spec, batch, train, dim_in, classes, dtype, repeats: int) -> dict:
    """On the real adapter: encode time of the recorded step, and a whole call's host time
    with the GPU work left out (ops.run encodes but does not submit)."""
    from neuroflow.engines.gpu import GpuEngine, device, ops

    use_gpu(None)
    gpu = device.get_gpu()
    rng = np.random.default_rng(0)
    x, t = batch_of(dim_in, classes, batch, dtype, rng)
    real_run = ops.run
    ops.run = lambda g, steps: ops.encode(g, steps)  # encode, never submit
    real_read = gpu.read
    gpu.read = lambda buf, count, offset=0, dtype=np.float32: np.zeros(count, dtype)
    try:
        e = GpuEngine(spec)
        _call(e, train, x, t)
        key = _key(e, train)
        steps = e._program(key)
        enc = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            ops.encode(gpu, steps)
            enc.append(time.perf_counter() - t0)
        host = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            _call(e, train, x, t)
            host.append(time.perf_counter() - t0)
            gpu.queue.submit([])  # lets wgpu free the uploads' staging memory
    finally:
        ops.run = real_run
        gpu.read = real_read
    return {"adapter": gpu.info["name"], "dispatches": ops.dispatches(steps), "steps": len(steps),
            "encode_ms": 1e3 * statistics.median(enc), "host_ms": 1e3 * statistics.median(host), "repeats": repeats}


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--nets", help="comma-separated: glasses, small-cifar, small-cifar-train, neuroflow-cifar, airbench, …")
    ap.add_argument("--inputs", default="float32,uint8")
    ap.add_argument("--no-encode", action="store_true", help="skip the timings on this machine's adapter")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    only = set(args.nets.split(",")) if args.nets else None
    report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit(),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              "profile": H200_INFO["name"], "rows": []}
    for name, spec, batch, train, dim_in, classes in net_specs(only):
        for dtype in args.inputs.split(","):
            row = simulated(name, spec, batch, train, dim_in, classes, dtype)
            if not args.no_encode:
                try:
                    row["host"] = host_times(name, spec, batch, train, dim_in, classes, dtype, args.repeats)
                except Exception as e:
                    row["host"] = {"error": f"{type(e).__name__}: {e}"}
            report["rows"].append(row)
            h = row.get("host", {})
            print(f"{name:22s} {dtype:7s} b{batch:<4d} dispatches {row['dispatches']:3d} (+{row['copies']} copies)  "
                  f"moved {row['moved_bytes'] / 1e9:6.3f} GB  largest {row['largest_buffer']['bytes'] / 2**20:7.1f} MiB "
                  f"({row['largest_buffer']['label']}; activations {row['largest_activation_bytes'] / 2**20:.1f} MiB)  "
                  f"upload {row['uploaded_bytes_per_step'] / 2**20:6.2f} MiB"
                  + (f"  encode {h['encode_ms']:.2f} ms host {h['host_ms']:.2f} ms ({h['dispatches']} dispatches on {h['adapter'][:9]})"
                     if "encode_ms" in h else (f"  host: {h['error']}" if "error" in h else "")), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

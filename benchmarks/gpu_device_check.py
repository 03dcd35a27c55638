"""Device check for a lent GPU (issue 14): set-up, parity, gemm sweep and autotuning,
training throughput against PyTorch CUDA; JSON written as it goes, all in ≤ 4 minutes.

On the lent machine, from the repository root (the device tool's `run`):

    python3 benchmarks/gpu_device_check.py --out $OUT            # [--budget-s 225] [--peak-tflops 67]

and here, a smoke run on whatever adapter there is (lavapipe: small sizes, no pytest):

    python benchmarks/gpu_device_check.py --out /tmp/check --smoke --no-setup

Phases, each recorded into OUT/gpu_check.json the moment it ends (a run stopped at its
limit keeps what it had); each has a share of --budget-s and stops early when it runs out:

0. set-up (skipped with --no-setup, or when wgpu and a Vulkan loader are there already):
   unpacks the bundle's Vulkan loader .debs (`gl/*.deb`: `dpkg -x` into /, `ldconfig`),
   installs its wheels (`whl/*.whl`: wgpu and what it needs) and a neuroflow wheel from
   `dist/` if one is there into /tmp/nf-site (`pip install --no-index --no-deps --target`),
   points VK_DRIVER_FILES at the NVIDIA ICD, and runs itself again with PYTHONPATH set.
   Without a neuroflow wheel the source tree's python/ is used (its CPU core,
   python/neuroflow/_core.abi3.so, must then be carried: it is ignored by git; so is
   dist/). The bundle is looked for in --bundle, shared/gpu-bundle, ../shared/gpu-bundle,
   .gpu-bundle, and .gl + .whl (the device tool's own recipe). With the device tool, once
   in the repository's root: `mkdir -p .gpu-bundle && cp -r /work/shared/gpu-bundle/gl
   /work/shared/gpu-bundle/whl .gpu-bundle/` and `/.gpu-bundle/` in .git/info/exclude;
   then run `PYTHONUNBUFFERED=1 python3 benchmarks/gpu_device_check.py --out $OUT
   --budget-s 225` with carry [".gpu-bundle", "python/neuroflow/_core.abi3.so"] (or
   "dist" holding a wheel) and timeout_s 290;
1. environment and adapter, first: wgpu's adapters, the one chosen, all its limits and
   features. Without an adapter it says so in one line, writes what it has and exits 2;
2. parity: the GPU test suite (tests/test_gpu_ops.py, tests/test_gpu_engine.py and the
   conformance suite's GPU cases, CI=1, in a subprocess with its share of the time), and
   training parity at batch 128 in one chunk: small CIFAR on GpuEngine against the CPU
   engine (forward, loss, gradients, one step's parameters; relative to each tensor's max);
3. gemm sweep: NN at 512–8192 with the engine's own choice, every tile at 4096 in the
   three forms training uses (NN, TN, NT); GFLOP/s from GPU timestamps (wall clock when the
   adapter has none) against --peak-tflops;
4. autotuning: every gemm of the benchmark nets' training steps, each tile (K split as the
   plan says and unsplit) and the per-element kernel, timed; the fastest pinned in
   OUT/gpu_tuning.json (NEUROFLOW_GPU_TUNING reads it) and used by the next phase;
5. throughput: images/s of one train_step per batch (the loss read back each step, as
   training does) for the benchmark nets and an airbench-like BatchNorm net, float32 and
   uint8 input, against PyTorch CUDA fp32 (TF32 off, cudnn.benchmark, channels_last, the
   batch resident on the GPU, loss.item() each step), when torch sees a GPU.
The time to 94 % on CIFAR-10 is recorded as not attempted (no data set on the machine and
the speed recipe is issue 13's).
"""

from __future__ import annotations

import argparse
import ctypes.util
import glob
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = "/tmp/nf-site"
NVIDIA_ICD = "/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json"
START = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f}s] {msg}", flush=True)


class Report:
    """The JSON report, rewritten whole (atomically) after every phase."""

    def __init__(self, out: Path):
        self.out = out
        self.path = out / "gpu_check.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def save(self) -> None:
        self.data["seconds"] = round(time.perf_counter() - START + self.data.get("setup_seconds", 0.0), 1)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        tmp.replace(self.path)


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def phase(report: Report, key: str, fn, *a, **kw):
    """Run one phase; record its result (or its error) and how long it took."""
    t0 = time.perf_counter()
    try:
        result = fn(*a, **kw)
    except Exception as e:  # one failing phase must not lose the others
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
    if isinstance(result, dict):
        result["phase_seconds"] = round(time.perf_counter() - t0, 2)
    report.data[key] = result
    report.save()
    short = json.dumps(result, default=str)
    log(f"{key}: {short[:400]}{'…' if len(short) > 400 else ''}")
    return result


# ---------------------------------------------------------------- 0. set-up


def find_bundle(given: str | None) -> dict:
    """Where the Vulkan loader .debs and the wheels are."""
    cands = [given] if given else []
    cands += [str(ROOT / "shared" / "gpu-bundle"), str(ROOT.parent / "shared" / "gpu-bundle"), str(ROOT / ".gpu-bundle")]
    for c in cands:
        if c and Path(c, "gl").is_dir() and Path(c, "whl").is_dir():
            return {"gl": str(Path(c, "gl")), "whl": str(Path(c, "whl"))}
    if (ROOT / ".gl").is_dir() or (ROOT / ".whl").is_dir():
        return {"gl": str(ROOT / ".gl"), "whl": str(ROOT / ".whl")}
    return {}


def have_vulkan_loader() -> bool:
    return ctypes.util.find_library("vulkan") is not None


def have_wgpu() -> bool:
    try:
        import wgpu  # noqa: F401
    except ImportError:
        return False
    return True


def setup(args, report: Report) -> None:
    """Install what the machine lacks, then run this script again with it on the path."""
    t0 = time.perf_counter()
    info = {"bundle": find_bundle(args.bundle), "steps": []}
    env = dict(os.environ)
    if not env.get("VK_DRIVER_FILES") and Path(NVIDIA_ICD).exists():
        env["VK_DRIVER_FILES"] = NVIDIA_ICD
        info["VK_DRIVER_FILES"] = NVIDIA_ICD

    def run(cmd):
        p = subprocess.run(cmd, capture_output=True, text=True)
        info["steps"].append({"cmd": " ".join(cmd)[:300], "rc": p.returncode, "err": p.stderr[-500:]})
        return p.returncode == 0

    bundle = info["bundle"]
    if not have_vulkan_loader():
        debs = sorted(glob.glob(os.path.join(bundle.get("gl", "/nonexistent"), "*.deb")))
        info["vulkan_loader"] = f"unpacking {len(debs)} .debs" if debs else "missing, and no .debs found"
        for deb in debs:
            run(["dpkg", "-x", deb, "/"])
        if debs:
            run(["ldconfig"])
    else:
        info["vulkan_loader"] = "present"
    wheels = sorted(glob.glob(os.path.join(bundle.get("whl", "/nonexistent"), "*.whl")))
    ours = sorted(glob.glob(str(ROOT / "dist" / "neuroflow-*.whl")))
    want = ([] if have_wgpu() else wheels) + ours[-1:]
    paths = []
    if want:
        ok = run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                  "--no-cache-dir", "--upgrade", "--target", SITE, *want])
        info["installed"] = [Path(w).name for w in want] if ok else "pip install failed (see steps)"
        paths.append(SITE)
    info["neuroflow_from"] = Path(ours[-1]).name if ours else str(ROOT / "python")
    if not ours:
        paths.append(str(ROOT / "python"))
        if not glob.glob(str(ROOT / "python" / "neuroflow" / "_core*.so")):
            info["warning"] = "no neuroflow wheel in dist/ and no python/neuroflow/_core*.so: the CPU engine is missing"
    env["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [env.get("PYTHONPATH")] if p])
    env["NF_DEVICE_CHECK_SETUP_S"] = str(time.perf_counter() - t0)
    report.data["setup"] = info
    report.save()
    log(f"set-up: {json.dumps(info)[:500]}")
    argv = [sys.executable, __file__, *sys.argv[1:], "--no-setup"]
    os.execve(sys.executable, argv, env)


# ---------------------------------------------------------------- 1. environment, adapter


def environment() -> dict:
    import numpy as np

    out = {"python": platform.python_version(), "numpy": np.__version__, "machine": platform.machine(),
           "cpus": os.cpu_count(), "argv": sys.argv[1:]}
    try:
        import wgpu

        out["wgpu"] = wgpu.__version__
    except ImportError as e:
        out["wgpu"] = f"missing: {e}"
    try:
        import neuroflow

        out["neuroflow"] = str(Path(neuroflow.__file__).parent)
        from neuroflow import _core  # noqa: F401

        out["cpu_engine"] = True
    except ImportError as e:
        out["cpu_engine"] = f"missing: {e}"
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else False
    except Exception as e:
        out["torch"] = f"missing: {e}"
    if shutil.which("nvidia-smi"):
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
        out["nvidia_smi"] = p.stdout.strip()[:300]
    out["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                   text=True).stdout.strip() or os.environ.get("NF_COMMIT", "?")
    return out


def adapter() -> dict:
    from neuroflow.gpu import adapters, get_gpu

    found = adapters()
    gpu = get_gpu()
    return {"adapters": found, "chosen": gpu.info, "limits": dict(gpu.limits),
            "features": sorted(gpu.features), "derived": {"max_binding": gpu.max_binding, "max_buffer": gpu.max_buffer,
                                                         "gemm_fill": gpu.gemm_fill, "workgroup_storage": gpu.workgroup_storage}}


# ---------------------------------------------------------------- 2. parity


def test_suite(seconds: float, smoke: bool) -> dict:
    try:
        import pytest  # noqa: F401
    except ImportError:
        return {"skipped": "pytest is not installed"}
    if smoke:
        return {"skipped": "--smoke"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           "tests/test_gpu_ops.py", "tests/test_gpu_engine.py", "tests/conformance", "-k", "gpu or not conformance"]
    try:
        import xdist  # noqa: F401

        cmd += ["-n", "4"]
    except ImportError:
        pass
    env = dict(os.environ, CI="1")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=max(10.0, seconds))
    except subprocess.TimeoutExpired as e:
        tail = (e.stdout or b"")[-1500:]
        return {"timed_out_after_s": round(seconds, 1), "tail": tail.decode() if isinstance(tail, bytes) else tail}
    lines = (p.stdout + p.stderr).strip().splitlines()
    return {"returncode": p.returncode, "summary": lines[-1] if lines else "", "seconds": round(time.perf_counter() - t0, 1),
            "failures": [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))][:20]}


def rel_err(got, want) -> float:
    import numpy as np

    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def he_params(engine, rng):
    import numpy as np

    out = []
    for name, shape in engine.param_info():
        if name.endswith(".weight"):
            out.append((rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))).astype(np.float32))
        elif name.endswith(".scale"):
            out.append(np.ones(shape, np.float32))
        else:
            out.append(np.zeros(shape, np.float32))
    return out


def training_parity(net: dict, batch: int) -> dict:
    import numpy as np

    from neuroflow.gpu import GpuEngine

    try:
        from neuroflow._core import Engine
    except ImportError as e:
        return {"skipped": f"the CPU engine is missing: {e}"}
    spec = net["spec"]
    rng = np.random.default_rng(1)
    g, c = GpuEngine(spec), Engine(spec)
    params = he_params(g, rng)
    g.set_params(params)
    c.set_params(params)
    x, t = net["data"](batch, rng, "uint8")
    out = {"net": net["name"], "batch": batch, "chunk": None, "reference": "CPU engine, f32"}
    out["forward"] = rel_err(g.forward(x), c.forward(x))
    out["loss"] = rel_err(g.loss(x, t, "train"), c.loss(x, t, "train"))
    out["gradients"] = max(rel_err(a, b) for a, b in zip(g.gradients(x, t), c.gradients(x, t)))
    out["chunk"] = g._ws.cap
    out["step_loss"] = rel_err(g.train_step(x, t, 0.01), c.train_step(x, t, 0.01))
    out["params_after_step"] = max(rel_err(a, b) for a, b in zip(g.get_params(), c.get_params()))
    out["second_step_loss"] = rel_err(g.train_step(x, t, 0.01), c.train_step(x, t, 0.01))
    out["ok"] = all(out[k] <= 1e-4 for k in ("forward", "loss", "gradients", "step_loss", "params_after_step"))
    out["note"] = ("ReLU kinks: an input within f32 rounding of 0 may take the other side of the kink on the "
                   "other engine; a single larger gradient error with everything else tight is that")
    return out


# ---------------------------------------------------------------- GPU timing


class Timer:
    """Times recorded gemm steps: a compute pass of `reps` repeats between two GPU
    timestamps (or the wall clock around submit and read when the adapter has none)."""

    def __init__(self, gpu):
        self.gpu = gpu
        self.stamps = "timestamp-query" in gpu.features
        if self.stamps:
            u = gpu.wgpu.BufferUsage
            self.qs = gpu.device.create_query_set(type=gpu.wgpu.QueryType.timestamp, count=2)
            self.res = gpu.device.create_buffer(size=16, usage=u.QUERY_RESOLVE | u.COPY_SRC)

    def seconds(self, steps: list, reps: int) -> float:
        import numpy as np

        gpu = self.gpu
        enc = gpu.device.create_command_encoder()
        kw = {}
        if self.stamps:
            kw["timestamp_writes"] = {"query_set": self.qs, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1}
        cp = enc.begin_compute_pass(**kw)
        for _ in range(reps):
            for pipe, group, grid in steps:
                cp.set_pipeline(pipe)
                cp.set_bind_group(0, group)
                cp.dispatch_workgroups(*grid)
        cp.end()
        if self.stamps:
            enc.resolve_query_set(self.qs, 0, 2, self.res, 0)
        t0 = time.perf_counter()
        gpu.queue.submit([enc.finish()])
        if self.stamps:
            ts = np.frombuffer(gpu.queue.read_buffer(self.res, 0, 16), np.uint64)
            return float(ts[1] - ts[0]) * 1e-9 / reps  # WebGPU timestamps are nanoseconds
        gpu.queue.read_buffer(self.res_wall(), 0, 4)
        return (time.perf_counter() - t0) / reps

    def res_wall(self):
        if not hasattr(self, "_wall"):
            self._wall = self.gpu.storage(16, "timer")
        return self._wall

    def measure(self, steps: list, budget_s: float = 0.3, most: int = 200) -> tuple:
        """(seconds per repeat, repeats): a warm-up, then as many repeats as fit budget_s."""
        one = self.seconds(steps, 1)
        one = self.seconds(steps, 1)
        reps = int(max(1, min(most, budget_s / max(one, 1e-7))))
        return self.seconds(steps, reps), reps


def record_gemm(gpu, call: dict, **pin) -> list:
    """The steps of one gemm call (captured arguments), with the kernel pinned."""
    from neuroflow.engines.gpu import ops
    from neuroflow.engines.gpu.kernels import Cache

    rec = ops.Recorder(gpu, call.get("cache") or Cache(gpu))
    kw = dict(call["kw"], **pin)
    ops.gemm(rec, *call["args"], **kw)
    return [s for s in rec.steps if len(s) == 3]


# ---------------------------------------------------------------- 3. gemm sweep


def gemm_sweep(gpu, peak_tflops: float, deadline: Deadline, sizes: list, all_tiles_at: int, forms: tuple) -> dict:
    import numpy as np

    from neuroflow.engines.gpu import ops

    timer = Timer(gpu)
    out = {"timing": "GPU timestamps" if timer.stamps else "wall clock", "peak_tflops": peak_tflops, "rows": []}
    biggest = max(sizes)
    bufs = [gpu.storage(4 * biggest * biggest, f"sweep{i}") for i in range(3)]
    rng = np.random.default_rng(0)
    for b in bufs[:2]:
        gpu.write(b, rng.standard_normal(biggest * biggest).astype(np.float32))

    def one(n, form, tile=None):
        ta, tb = form[0] == "T", form[1] == "T"
        call = {"args": (bufs[0], bufs[1], bufs[2], n, n, n), "kw": {"trans_a": ta, "trans_b": tb}}
        pin = {"tile": tile} if tile else {}
        steps = record_gemm(gpu, call, **pin)
        chosen = tile or ops.plan(gpu, n, n, n, key=ops.shape_key(form, n, n, n))[0]
        sec, reps = timer.measure(steps, 0.25 if n < 8192 else 0.6)
        gflops = 2 * n**3 / sec / 1e9
        row = {"n": n, "form": form, "kernel": chosen, "ms": round(sec * 1e3, 4), "gflops": round(gflops, 1),
               "fraction_of_peak": round(gflops / (peak_tflops * 1e3), 4), "reps": reps}
        out["rows"].append(row)
        return row

    for n in sizes:
        if deadline.left() < 3:
            out["stopped"] = "out of time"
            return out
        one(n, "NN")
    if all_tiles_at:
        for form in forms:
            for tile, t in ops.TILES.items():
                if deadline.left() < 2:
                    out["stopped"] = "out of time"
                    return out
                if t.shared_bytes <= gpu.workgroup_storage:
                    one(all_tiles_at, form, tile)
    best = max((r for r in out["rows"] if r["n"] == all_tiles_at), key=lambda r: r["gflops"], default=None)
    out["best_at_%d" % all_tiles_at] = best
    return out


# ---------------------------------------------------------------- 4. autotuning


def capture_gemms(spec: str, batch: int, dtype: str, data) -> list:
    """Every gemm call of one training step of the net (its arguments, on the engine's own
    buffers), by recording the step with ops.gemm wrapped."""
    import numpy as np

    from neuroflow.engines.gpu import GpuEngine, ops

    calls = []
    real = ops.gemm

    def spy(rec, *args, **kw):
        calls.append({"args": args, "kw": dict(kw), "cache": rec.cache})
        return real(rec, *args, **kw)

    ops.gemm = spy
    try:
        e = GpuEngine(spec)
        x, t = data(batch, np.random.default_rng(0), dtype)
        e.set_params(he_params(e, np.random.default_rng(0)))
        e.train_step(x, t, 1e-3)
    finally:
        ops.gemm = real
    for c in calls:
        c["engine"] = e  # keeps the buffers alive
    return calls


def _key(call) -> str:
    from neuroflow.engines.gpu import ops

    a, kw = call["args"], call["kw"]
    m, n, k = a[3], a[4], a[5]
    conv = kw.get("conv")
    form = ("T" if kw.get("trans_a") else "N") + ("T" if kw.get("trans_b") else "N") + (
        "" if conv is None else ("/dgrad" if conv.phased else ("/wgrad" if kw.get("trans_a") else "/conv")))
    return ops.shape_key(form, m, n, k)


def autotune(gpu, nets: list, deadline: Deadline, out_dir: Path) -> dict:
    from neuroflow.engines.gpu import ops

    timer = Timer(gpu)
    table, rows = {}, []
    for net in nets:
        if deadline.left() < 5:
            break
        calls = capture_gemms(net["spec"], net["batch"], "uint8", net["data"])
        for call in calls:
            key = _key(call)
            if key in table or deadline.left() < 2:
                continue
            kw = call["kw"]
            conv = kw.get("conv")
            phased = conv is not None and conv.phased
            can_split = kw.get("epilogue") is None and not phased
            dims, phases = _plan_dims(call), (conv.g.sx * conv.g.sy if phased else 1)
            default = ops.plan(gpu, *dims, phases=phases, can_split=can_split)
            options = []  # (kernel, splits) as the plan resolves them, each once
            for tile in [ops.SMALL] + [t for t, v in ops.TILES.items() if v.shared_bytes <= gpu.workgroup_storage]:
                for splits in (None, 1):
                    o = ops.plan(gpu, *dims, phases=phases, can_split=can_split, tile=tile, splits=splits)
                    if o not in options:
                        options.append(o)
            timed = []
            for tile, splits in options:
                if deadline.left() < 1:
                    break
                pin = {"small": True} if tile == ops.SMALL else {"tile": tile}
                try:
                    steps = record_gemm(gpu, call, splits=splits, **pin)
                    sec, _ = timer.measure(steps, 0.02, 50)
                except Exception as e:  # a combination the kernel refuses
                    timed.append((math.inf, tile, splits, f"{type(e).__name__}: {e}"))
                    continue
                timed.append((sec, tile, splits, None))
            ok = [t for t in timed if t[0] < math.inf]
            if not ok:
                continue
            best = min(ok, key=lambda t: t[0])
            dflt = next((t[0] for t in ok if (t[1], t[2]) == tuple(default)), None)
            table[key] = f"{best[1]}/{best[2]}"
            rows.append({"net": net["name"], "key": key, "best": table[key], "best_us": round(best[0] * 1e6, 2),
                         "default": f"{default[0]}/{default[1]}", "default_us": round(dflt * 1e6, 2) if dflt else None,
                         "tried": len(timed)})
    path = out_dir / "gpu_tuning.json"
    path.write_text(json.dumps({gpu.info["name"]: table}, indent=1))
    gain = [r["default_us"] / r["best_us"] for r in rows if r["default_us"]]
    return {"file": str(path), "shapes": len(table), "rows": rows,
            "default_over_best_median": round(sorted(gain)[len(gain) // 2], 3) if gain else None,
            "stopped": "out of time" if deadline.left() < 2 else None}


def _plan_dims(call) -> tuple:
    """(m, n, k) as ops.gemm plans them (a phased convolution: one phase's rows and K)."""
    a, kw = call["args"], call["kw"]
    m, n, k = a[3], a[4], a[5]
    conv = kw.get("conv")
    if conv is not None and conv.phased:
        g = conv.g
        return conv.batch * -(-g.x // g.sx) * -(-g.y // g.sy), n, -(-g.fx // g.sx) * -(-g.fy // g.sy) * conv.filters
    return m, n, k


# ---------------------------------------------------------------- 5. throughput


def time_steps(step, batch: int, seconds: float, warm: int = 2) -> dict:
    t0 = time.perf_counter()
    for _ in range(warm):
        step()
    warm_s = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while steps < 3 or (time.perf_counter() - t0 < seconds and steps < 2000):
        step()
        steps += 1
    dt = time.perf_counter() - t0
    return {"images_per_s": round(steps * batch / dt, 1), "ms_per_step": round(dt / steps * 1e3, 3), "steps": steps,
            "warmup_s": round(warm_s, 2)}


def neuroflow_throughput(net: dict, dtype: str, seconds: float) -> dict:
    import numpy as np

    from neuroflow.gpu import GpuEngine
    from neuroflow.engines.gpu.ops import dispatches

    e = GpuEngine(net["spec"])
    rng = np.random.default_rng(2)
    e.set_params(he_params(e, rng))
    x, t = net["data"](net["batch"], rng, dtype)
    out = time_steps(lambda: e.train_step(x, t, 1e-3), net["batch"], seconds)
    key = next(k for k in e._ws.programs if k[0] == "train")
    out.update(batch=net["batch"], input=dtype, dispatches=dispatches(e._ws.programs[key][0]), chunk=e._ws.cap)
    return out


def torch_model(spec: str):
    """The same layout in PyTorch (NCHW; shapes as the spec resolves them)."""
    import torch
    from torch import nn

    acts = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity, "gelu": nn.GELU,
            "softplus": nn.Softplus}

    def act(a):
        return nn.LeakyReLU(a.get("alpha", 0.0)) if a["name"] == "leaky_relu" else acts.get(a["name"], nn.Identity)()

    def build(layers):
        mods = []
        for l in layers:
            kind = l["kind"]
            if kind == "conv":
                mods += [nn.Conv2d(l["dim_in"][2], l["filters"], tuple(l["field"]), tuple(l["stride"]),
                                   tuple(l["padding"]), bias=l.get("bias", False)), act(l["activator"])]
            elif kind == "dense":
                if len(l["dim_in"]) > 1 and not (mods and isinstance(mods[-1], nn.Flatten)):
                    mods.append(nn.Flatten())
                mods += [nn.Linear(int(math.prod(l["dim_in"])), l["neurons"], bias=l.get("bias", False)), act(l["activator"])]
            elif kind == "batchnorm":
                mods += [nn.BatchNorm2d(l["dim_in"][-1]) if len(l["dim_in"]) == 3 else nn.BatchNorm1d(l["dim_in"][0]),
                         act(l.get("activator", {"name": "linear"}))]
            elif kind in ("maxpool", "avgpool"):
                cls = nn.MaxPool2d if kind == "maxpool" else nn.AvgPool2d
                mods.append(cls(tuple(l["field"]), tuple(l["stride"]), tuple(l.get("padding", [0, 0]))))
            elif kind == "global_avg_pool":
                mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
            elif kind == "dropout":
                mods.append(nn.Dropout(l["rate"]))
            else:
                raise ValueError(f"torch_model: layer kind {kind} is not mapped")
        return mods

    s = json.loads(spec)
    return nn.Sequential(*build(s["layers"])), torch


def torch_throughput(net: dict, seconds: float) -> dict:
    try:
        import torch
    except ImportError as e:
        return {"skipped": f"torch not importable: {e}"}
    if not torch.cuda.is_available():
        return {"skipped": "torch sees no CUDA device"}
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    model, _ = torch_model(net["spec"])
    dev = torch.device("cuda")
    model = model.to(dev).to(memory_format=torch.channels_last)
    s = json.loads(net["spec"])
    x_, y_, z_ = s["input"]
    b = net["batch"]
    x = torch.rand((b, z_, x_, y_), device=dev).to(memory_format=torch.channels_last)
    k = s["layers"][-1]["dim_out"][-1]
    t = torch.nn.functional.one_hot(torch.randint(0, k, (b,), device=dev), k).float()
    upd = s["update"]
    if upd["name"] in ("momentum", "nesterov"):
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=upd.get("mu", 0.9), nesterov=upd["name"] == "nesterov")
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = -(t * torch.log_softmax(model(x), dim=1)).sum()
        loss.backward()
        opt.step()
        return loss.item()  # read back each step, as GpuEngine.train_step does

    out = time_steps(step, b, seconds, warm=3)
    out.update(batch=b, torch=torch.__version__, device=torch.cuda.get_device_name(0), tf32=False, layout="channels_last")
    return out


# ---------------------------------------------------------------- the nets


def nets(smoke: bool) -> list:
    """The benchmark nets (benchmarks/nets.py) and an airbench-like net: name, resolved
    spec, batch, a data maker."""
    import numpy as np

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_proxies
    import nets as bench

    def maker(dim_in, classes):
        def data(n, rng, dtype):
            if dtype == "uint8":
                x = rng.integers(0, 256, (n, *dim_in), dtype=np.uint8)
            else:
                x = rng.uniform(0, 1, (n, *dim_in)).astype(np.float32)
            return x, np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]

        return data

    out = []
    for n in bench.NETS:
        if not n.train:
            continue
        name = n.name.split(" ")[0]
        if smoke and name != "small-cifar":
            continue
        out.append({"name": name, "spec": bench.neuroflow_net(n, 0.01).spec_json, "batch": 2 if smoke else n.batch,
                    "data": maker(n.dim_in, n.classes)})
    if not smoke:
        try:
            out.append({"name": "airbench-like", "spec": gpu_proxies.airbench_like().spec_json, "batch": 512,
                        "data": maker((32, 32, 3), 10)})
        except Exception as e:
            log(f"airbench-like net skipped: {e}")
    order = ["small-cifar", "neuroflow-cifar", "airbench-like", "glasses"]  # the goals first
    return sorted(out, key=lambda n: order.index(n["name"]) if n["name"] in order else len(order))


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-check-out"), help="folder for the JSON (default $OUT)")
    ap.add_argument("--budget-s", type=float, default=225.0, help="wall-clock budget of the whole run, set-up included")
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="the card's fp32 peak (H100/H200 SXM ~67)")
    ap.add_argument("--bundle", help="folder with gl/*.deb and whl/*.whl (default: looked for)")
    ap.add_argument("--no-setup", action="store_true", help="use what is installed")
    ap.add_argument("--smoke", action="store_true", help="small sizes, no test suite: for a software adapter")
    ap.add_argument("--skip", default="", help="comma-separated phases to skip: tests, parity, sweep, tune, train")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out)
    setup_s = float(os.environ.get("NF_DEVICE_CHECK_SETUP_S", "0") or 0)
    if not args.no_setup and not (have_wgpu() and have_vulkan_loader()):
        setup(args, report)  # runs this script again (never returns)
    report.data["setup_seconds"] = setup_s
    try:
        import neuroflow  # noqa: F401
    except ImportError:  # no wheel installed: the source tree's package (and its carried core)
        sys.path.insert(0, str(ROOT / "python"))
    whole = Deadline(args.budget_s - setup_s)
    skip = set(filter(None, args.skip.split(",")))
    env = phase(report, "environment", environment)
    found = phase(report, "adapter", adapter)
    if "error" in found:
        msg = ("no usable GPU adapter: " + found["error"].split("\n")[0] +
               " — the report holds the environment; nothing else was measured")
        report.data["message"] = msg
        report.save()
        print(f"gpu_device_check: {msg}", file=sys.stderr)
        sys.exit(2)
    from neuroflow.gpu import get_gpu

    gpu = get_gpu()
    smoke = args.smoke
    the_nets = nets(smoke)
    small = next(n for n in the_nets if n["name"] == "small-cifar")
    if "tests" not in skip:
        phase(report, "test_suite", test_suite, min(70.0, whole.left() * 0.3), smoke)
    if "parity" not in skip:
        phase(report, "training_parity", training_parity, small, 2 if smoke else 128)
    if "sweep" not in skip:
        sizes = [64] if smoke else [512, 1024, 2048, 4096, 8192]
        phase(report, "gemm_sweep", gemm_sweep, gpu, args.peak_tflops, Deadline(min(40.0, whole.left() * 0.25)),
              sizes, 64 if smoke else 4096, ("NN",) if smoke else ("NN", "TN", "NT"))
    if "tune" not in skip:
        tuned = phase(report, "autotune", autotune, gpu, the_nets,
                      Deadline(8.0 if smoke else min(40.0, whole.left() * 0.3)), out)
        if isinstance(tuned, dict) and tuned.get("file"):
            os.environ["NEUROFLOW_GPU_TUNING"] = tuned["file"]
            gpu._tuning = None  # read the new table
    if "train" not in skip:
        per = 0.5 if smoke else max(1.0, min(6.0, (whole.left() - 10) / max(1, 3 * len(the_nets))))
        for net in the_nets:
            if whole.left() < 8:
                report.data.setdefault("train_stopped", []).append(net["name"])
                continue
            for dtype in ("uint8",) if smoke else ("uint8", "float32"):
                phase(report, f"train_{net['name']}_neuroflow_{dtype}", neuroflow_throughput, net, dtype, per)
            phase(report, f"train_{net['name']}_torch", torch_throughput, net, per)
    report.data["cifar10_94_percent"] = {"attempted": False, "why": "no CIFAR-10 data on the lent machine in this "
                                         "script, and the speed recipe is issue 13's; the throughput above is its proxy"}
    summary = {}
    sweep = report.data.get("gemm_sweep", {})
    for r in sweep.get("rows", []) if isinstance(sweep, dict) else []:
        if r["n"] == 4096 and r["form"] == "NN" and r["kernel"] == "128x128":
            summary["sgemm_4096_128x128_fraction_of_peak"] = r["fraction_of_peak"]
    if isinstance(sweep, dict) and sweep.get("best_at_4096"):
        summary["sgemm_4096_best"] = sweep["best_at_4096"]
    for net in the_nets:
        nf = report.data.get(f"train_{net['name']}_neuroflow_uint8", {})
        th = report.data.get(f"train_{net['name']}_torch", {})
        if isinstance(nf, dict) and isinstance(th, dict) and nf.get("images_per_s") and th.get("images_per_s"):
            summary[f"{net['name']}_vs_torch"] = round(nf["images_per_s"] / th["images_per_s"], 3)
    report.data["summary"] = summary
    report.save()
    log(f"summary: {json.dumps(summary)}")
    log(f"wrote {report.path} ({env.get('commit', '?')})")


if __name__ == "__main__":
    main()

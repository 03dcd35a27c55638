"""neuroflow against PyTorch on the CPU, side by side in one process.

    python benchmarks/bench.py [--rounds 7] [--steps 3] [--threads N] [--json out.json] [--only NAME]
                               [--no-memory] [--no-sgemm] [--no-nets] [--mode data|engine|both]

Two measurements (``--mode``, default both):

- *data* (the headline): what a user's training loop runs. A data set of 4 batches of
  uint8 images; each measurement is one whole call — ``net.train(xs, ys)`` of 10 steps on
  shuffled batches drawn from it (neuroflow gathers and converts them in its core), and for
  PyTorch the same 10 steps drawing shuffled batches from a uint8 tensor, converting them
  to float, forward, backward, step — timed from the call's start to its end.
- *engine*: one batch, the engine's step alone, repeated.

For each net (benchmarks/nets.py) it alternates neuroflow and PyTorch (NCHW and
channels_last; the better counts) round by round after a warm-up, and prints images/s
(median, min, max) and the ratio neuroflow / PyTorch. It also prints sgemm GFLOP/s of the
Rust backend against NumPy's BLAS, and each run's peak memory (measured in a fresh child
process per framework, so one run's allocations do not hide another's). Without PyTorch
(`pip install ".[bench]"`) it says so and measures neuroflow alone.
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
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import neuroflow as nf  # noqa: E402
from nets import NETS, neuroflow_net, torch_net  # noqa: E402

LR = 1e-4
# Idle thread pools keep spinning for a while after their last job (OpenBLAS about 0.1 s,
# OpenMP less): measured right after another framework, a run would share its cores with
# those spinners. Each measurement starts after this pause.
SETTLE_S = 0.25
# Untimed steps after each pause, for at least this long.
WARM_S = 0.1


def try_torch():
    try:
        import torch

        return torch
    except ImportError:
        return None


def batch(spec, rng):
    x = rng.uniform(0, 1, (spec.batch,) + spec.dim_in).astype(np.float32)
    y = rng.integers(0, spec.classes, spec.batch)
    return x, y


class NeuroflowRunner:
    name = "neuroflow"

    def __init__(self, spec, x, y):
        self.spec, self.net = spec, neuroflow_net(spec, LR)
        self.x, self.t = x, np.eye(spec.classes, dtype=np.float32)[y]
        self.engine = self.net._engine  # the step the training loop runs, without the loop's bookkeeping

    def step(self):
        if self.spec.train:
            self.engine.train_step(self.x, self.t, LR)
        else:
            self.engine.predict(self.x)


class TorchRunner:
    def __init__(self, torch, spec, x, y, channels_last):
        self.torch, self.spec = torch, spec
        self.name = "torch " + ("channels_last" if channels_last else "NCHW")
        self.model = torch_net(spec, channels_last)
        # (N, X, Y, Z) → NCHW with H = Y, W = X
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 2, 1)))
        self.x = xt.to(memory_format=torch.channels_last) if channels_last else xt
        self.y = torch.from_numpy(y)
        if spec.speed:
            params = [p for p in self.model.parameters() if p.requires_grad]
            self.opt = torch.optim.SGD(params, lr=LR, momentum=0.9, nesterov=True, weight_decay=5e-4)
            self.loss = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=LR, momentum=0.9)
            self.loss = torch.nn.CrossEntropyLoss(reduction="sum")

    def step(self):
        if self.spec.train:
            self.opt.zero_grad(set_to_none=True)
            self.loss(self.model(self.x), self.y).backward()
            self.opt.step()
        else:
            with self.torch.inference_mode():
                self.model(self.x)


DATA_BATCHES = 4  # the data mode's set: this many batches of images
CALL_STEPS = 10  # steps per measured call in the data mode


class NeuroflowData:
    """The data mode for neuroflow: whole ``train`` calls on a uint8 set of several batches."""

    name = "neuroflow"

    def __init__(self, spec, x, y):
        self.spec, self.net = spec, neuroflow_net(spec, LR)
        self.x, self.y = x, y
        self.net.settings = replace(self.net.settings, iterations=CALL_STEPS, shuffle=True)

    def step(self):  # one call = CALL_STEPS steps
        self.net.train(self.x, self.y)


class TorchData:
    """The data mode for PyTorch: CALL_STEPS steps on shuffled batches of a uint8 tensor."""

    def __init__(self, torch, spec, x, y, channels_last):
        self.inner = TorchRunner(torch, spec, x[: spec.batch], y[: spec.batch], channels_last)
        self.name, self.torch, self.spec = self.inner.name, torch, spec
        # (N, X, Y, Z) → (N, C, H, W) uint8 once, as a user's dataset would hold it
        self.x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 2, 1)))
        self.y = torch.from_numpy(y)
        self.cl = channels_last

    def step(self):
        torch, inner = self.torch, self.inner
        order = torch.randperm(len(self.x))
        for i in range(CALL_STEPS):
            idx = order[(i * self.spec.batch) % len(self.x):][: self.spec.batch]
            xb = self.x[idx].float().div_(255.0)
            if self.cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            inner.x, inner.y = xb, self.y[idx]
            inner.step()


def images_per_second(runner, steps):
    time.sleep(SETTLE_S)
    # The first steps after an idle pause pay for waking the cores (here the first two
    # steps of either framework are 10-20 % slower): untimed, and the same wall time for
    # both, or the warm-up would tax the faster framework's shorter measurement most.
    t = time.perf_counter()
    runner.step()
    while time.perf_counter() - t < WARM_S:
        runner.step()
    t = time.perf_counter()
    for _ in range(steps):
        runner.step()
    per_call = CALL_STEPS if isinstance(runner, (NeuroflowData, TorchData)) else 1
    return steps * per_call * runner.spec.batch / (time.perf_counter() - t)


def compare(spec, torch, rounds, steps, rng, mode="engine"):
    if mode == "data":
        x = rng.integers(0, 256, (DATA_BATCHES * spec.batch,) + spec.dim_in, dtype=np.uint8)
        y = rng.integers(0, spec.classes, DATA_BATCHES * spec.batch)
        runners = [NeuroflowData(spec, x, y)]
        if torch is not None:
            runners += [TorchData(torch, spec, x, y, cl) for cl in (False, True)]
        steps = 1  # a measurement is one call of CALL_STEPS steps
    else:
        x, y = batch(spec, rng)
        runners = [NeuroflowRunner(spec, x, y)]
        if torch is not None:
            runners += [TorchRunner(torch, spec, x, y, cl) for cl in (False, True)]
    for r in runners:  # warm-up: allocation, caches, kernel selection
        r.step()
        r.step()
    rates = {r.name: [] for r in runners}
    for _ in range(rounds):  # A B C A B C …: drift on a shared machine hits all alike
        for r in runners:
            rates[r.name].append(images_per_second(r, steps))
    return rates


def peak_memory(spec_name, framework, steps):
    """Peak RSS (MiB) of a fresh process that builds the net and runs `steps` steps."""
    cmd = [sys.executable, __file__, "--memory-probe", spec_name, framework, "--steps", str(steps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return float("nan")


def memory_probe(spec_name, framework, steps):
    spec = next(s for s in NETS if s.name == spec_name)
    x, y = batch(spec, np.random.default_rng(0))
    if framework == "neuroflow":
        r = NeuroflowRunner(spec, x, y)
    else:
        r = TorchRunner(try_torch(), spec, x, y, framework.endswith("channels_last"))
    for _ in range(steps):
        r.step()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork/exec.
    status = Path("/proc/self/status").read_text()
    print(int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024)


def gemm_probe(impl: str, n: int, reps: int = 10, warm_s: float = 0.2) -> None:
    """Print the median sgemm GFLOP/s of one implementation in this (fresh) process:
    products for `warm_s` seconds first (a 512³ product takes about a millisecond, less
    than it takes an idle core of a shared machine to come up to speed), then at least
    `reps` timed ones, and at least `warm_s` seconds of them."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    f = nf._core.matmul if impl == "rust" else np.matmul
    c = f(a, b)
    start = time.perf_counter()
    while time.perf_counter() - start < warm_s:
        f(a, b)
    times = []
    while len(times) < reps or sum(times) < warm_s:
        t = time.perf_counter()
        f(a, b)
        times.append(time.perf_counter() - t)
    if impl == "rust":  # checked after timing: NumPy's threads would spin during it
        np.testing.assert_allclose(c, a @ b, rtol=2e-3, atol=2e-3 * np.sqrt(n))
    print(2 * n**3 / statistics.median(times) / 1e9)


def gemm_rates(sizes, rounds=5, threads=None):
    """sgemm GFLOP/s (median over rounds) of the Rust backend and NumPy's BLAS, each round
    a fresh process per implementation, alternating: one library's idle threads (OpenBLAS
    spins for a while after each call) never share the cores with the other's work."""
    rows = []
    env = dict(os.environ)
    if threads:
        env.update(NEUROFLOW_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    for n in sizes:
        rates = {"rust": [], "numpy": []}
        for _ in range(rounds):
            for impl in rates:
                cmd = [sys.executable, __file__, "--gemm-probe", impl, str(n)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
                rates[impl].append(float(out.stdout.strip().splitlines()[-1]))
        rows.append((n, statistics.median(rates["rust"]), statistics.median(rates["numpy"])))
    return rows


def summary(values):
    return statistics.median(values), min(values), max(values)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=3, help="steps per measurement")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--only", default=None, help="run only nets whose name contains this")
    ap.add_argument("--json", default="benchmarks/last-run.json")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-nets", action="store_true", help="only the sgemm comparison")
    ap.add_argument("--no-sgemm", action="store_true", help="only the nets")
    ap.add_argument("--mode", choices=["data", "engine", "both"], default="both",
                    help="data: whole train calls on batches drawn from a set (the headline); engine: one batch, steps alone")
    ap.add_argument("--memory-probe", nargs=2, metavar=("NET", "FRAMEWORK"), help=argparse.SUPPRESS)
    ap.add_argument("--gemm-probe", nargs=2, metavar=("IMPL", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.gemm_probe:
        gemm_probe(args.gemm_probe[0], int(args.gemm_probe[1]))
        return
    # a neuroflow memory probe must not pay for importing PyTorch
    probe_nf = args.memory_probe is not None and args.memory_probe[1] == "neuroflow"
    torch = None if probe_nf else try_torch()
    nf.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_probe(*args.memory_probe, args.steps)
        return
    if torch is None:
        print('PyTorch is not installed: measuring neuroflow alone (pip install ".[bench]" or pip install torch)')
    rng = np.random.default_rng()
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
               "cpus": os.cpu_count(), "threads": args.threads, "neuroflow": nf.__version__,
               "torch": getattr(torch, "__version__", None), "nets": [], "gemm": []}
    modes = ["data", "engine"] if args.mode == "both" else [args.mode]
    print(f"{'net':30} {'framework':24} {'img/s median':>12} {'min':>9} {'max':>9} {'peak MiB':>9}")
    shown = None
    for spec, mode in [(s, m) for m in modes for s in NETS]:
        if args.no_nets or (args.only and args.only not in spec.name) or (mode == "data" and not spec.train):
            continue
        if mode != shown:
            shown = mode
            print(f"-- mode {mode}: " + ("whole train() calls of 10 steps on batches drawn from a uint8 set of 4 batches"
                                        if mode == "data" else "one batch, the engine's step alone"))
        rates = compare(spec, torch, args.rounds, args.steps, rng, mode)
        entry = {"net": spec.name, "mode": mode, "runs": {}}
        for name, vals in rates.items():
            med, lo, hi = summary(vals)
            mem = float("nan") if args.no_memory or mode == "data" else peak_memory(spec.name, name.replace("torch ", "torch_"), 2)
            entry["runs"][name] = {"median": med, "min": lo, "max": hi, "peak_mib": mem, "all": vals}
            print(f"{spec.name:30} {name:24} {med:12.1f} {lo:9.1f} {hi:9.1f} {mem:9.0f}")
        if torch is not None:
            best = max((n for n in rates if n.startswith("torch")), key=lambda n: statistics.median(rates[n]))
            ratio = statistics.median(rates["neuroflow"]) / statistics.median(rates[best])
            mem_ratio = entry["runs"]["neuroflow"]["peak_mib"] / entry["runs"][best]["peak_mib"] if mode == "engine" else float("nan")
            entry.update(best_torch=best, ratio=ratio, memory_ratio=mem_ratio)
            print(f"{'':30} {'ratio neuroflow/' + best.split()[1]:24} {ratio:12.2f}   memory ratio {mem_ratio:.2f}")
        results["nets"].append(entry)
        sys.stdout.flush()
    print(f"\n{'sgemm n':>8} {'rust GFLOP/s':>13} {'numpy GFLOP/s':>14} {'ratio':>6}")
    for n, rust, numpy in [] if args.no_sgemm else gemm_rates([512, 1024, 2048], threads=args.threads):
        results["gemm"].append({"n": n, "rust": rust, "numpy": numpy, "ratio": rust / numpy})
        print(f"{n:8} {rust:13.1f} {numpy:14.1f} {rust / numpy:6.2f}")
    Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\nwritten {args.json}")


if __name__ == "__main__":
    main()

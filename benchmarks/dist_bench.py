"""Data-parallel training on this machine: all-reduce bandwidth at the benchmark nets'
gradient sizes, step time and scaling for 1 and 2 local ranks, and a paper model of N
machines on Ethernet (benchmarks/RESULTS.md, "Data-parallel training").

    python benchmarks/dist_bench.py [--steps 6] [--json out.json]

It runs its own jobs under the installed MPI's mpiexec (the `distributed` extra)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

NET_NAMES = ["small-cifar train b128", "neuroflow-cifar train b128"]


def _nets():
    from nets import NETS

    return [n for n in NETS if n.name in NET_NAMES]


def _mpiexec() -> str:
    from neuroflow.apps.launch import find_mpiexec

    return find_mpiexec()


# ---------------------------------------------------------------- inside a job


def job_allreduce(sizes: list[int], reps: int) -> None:
    from mpi4py import MPI

    from neuroflow.distributed import Distributed

    d = Distributed()
    out = []
    for floats in sizes:
        buf = np.ones(floats, np.float32)
        for how in ("blocking", "polled"):
            times = []
            for i in range(reps + 2):
                d.barrier()
                t0 = time.perf_counter()
                if how == "blocking":
                    d.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
                else:
                    d.allreduce(buf)
                times.append(time.perf_counter() - t0)
            t = float(np.median(times[2:]))
            out.append({"floats": floats, "bytes": 4 * floats, "how": how, "seconds": t})
    if d.rank == 0:
        print(json.dumps({"allreduce": out, "ranks": d.size, "library": d.library}))


def job_steps(name: str, steps: int, distributed: bool) -> None:
    from nets import NETS, neuroflow_net

    spec = next(n for n in NETS if n.name == name)
    rng = np.random.default_rng(0)
    n = spec.batch * 4
    xs = rng.integers(0, 256, (n,) + spec.dim_in, dtype=np.uint8)
    ys = rng.integers(0, spec.classes, n)
    net = neuroflow_net(spec, 1e-4)
    stamps: list[float] = []
    from dataclasses import replace

    net.settings = replace(net.settings, iterations=steps + 2, loss_func_output=lambda loss: stamps.append(time.perf_counter()))
    t0 = time.perf_counter()
    net.train(xs, ys, distributed=distributed)
    times = np.diff([t0] + stamps)[2:]  # the first two steps grow buffers and warm up
    rank = 0
    if distributed:
        rank = net._dist.rank
    if rank == 0:
        from neuroflow import num_threads

        print(json.dumps({"net": name, "step_seconds": float(np.median(times)), "steps": len(times),
                          "threads": num_threads(), "params": int(net.num_weights)}))


# ---------------------------------------------------------------- the driver


def run(cmd: list[str], env: dict) -> dict:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stderr[-3000:]}")
    return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])


def model(nets_measured: dict, per_byte: dict) -> list[dict]:
    """N machines like this one on 10/25/100 GbE: compute per step B/(N·r) against the
    ring all-reduce's 2(N−1)/N × gradient bytes at line rate plus 2(N−1) latencies of 30 µs;
    no overlap. Efficiency c/(c + m) ≥ 0.9 ⇔ B ≥ 9·m·N·r."""
    rows = []
    for name, m in nets_measured.items():
        rate = m["images_per_second_one_machine"]
        grad_bytes = 4 * m["params"]
        for gbit in (10, 25, 100):
            bw = gbit * 1e9 / 8 * 0.9  # 90 % of line rate for payload
            for n in (2, 4, 8, 16, 64):
                comm = 2 * (n - 1) / n * grad_bytes / bw + 2 * (n - 1) * 30e-6
                b_min = 9 * comm * n * rate
                rows.append({"net": name, "gbe": gbit, "machines": n, "grad_mb": grad_bytes / 1e6,
                             "allreduce_ms": comm * 1e3, "batch_for_90pct": int(np.ceil(b_min)),
                             "per_machine_batch": int(np.ceil(b_min / n))})
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "job-allreduce":
        job_allreduce(json.loads(sys.argv[2]), int(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "job-steps":
        job_steps(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    exe = _mpiexec()
    env = dict(os.environ)
    env.pop("NEUROFLOW_NUM_THREADS", None)
    results: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                           cwd=HERE).stdout.strip()
    except OSError:
        results["commit"] = "?"
    from nets import neuroflow_net

    sizes = {}
    for spec in _nets():
        sizes[spec.name] = int(neuroflow_net(spec, 1e-4).num_weights)
    probe = sorted(set(sizes.values()) | {2**16, 2**20, 2**22})
    results["allreduce"] = run([exe, "-n", "2", sys.executable, __file__, "job-allreduce", json.dumps(probe), "20"],
                               dict(env, NEUROFLOW_NUM_THREADS="1"))
    results["steps"] = []
    for spec in _nets():
        row = {"net": spec.name, "batch": spec.batch, "params": sizes[spec.name]}
        for label, cmd, threads in (
            ("1 rank, 2 threads", [sys.executable, __file__, "job-steps", spec.name, str(args.steps), "0"], "2"),
            ("1 rank, 1 thread", [sys.executable, __file__, "job-steps", spec.name, str(args.steps), "0"], "1"),
            ("2 ranks, 1 thread each", [exe, "-n", "2", sys.executable, __file__, "job-steps", spec.name, str(args.steps), "1"],
             "1"),
        ):
            row[label] = run(cmd, dict(env, NEUROFLOW_NUM_THREADS=threads))["step_seconds"]
        results["steps"].append(row)
        print(json.dumps(row), flush=True)
    measured = {r["net"]: {"params": r["params"], "images_per_second_one_machine": r["batch"] / r["1 rank, 2 threads"]}
                for r in results["steps"]}
    results["model"] = model(measured, {})
    print(json.dumps(results["allreduce"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Data-parallel training over MPI (neuroflow/distributed.py): 2 and 3 local ranks under
``mpiexec`` against one process — the same weights after several steps (plain, with
dropout; BatchNorm synchronised, and per rank against an emulation), resuming (also with
another number of ranks), the GPU engine, a rank killed and a rank hung (the others stop
with a clear error in bounded time, the last checkpoint stays good), early stopping agreed
by all ranks, and the refusals.

Each job runs tests/distributed_worker.py under a wall-clock limit. MPI comes from the
``distributed`` extra (mpi4py and pip's MPICH) or the system; without it these tests skip
saying what to install, except under CI (CI set), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from distributed_worker import make_data, make_net  # noqa: E402

JOB_LIMIT = 120  # seconds for one mpiexec job (they take 2-10 s here)
RTOL = 1e-6  # "equal up to summation order" in float64 (measured: about 1e-15)


def _mpiexec() -> str | None:
    """The mpiexec of mpi4py's MPI: beside this Python (pip's mpich wheel), else on PATH."""
    beside = Path(sys.prefix) / "bin" / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def _require_mpi() -> str:
    why = None
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        why = "mpi4py is not installed"
    exe = _mpiexec()
    if why is None and exe is None:
        why = "no mpiexec found"
    if why:
        msg = f"{why}: pip install 'neuroflow[distributed]' (mpi4py and MPICH)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the distributed tests: {msg}")
        pytest.skip(msg)
    return exe


def mpirun(ranks: int, scenario: str, out: Path, limit: float = JOB_LIMIT, **opts) -> subprocess.CompletedProcess:
    """Run the worker on `ranks` processes; returns the finished job (it is killed past `limit`)."""
    exe = _require_mpi()
    env = dict(os.environ, NEUROFLOW_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("NEUROFLOW_WORKERS", None)
    cmd = [exe, "-n", str(ranks), sys.executable, str(HERE / "distributed_worker.py"), scenario, str(out), json.dumps(opts)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, start_new_session=True)
    try:
        stdout, stderr = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
        pytest.fail(f"mpiexec -n {ranks} {scenario} did not finish within {limit} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(cmd, p.returncode, stdout, stderr)


def ok(job: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert job.returncode == 0, f"job failed ({job.returncode}):\n{job.stdout[-2000:]}\n{job.stderr[-4000:]}"
    return job


def arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[k] for k in f.files if k.startswith("arr_")]


def close(got: list, want: list, rtol: float, what: str) -> None:
    assert len(got) == len(want), f"{what}: {len(got)} arrays, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        scale = max(np.abs(w).max(), 1e-300)
        err = np.abs(g.astype(np.float64) - w).max() / scale
        assert err <= rtol, f"{what} [{i}]: relative error {err:.3g} > {rtol:g}"


def single(kind: str = "plain", **kw) -> tuple[list, list, np.ndarray]:
    """Weights, running statistics and losses of the same run in this one process."""
    xs, ys = make_data()
    net = make_net(kind, **kw)
    run = net.train(xs, ys)
    return net.weights, list(net.state.values()), run.losses


@pytest.mark.parametrize("ranks", [2, 3])
def test_same_weights_as_one_process(tmp_path, ranks):
    """Conv, dropout (masks of the global positions), dense, mean reduction, 7 steps over
    3 epochs with a short last batch: every rank ends with the single process's weights and
    losses (the weight check compares the ranks after every step)."""
    ok(mpirun(ranks, "train", tmp_path))
    w, _, losses = single()
    for r in range(ranks):
        got = arrays(tmp_path / f"rank{r}.npz")
        close(got, w, RTOL, f"rank {r} of {ranks}: weights")
        with np.load(tmp_path / f"rank{r}.npz") as f:
            close([f["losses"]], [losses], RTOL, f"rank {r}: losses")
    info = json.loads((tmp_path / "info.json").read_text())
    assert info["size"] == ranks and info["iterations"] == 7 and info["stopped_by"] == "iterations"
    import neuroflow

    saved = neuroflow.load(tmp_path / "model.safetensors")
    close(saved.weights, w, RTOL, "the model rank 0 wrote")


def test_ranks_really_share_the_work(tmp_path):
    """A control: the same job with one rank's shard left out would differ — here, a
    single-process run with another batch size differs from the 2-rank result."""
    ok(mpirun(2, "train", tmp_path))
    w_other, _, _ = single(batch=4)
    got = arrays(tmp_path / "rank0.npz")
    assert max(np.abs(g - w).max() for g, w in zip(got, w_other)) > 1e-6


@pytest.mark.parametrize("ranks", [2, 3])
def test_sync_batchnorm_is_one_process(tmp_path, ranks):
    """BatchNorm synchronised across ranks: weights and running statistics of one process."""
    ok(mpirun(ranks, "train", tmp_path, kind="bn", sync=True, batch=6))
    w, state, _ = single("bn", batch=6)
    for r in range(ranks):
        got = arrays(tmp_path / f"rank{r}.npz")
        close(got[:len(w)], w, RTOL, f"rank {r}: weights")
        close(got[len(w):], state, RTOL, f"rank {r}: running statistics")


def emulate_per_rank_bn(ranks: int, batch: int, iterations: int) -> tuple[list, list]:
    """Per-rank BatchNorm by hand: one engine per rank, the run's global batches (seeded
    shuffle, as nn/training.py draws them), shards, gradients summed, the same update;
    running statistics averaged at the end."""
    from neuroflow.nn.training import RunState

    xs, ys = make_data()
    nets = [make_net("bn", batch=batch, iterations=iterations) for _ in range(ranks)]
    n = len(xs)
    t = np.eye(3)[ys]
    run = RunState.start(n, batch, iterations, True, 3, "")
    order, pos = run.order, run.pos
    size = sum(int(np.prod(s)) for _, s in nets[0]._engine.param_info())
    for _ in range(iterations):
        if pos >= n:
            order, pos = run.rng.permutation(n), 0
        idx = order[pos:pos + batch]
        pos += batch
        b = len(idx)
        total = np.zeros(size)
        for r, net in enumerate(nets):
            lo, hi = b * r // ranks, b * (r + 1) // ranks
            g = np.zeros(size)
            if hi > lo:
                net._engine.backward(np.ascontiguousarray(xs[idx[lo:hi]]), np.ascontiguousarray(t[idx[lo:hi]]), g,
                                     batch=b, offset=lo)
            total += g
        for net in nets:
            net._engine.apply_update(total, 0.05)
    states = [net._engine.get_state() for net in nets]
    return nets[0].weights, [np.mean([s[i] for s in states], axis=0) for i in range(len(states[0]))]


@pytest.mark.parametrize("ranks", [2, 3])
def test_per_rank_batchnorm(tmp_path, ranks):
    """The default: batch statistics per rank (as PyTorch's DDP); weights as the emulation,
    running statistics averaged across ranks (the same on every rank, and in the model file)."""
    ok(mpirun(ranks, "train", tmp_path, kind="bn", batch=6))
    w, state = emulate_per_rank_bn(ranks, 6, 7)
    w_single, _, _ = single("bn", batch=6)
    for r in range(ranks):
        got = arrays(tmp_path / f"rank{r}.npz")
        close(got[:len(w)], w, RTOL, f"rank {r}: weights")
        close(got[len(w):], state, RTOL, f"rank {r}: running statistics (averaged)")
    got = arrays(tmp_path / "rank0.npz")
    assert max(np.abs(g - s).max() for g, s in zip(got, w_single)) > 1e-6, "per-rank statistics gave the single-process run"
    import neuroflow

    saved = neuroflow.load(tmp_path / "model.safetensors")
    close(list(saved.state.values()), state, RTOL, "running statistics in the model file")


@pytest.mark.parametrize("first,then", [(2, 2), (2, 3), (3, 1)])
def test_resume(tmp_path, first, then):
    """A run checkpointed every 3 iterations by `first` ranks, resumed from iteration 3 by
    `then` ranks (1: without MPI): the uninterrupted single-process weights."""
    ok(mpirun(first, "checkpoint", tmp_path, every=3))
    ckpt = tmp_path / "ckpt-3.safetensors"
    assert ckpt.exists() and (tmp_path / "ckpt-6.safetensors").exists()
    w, _, _ = single()
    if then == 1:
        xs, ys = make_data()
        net = make_net("plain")
        net.train(xs, ys, resume=ckpt)
        close(net.weights, w, RTOL, "resumed in one process")
        return
    ok(mpirun(then, "resume", tmp_path, **{"from": str(ckpt)}))
    for r in range(then):
        close(arrays(tmp_path / f"resumed-rank{r}.npz"), w, RTOL, f"resumed by {then} ranks, rank {r}")


def test_resume_sync_batchnorm_other_rank_count(tmp_path):
    """Synchronised BatchNorm resumed by another number of ranks: still the one-process run."""
    ok(mpirun(2, "checkpoint", tmp_path, every=3, kind="bn", sync=True, batch=6))
    ok(mpirun(3, "resume", tmp_path, kind="bn", sync=True, batch=6, **{"from": str(tmp_path / "ckpt-3.safetensors")}))
    w, state, _ = single("bn", batch=6)
    got = arrays(tmp_path / "resumed-rank2.npz")
    close(got[:len(w)], w, RTOL, "weights")
    close(got[len(w):], state, RTOL, "running statistics")


def test_gpu_engine(tmp_path):
    """Two ranks each with a GPU engine (lavapipe under CI): the one-process GPU run, in f32."""
    from gpu_parity import require_gpu

    require_gpu()
    ok(mpirun(2, "train", tmp_path, backend="gpu", iterations=4, check_every=0))
    w, _, _ = single(backend="gpu", iterations=4, dtype=np.float32)
    close(arrays(tmp_path / "rank1.npz"), w, 2e-5, "GPU, 2 ranks")


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_faulty_rank_stops_the_job(tmp_path, how):
    """Rank 1 of 3 is killed (SIGKILL) or hangs (SIGSTOP) after iteration 3: the job ends
    within bounded time with a non-zero status and, for the hang, a message naming the
    wait; no rank finishes; the checkpoint of iteration 2 is whole and resumable."""
    t0 = time.monotonic()
    job = mpirun(3, "fault", tmp_path, limit=90, who=1, at=3, how=how, timeout=5)
    took = time.monotonic() - t0
    assert (tmp_path / f"{how}-rank1").exists(), f"the fault was not injected:\n{job.stderr[-2000:]}"
    assert job.returncode != 0, "the job succeeded although a rank died"
    assert not list(tmp_path.glob("finished-rank*")), "a rank finished the run"
    assert took < 60, f"stopping took {took:.0f} s"
    if how == "stop":
        assert "no answer from the other ranks within 5 s" in job.stderr, job.stderr[-3000:]
    import neuroflow

    net = neuroflow.load(tmp_path / "checkpoint.safetensors")
    assert net.iteration == 2
    xs, ys = make_data()
    again = make_net("plain")
    again.train(xs, ys, resume=tmp_path / "checkpoint.safetensors")
    w, _, _ = single()
    close(again.weights, w, RTOL, "resumed from the checkpoint the faulty job left")


def test_refusals_and_missing_mpi(tmp_path):
    """Without mpi4py: a DistributedError saying what to install. Synchronised BatchNorm
    with batches that leave a rank empty, and finite differences, are refused on every rank."""
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "from neuroflow.distributed import Distributed, DistributedError\n"
            "try:\n    Distributed()\nexcept DistributedError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'neuroflow[distributed]'" in out.stdout and "apt-get install" in out.stdout, out.stdout + out.stderr
    job = mpirun(3, "train", tmp_path, kind="bn", sync=True, batch=4)  # 30 = 7·4 + 2: a last batch of 2 for 3 ranks
    assert job.returncode != 0 and "sync_batchnorm" in job.stderr and "at least one sample per rank" in job.stderr


def _fake_data(tmp_path: Path) -> Path:
    from test_cli import _fake_cifar

    return _fake_cifar(tmp_path / "cifar.tar.gz", np.random.default_rng(0), n=12)


def test_cli_workers_and_mpirun(tmp_path):
    """``neuroflow train cifar10 --workers 2`` and ``mpiexec -n 2 neuroflow train cifar10``
    (the speed preset: BatchNorm, synchronised): rank 0 alone writes the results; the model
    is the one-process run's (float32: rounding)."""
    exe = _require_mpi()
    data = _fake_data(tmp_path)
    common = ["train", "cifar10", "--data", str(data), "--limit", "24", "--batch-size", "8", "--epochs", "2"]
    env = dict(os.environ, NEUROFLOW_NUM_THREADS="1")
    runs = {
        "one": [sys.executable, "-m", "neuroflow", *common, "--out", str(tmp_path / "one")],
        "workers": [sys.executable, "-m", "neuroflow", *common, "--out", str(tmp_path / "workers"), "--workers", "2",
                    "--sync-batchnorm"],
        "mpirun": [exe, "-n", "2", sys.executable, "-m", "neuroflow", *common, "--out", str(tmp_path / "mpirun"),
                   "--sync-batchnorm"],
    }
    import neuroflow

    for name, cmd in runs.items():
        job = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_LIMIT, env=env)
        assert job.returncode == 0, f"{name}: {job.stderr[-3000:]}"
        out = tmp_path / name
        summary = json.loads((out / "summary.json").read_text())
        assert summary["processes"] == (1 if name == "one" else 2) and summary["iterations"] == 6
        assert job.stdout.count("epoch 2/2: test accuracy") == 1, f"{name}: only rank 0 reports\n{job.stdout}"
        assert len(np.loadtxt(out / "losses.txt")) == 6
        if name != "one":
            close(neuroflow.load(out / "model.safetensors", learning_rate=0.01).weights,
                  neuroflow.load(tmp_path / "one" / "model.safetensors", learning_rate=0.01).weights, 1e-2, name)
            ref = json.loads((tmp_path / "one" / "summary.json").read_text())
            assert summary["test_accuracy"] == ref["test_accuracy"]


def test_cli_validation_and_early_stop_on_two_ranks(tmp_path):
    """--validation/--patience under mpiexec with per-rank BatchNorm statistics: every rank
    evaluates the same held-out images with the same statistics and they agree on when to
    stop, so the job ends (no rank left waiting in an all-reduce) and rank 0 alone reports."""
    exe = _require_mpi()
    data = _fake_data(tmp_path)
    out = tmp_path / "v"
    cmd = [exe, "-n", "2", sys.executable, "-m", "neuroflow", "train", "cifar10", "--data", str(data), "--limit", "24",
           "--batch-size", "8", "--epochs", "20", "--validation", "8", "--patience", "1", "--out", str(out)]
    job = subprocess.run(cmd, capture_output=True, text=True, timeout=JOB_LIMIT,
                         env=dict(os.environ, NEUROFLOW_NUM_THREADS="1"))
    assert job.returncode == 0, job.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    # 8 images' accuracy rises at most 8 times: patience 1 stops the run by epoch 10
    assert summary["stopped_by"] == "early_stop" and summary["processes"] == 2 and len(summary["validation"]) <= 10
    assert job.stdout.count("epoch 1: validation loss") == 1 and job.stdout.count("stopped early after epoch") == 1


def test_early_stop_is_agreed_by_all_ranks(tmp_path):
    """Ranks whose validation results differ (here their labels do) still stop in the same
    iteration: one rank leaving the loop alone would leave the others waiting in an all-reduce."""
    ok(mpirun(2, "disagree", tmp_path, iterations=60, timeout=20))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1], ranks
    assert ranks[0]["stopped_by"] == "early_stop" and ranks[0]["iterations"] < 60


def test_cli_workers_without_mpi(tmp_path):
    """--workers without mpi4py: one line saying what to install, exit 1."""
    data = _fake_data(tmp_path)
    code = ("import sys; sys.modules['mpi4py'] = None\nfrom neuroflow.apps.cli import main\n"
            f"sys.exit(main(['train', 'cifar10', '--data', {str(data)!r}, '--workers', '2', '--out', {str(tmp_path / 'o')!r}]))")
    job = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert job.returncode == 1 and "neuroflow: error:" in job.stderr and "neuroflow[distributed]" in job.stderr, job.stderr
    assert "Traceback" not in job.stderr

"""Data-parallel training over MPI (through mpi4py): one net trained by many processes, on
one machine or many.

Start it with the MPI launcher, ``mpirun -n 4 neuroflow train cifar10 ...`` (across machines
with the launcher's hostfile), with ``neuroflow train ... --workers 4`` (which runs the
installed ``mpiexec`` for you), or from Python::

    net.train(xs, ys, distributed=True)                      # in a script run by mpirun
    net.train(xs, ys, distributed=Distributed(sync_batchnorm=True, timeout=120))

Every process (rank) holds the whole data set and the same network. Each step the run
draws the same global batch on every rank (one seeded shuffle, as a single process); rank
r takes its contiguous share of it (positions ⌊b·r/R⌋ to ⌊b·(r+1)/R⌋), computes the
gradients of its share (``Engine.backward``: reduced over the global batch, dropout masks
of the global positions), the ranks sum them with one in-place all-reduce, and every rank
applies the same update (``Engine.apply_update``). The weights stay identical on every rank
and equal those of a single process with the same global batch, seed and data, up to the
order of summation.

- BatchNorm: batch statistics per rank by default (as PyTorch's DDP); with
  ``sync_batchnorm=True`` over the global batch (the single-process result; three small
  all-reduces per BatchNorm layer and step; CPU and reference engines). Running statistics
  are averaged across ranks at every waypoint, before every save and at the end of a run.
- One writer: ``net.save`` during and after a distributed run is collective: every rank
  calls it, rank 0 writes (atomically), and an error there is raised on every rank. The loss
  log and the progress lines are rank 0's. Every rank can resume from the files, also with
  another number of ranks: the run's global batch, order and position are in the file.
- Faults: every collective waits at most ``timeout`` seconds (default 300,
  ``NEUROFLOW_DIST_TIMEOUT``); a rank that hangs, or a rank whose step fails, makes the
  others print what happened and abort the job (MPI_Abort), so ``mpirun`` stops every rank.
  A rank that dies is noticed by the launcher, which stops the others. Checkpoints are
  written atomically, so the last one stays good.
- ``check_every=N`` (or ``NEUROFLOW_DIST_CHECK=N``) compares a digest of the weights across
  ranks every N steps, a cheap debug check that they stay identical.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from .nn.network import Network

__all__ = ["Distributed", "DistributedError", "INSTALL_HINT", "launched_by_mpi", "mpi", "world"]

INSTALL_HINT = (
    "pip install 'neuroflow[distributed]' (mpi4py and MPICH from PyPI), or on Debian/Ubuntu: "
    "apt-get install mpich python3-mpi4py"
)
DEFAULT_TIMEOUT = 300.0
# The environment a launcher gives its processes: MPICH's Hydra and Intel MPI (PMI_SIZE),
# Open MPI (OMPI_COMM_WORLD_SIZE), PMIx launchers, SLURM's srun.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS")


class DistributedError(RuntimeError):
    """A distributed run cannot go on: MPI missing, ranks that disagree, a rank that stopped
    answering."""


def mpi():
    """mpi4py's MPI module (initialises MPI), or a DistributedError that says what to install."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(f"distributed training needs mpi4py and an MPI library ({e}): {INSTALL_HINT}") from None
    except RuntimeError as e:  # mpi4py present, its MPI library missing or broken
        raise DistributedError(f"mpi4py could not load an MPI library ({e}): {INSTALL_HINT}") from None
    return MPI


def launched_by_mpi() -> int:
    """The number of processes a launcher (mpirun, mpiexec, srun) started, from their
    environment, without starting MPI; 0 when not launched so."""
    for var in _SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 0


def world() -> "Distributed":
    """A Distributed over every process of the job (MPI_COMM_WORLD)."""
    return Distributed()


def _env_number(name: str, default, kind=float):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return kind(v)
    except ValueError:
        raise DistributedError(f"{name}: expected a number, got {v!r}") from None


class Distributed:
    """The processes of one data-parallel run and how they talk (see the module's doc).

    ``comm``: an mpi4py communicator (default MPI.COMM_WORLD); ``sync_batchnorm``: batch
    statistics over the global batch; ``timeout``: seconds any rank waits for the others in
    one collective before it aborts the job; ``check_every``: compare the weights across
    ranks every that many steps (0: never)."""

    def __init__(self, comm=None, *, sync_batchnorm: bool = False, timeout: Optional[float] = None,
                 check_every: Optional[int] = None):
        self.MPI = MPI = mpi()
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.sync_batchnorm = bool(sync_batchnorm)
        self.timeout = float(timeout if timeout is not None else _env_number("NEUROFLOW_DIST_TIMEOUT", DEFAULT_TIMEOUT))
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected seconds > 0, got {self.timeout!r}")
        self.check_every = int(check_every if check_every is not None else _env_number("NEUROFLOW_DIST_CHECK", 0, int))
        expected = os.environ.get("NEUROFLOW_WORKERS")
        if expected and expected.isdigit() and int(expected) != self.size:
            raise DistributedError(
                f"{expected} processes were launched but MPI joined them into a job of {self.size}: the mpiexec that "
                f"started them belongs to another MPI than mpi4py's ({self.library}); run the mpiexec of that MPI "
                f"(with pip's MPICH: {os.path.join(sys.prefix, 'bin', 'mpiexec')})"
            )
        self._synced_at = None  # the engine step at which running statistics were last averaged
        self._threads_set = False

    @property
    def library(self) -> str:
        return self.MPI.Get_library_version().splitlines()[0].strip()

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes files and prints progress."""
        return self.rank == 0

    def __repr__(self) -> str:
        return (f"Distributed(rank {self.rank} of {self.size}, sync_batchnorm={self.sync_batchnorm}, "
                f"timeout={self.timeout:g})")

    # ---- collectives, each bounded by the timeout ----

    def _wait(self, request, what: str) -> None:
        """Wait for a non-blocking collective: test in a tight loop for a few milliseconds
        (a step's all-reduce finishes in that time), then with growing sleeps, so a rank
        that waits long (for a slower one) leaves the cores to it; abort past the timeout."""
        start = time.monotonic()
        deadline = start + self.timeout
        spin_until = start + 0.005
        pause = 20e-6
        while not request.Test():
            now = time.monotonic()
            if now > deadline:
                self.abort(f"no answer from the other ranks within {self.timeout:g} s in {what}: a rank hung, died or "
                           "is far slower (raise the limit with timeout=… or NEUROFLOW_DIST_TIMEOUT)")
            if now > spin_until:
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def allreduce(self, buf: np.ndarray, what: str = "an all-reduce") -> np.ndarray:
        """Sum ``buf`` (C-contiguous) over the ranks, in place; returns it."""
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), what)
        return buf

    def barrier(self, what: str = "a barrier") -> None:
        self._wait(self.comm.Ibarrier(), what)

    def broadcast_bytes(self, data: bytes | None, root: int = 0, what: str = "a broadcast") -> bytes:
        """Rank `root`'s bytes on every rank."""
        mine = data if self.rank == root else b""  # the other ranks' `data` is not read
        if mine is None:
            raise TypeError(f"broadcast_bytes: rank {root} (the root) must give the bytes")
        n = np.array([len(mine)], np.int64)
        self._wait(self.comm.Ibcast(n, root=root), what)
        buf = np.frombuffer(mine, np.uint8).copy() if self.rank == root else np.empty(int(n[0]), np.uint8)
        if n[0]:
            self._wait(self.comm.Ibcast(buf, root=root), what)
        return buf.tobytes()

    def abort(self, why: str, code: int = 1) -> None:
        """Say why on stderr and stop every rank of the job (MPI_Abort)."""
        print(f"neuroflow: error: rank {self.rank} of {self.size}: {why}; stopping every rank", file=sys.stderr, flush=True)
        # MPI_Abort makes the launcher kill every process, and output it has not yet
        # forwarded is lost with them: once in a CI run the message above never arrived
        time.sleep(0.5)
        self.comm.Abort(code)
        os._exit(code)  # not reached: Abort ends the process

    # ---- the run ----

    def shard(self, b: int) -> tuple[int, int]:
        """(offset, count) of this rank's share of a global batch of `b` samples."""
        lo, hi = b * self.rank // self.size, b * (self.rank + 1) // self.size
        return lo, hi - lo

    def set_threads(self) -> None:
        """Unless the user chose (NEUROFLOW_NUM_THREADS, --threads), the CPU engine's threads
        are the cores divided among the ranks on this machine."""
        if self._threads_set or os.environ.get("NEUROFLOW_NUM_THREADS"):
            return
        from . import _core

        local = self.comm.Split_type(self.MPI.COMM_TYPE_SHARED)
        try:
            here = local.Get_size()
        finally:
            local.Free()
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        _core.set_num_threads(max(1, cores // here))
        self._threads_set = True

    def check_run(self, net: "Network", n: int, bs: int) -> None:
        """Refuse what the ranks cannot do together, on every rank alike (before any collective)."""
        if self.sync_batchnorm:
            if net.backend == "gpu":
                raise ValueError("sync_batchnorm: synchronised BatchNorm is not available on the GPU engine; use the "
                                 "per-rank statistics (the default) or the CPU engine")
            last = n % bs or bs
            if min(bs, last) < self.size:
                raise ValueError(
                    f"sync_batchnorm: a batch of {min(bs, last)} samples (batch_size={bs}, {n} samples) leaves ranks "
                    f"without samples among {self.size}; use a batch size and a data set size whose batches have at "
                    "least one sample per rank, or fewer ranks"
                )
        if net.settings.approximation is not None:
            raise ValueError("approximation: finite-difference training runs in one process; train without "
                             "distributed, or without approximation")

    def agree(self, net: "Network", what: str) -> None:
        """Every rank must train the same net on the same data with the same settings:
        compare a digest of the spec, weights and data shape, and refuse if they differ."""
        h = hashlib.blake2b(digest_size=16)
        h.update(net.spec_json.encode())
        for w in net.weights:
            h.update(np.ascontiguousarray(w).data.cast("B"))
        h.update(what.encode())
        mine = np.frombuffer(h.digest(), np.uint8).copy()
        everyone = np.empty((self.size, mine.size), np.uint8)
        self._wait(self.comm.Iallgather(mine, everyone), "the check that the ranks agree")
        differ = [r for r in range(self.size) if not np.array_equal(everyone[r], everyone[0])]
        if differ:
            raise DistributedError(
                f"ranks {differ} start from another network, weights, data or settings than rank 0; every rank must "
                "build the same net (same seed) and train on the same data"
            )

    def check_weights(self, net: "Network", iteration: int) -> None:
        """The debug check: the same weights on every rank, else abort."""
        h = hashlib.blake2b(digest_size=16)
        for w in net._engine.get_params():
            h.update(np.ascontiguousarray(w).data.cast("B"))
        mine = np.frombuffer(h.digest(), np.uint8).copy()
        everyone = np.empty((self.size, mine.size), np.uint8)
        self._wait(self.comm.Iallgather(mine, everyone), "the weight check")
        differ = [r for r in range(self.size) if not np.array_equal(everyone[r], everyone[0])]
        if differ:
            self.abort(f"the weights of ranks {differ} differ from rank 0's after iteration {iteration} "
                       "(a bug in neuroflow: please report it)")

    def sync_state(self, net: "Network") -> None:
        """Average the running statistics (BatchNorm's) across ranks, once per step count."""
        engine = net._engine
        if not net._state_info or self.size == 1:
            return
        step = engine.get_step()
        if self._synced_at == step:
            return
        state = engine.get_state()
        flat = np.concatenate([s.reshape(-1).astype(np.float64) for s in state])
        self.allreduce(flat, "averaging the running statistics")
        flat /= self.size
        out, at = [], 0
        for s in state:
            out.append(flat[at:at + s.size].reshape(s.shape).astype(s.dtype))
            at += s.size
        engine.set_state(out)
        self._synced_at = step

    def save(self, net: "Network", path):
        """The collective save: running statistics averaged, rank 0 writes, its outcome on
        every rank (an error there is raised everywhere)."""
        from .nn.persist import save

        self.sync_state(net)
        error, result = b"", None
        if self.is_main:
            try:
                result = save(net, path)
            except Exception as e:  # told to every rank, then raised here as it was
                error = f"{type(e).__name__}: {e}".encode()
                self.broadcast_bytes(error, what=f"saving {path}")
                raise
        error = self.broadcast_bytes(error, what=f"saving {path}")
        if error:
            raise DistributedError(f"rank 0 could not save {path}: {error.decode(errors='replace')}")
        return result if self.is_main else path

    def predict(self, net: "Network", xs) -> np.ndarray:
        """``net(xs)`` with the samples shared out among the ranks; the whole result on every rank."""
        x, single = net._samples(xs)
        lo, count = self.shard(len(x))
        mine = net(x[lo:lo + count]) if count else np.empty((0,) + tuple(net.dim_out), net.dtype)
        per = int(np.prod(net.dim_out))
        out = np.empty((len(x),) + tuple(net.dim_out), dtype=mine.dtype)
        sizes = [self_share * per for self_share in (self._share(len(x), r) for r in range(self.size))]
        displs = [int(v) for v in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
        send = np.ascontiguousarray(mine).reshape(-1)
        self._wait(self.comm.Iallgatherv(send, [out.reshape(-1), (sizes, displs)]), "sharing predictions")
        return out[0] if single else out

    def _share(self, b: int, r: int) -> int:
        return b * (r + 1) // self.size - b * r // self.size

    def stepper(self, net: "Network", data, s, interrupted):
        """(step, interrupted): step(indices, lr, epoch) -> the global batch's mean loss, as
        nn/training.py's stepper, for this rank's shard; ``interrupted()`` is true on every
        rank once any rank was interrupted (Ctrl-C) before the step's all-reduce."""
        engine = net._engine
        augment = None if s.augment is None or s.augment.identity else s.augment.to_json(net._seed)
        size = sum(int(np.prod(shape)) for _, shape in net._param_info)
        grads: np.ndarray = np.zeros(size, dtype=net.dtype)
        scalars = np.zeros(2, np.float64)
        has_state = bool(net._state_info)
        sync = self._bn_sum if self.sync_batchnorm else None
        fused = hasattr(engine, "backward_data")
        agreed = [False]
        count = [0]

        def step(idx, lr, epoch):
            b = len(idx)
            lo, k = self.shard(b)
            kept = engine.get_state() if has_state else None
            try:
                with net._lock:
                    if k == 0:  # fewer samples than ranks in this batch: nothing to add
                        grads[:] = 0
                        loss = 0.0
                    elif fused:
                        loss = engine.backward_data(data, idx[lo:lo + k], grads, batch=b, offset=lo, augment=augment,
                                                    epoch=max(epoch, 0), sync=sync)
                    else:
                        xb = data.gather(idx[lo:lo + k], augment, max(epoch, 0), net.dtype_name)
                        tb = np.ascontiguousarray(data.targets(idx[lo:lo + k]), dtype=net.dtype)
                        loss = engine.backward(xb, tb, grads, batch=b, offset=lo, sync=sync)
            except Exception as e:  # this rank's alone (memory, say): the others would wait for it
                self.abort(f"iteration {net._iteration + 1} failed here: {type(e).__name__}: {e}")
            scalars[0], scalars[1] = loss, 1.0 if interrupted() else 0.0
            r1 = self.comm.Iallreduce(self.MPI.IN_PLACE, grads, op=self.MPI.SUM)
            r2 = self.comm.Iallreduce(self.MPI.IN_PLACE, scalars, op=self.MPI.SUM)
            self._wait(r1, f"the gradient all-reduce of iteration {net._iteration + 1}")
            self._wait(r2, f"the loss all-reduce of iteration {net._iteration + 1}")
            agreed[0] = scalars[1] > 0
            total = float(scalars[0])
            if not np.isfinite(total) or not np.isfinite(grads).all():
                if kept is not None:  # a step that goes wrong changes nothing (as train_step)
                    engine.set_state(kept)
                return total / b if not np.isfinite(total) else float("nan")
            with net._lock:
                engine.apply_update(grads, lr)
            self._synced_at = None
            count[0] += 1
            if self.check_every and count[0] % self.check_every == 0:
                self.check_weights(net, net._iteration + 1)
            return total / b

        return step, lambda: agreed[0]

    def _bn_sum(self, v: np.ndarray) -> None:
        self.allreduce(v, "a synchronised BatchNorm all-reduce")

"""The training loop (``Network.train``) and where a run stands.

A run is one call of ``Network.train``: ``settings.iterations`` weight updates over batches
drawn from a shuffled order of the samples. Its position — the shuffle generator's state,
the order of the epoch in flight, the place in it, the updates done — is saved with the
parameters and optimizer state (``net.save``), so ``train(xs, ys, resume=path)`` goes on to
exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Optional, cast

import numpy as np

from .lookahead import SlowWeights
from .settings import LossFuncOutput

if TYPE_CHECKING:
    from .network import Network

__all__ = ["RunState", "TrainingRun", "data_fingerprint", "train"]


@dataclass
class TrainingRun:
    """What ``Network.train`` did."""

    iterations: int
    final_loss: float
    losses: np.ndarray
    start: datetime
    end: datetime
    stopped_by: str  # "iterations", "precision", "interrupt", "diverged" or "early_stop"
    samples: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def images_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("nan")

    @property
    def interrupted(self) -> bool:
        return self.stopped_by == "interrupt"


def data_fingerprint(x: np.ndarray, t: np.ndarray) -> str:
    """A short hash of the samples and targets a run trains on, to refuse resuming on others."""
    h = hashlib.blake2b(digest_size=16)
    for a in (x, t):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data.cast("B"))
    return h.hexdigest()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass
class RunState:
    """The position of one training run (see the module's doc)."""

    rng: np.random.Generator
    order: np.ndarray  # int64 (N,): sample order of the epoch in flight
    pos: int  # next place in ``order``; from N on, a new epoch starts
    done: int  # weight updates done in this run
    total: int  # updates the run was asked for
    batch_size: int
    shuffle: bool
    data: str  # fingerprint of the run's samples and targets
    epoch: int = -1  # epochs begun, less one (the augmentation's draws follow it)

    @classmethod
    def start(cls, n: int, batch_size: int, total: int, shuffle: bool, seed: int | None, data: str) -> "RunState":
        return cls(np.random.default_rng(seed), np.arange(n, dtype=np.int64), n, 0, total, batch_size, shuffle, data)

    def copy(self) -> "RunState":
        gen = np.random.Generator(np.random.PCG64())
        gen.bit_generator.state = self.rng.bit_generator.state
        return RunState(gen, self.order.copy(), self.pos, self.done, self.total, self.batch_size, self.shuffle, self.data,
                        self.epoch)

    def to_json(self) -> dict:
        state = self.rng.bit_generator.state
        return {
            "rng": {"bit_generator": state["bit_generator"], "state": state["state"],
                    "has_uint32": state["has_uint32"], "uinteger": state["uinteger"]},
            "pos": self.pos, "done": self.done, "total": self.total, "batch_size": self.batch_size,
            "shuffle": self.shuffle, "data": self.data, "epoch": self.epoch,
        }

    @classmethod
    def from_json(cls, d: object, order: np.ndarray | None) -> "RunState":
        """Rebuild from stored values only (ints, strings); raises ValueError naming a bad field."""
        if not isinstance(d, dict):
            raise ValueError(f"run: expected an object, got {d!r:.100}")
        if order is None:
            raise ValueError("run.order: missing (the run's sample order)")
        rng = d.get("rng")
        if not isinstance(rng, dict) or rng.get("bit_generator") != "PCG64":
            raise ValueError("run.rng: expected a PCG64 generator state")
        inner = rng.get("state")
        if not isinstance(inner, dict) or not all(_is_int(inner.get(k)) and 0 <= inner[k] < 2**128 for k in ("state", "inc")):
            raise ValueError("run.rng.state: expected ints 'state' and 'inc' in [0, 2¹²⁸)")
        if not _is_int(rng.get("has_uint32")) or not _is_int(rng.get("uinteger")):
            raise ValueError("run.rng: expected ints 'has_uint32' and 'uinteger'")
        gen = np.random.Generator(np.random.PCG64())
        try:
            gen.bit_generator.state = {"bit_generator": "PCG64", "state": {"state": inner["state"], "inc": inner["inc"]},
                                       "has_uint32": rng["has_uint32"], "uinteger": rng["uinteger"]}
        except (ValueError, TypeError, OverflowError) as e:
            raise ValueError(f"run.rng: not a valid generator state ({e})") from None
        for key in ("pos", "done", "total", "batch_size"):
            if not _is_int(d.get(key)) or not (1 if key in ("total", "batch_size") else 0) <= d[key] < 2**63:
                raise ValueError(f"run.{key}: expected a non-negative int, got {d.get(key)!r:.50}")
        if not isinstance(d.get("shuffle"), bool):
            raise ValueError(f"run.shuffle: expected true or false, got {d.get('shuffle')!r:.50}")
        if not isinstance(d.get("data"), str):
            raise ValueError("run.data: expected the data fingerprint")
        n = order.shape[0] if order.ndim == 1 else -1
        if order.dtype != np.int64 or n < 1 or not np.array_equal(np.sort(order), np.arange(n)):
            raise ValueError("run.order: expected a permutation of 0..N-1 (int64)")
        if d["pos"] > n + d["batch_size"]:
            raise ValueError(f"run.pos: {d['pos']} is past the {n} samples")
        if d["done"] > d["total"]:
            raise ValueError(f"run.done: {d['done']} updates done of a run of {d['total']}")
        epoch = d.get("epoch", -1)  # files before augmentation: unused then
        if not _is_int(epoch) or not -1 <= epoch < 2**62:
            raise ValueError(f"run.epoch: expected an int ≥ -1, got {epoch!r:.50}")
        return cls(gen, order, d["pos"], d["done"], d["total"], d["batch_size"], d["shuffle"], d["data"], epoch)


def _rate(schedule, iteration: int, alpha: float) -> float:
    """The learning rate for `iteration`, checked: a finite number ≥ 0."""
    v = schedule(iteration, alpha)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
        raise ValueError(
            f"learning_rate: returned {v!r} at iteration {iteration}; a learning rate must be a finite number ≥ 0"
        )
    return float(v)


def train(net: "Network", xs, ys, resume=None, validation=None, patience=None, distributed=None) -> TrainingRun:
    """``Network.train`` (see there)."""
    from .. import _core

    dist = None
    if distributed is not None and distributed is not False:
        from ..distributed import Distributed

        dist = distributed if isinstance(distributed, Distributed) else Distributed() if distributed is True else None
        if dist is None:
            raise TypeError(f"distributed: expected True, False or neuroflow.distributed.Distributed(...), got {distributed!r}")

    s = net.settings
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation: expected (xs, ys)")
        vx, vsingle = net._samples(validation[0], "validation xs")
        validation = (vx, net._targets(validation[1], len(vx), vsingle))
    if patience is not None and (isinstance(patience, bool) or not isinstance(patience, numbers.Integral) or patience < 1):
        raise ValueError(f"patience: expected a positive number of epochs, got {patience!r}")
    if patience is not None and validation is None:
        raise ValueError("patience: early stopping needs validation=(xs, ys)")
    x, single = net._samples(xs, finite=False)  # the data set checks finiteness, in parallel
    t = net._targets(ys, len(x), single)
    if s.augment is not None:
        s.augment.check(net.dim_in)
    try:
        data = _core.Dataset(x, np.ascontiguousarray(t, dtype=np.float64))
    except ValueError:
        net._samples(x, finite=True)  # names the first bad value
        raise
    n = len(x)
    bs = n if s.batch_size is None else min(s.batch_size, n)  # None: the whole data set
    with net._lock:
        if net._trainer is not None:
            raise RuntimeError("train: this network is already training (in another thread); one network, one trainer")
        net._trainer = threading.get_ident()
    try:
        return _train(net, data, x, t, n, bs, resume, validation, patience, dist)
    finally:
        net._trainer = None


def _train(net: "Network", data, x, t, n: int, bs: int, resume, validation=None, patience=None, dist=None) -> TrainingRun:
    s = net.settings
    if resume is None or resume is False:
        run = RunState.start(n, bs, s.iterations, s.shuffle, net._seed, data.fingerprint)
    else:
        from .persist import resume_run

        run = resume_run(net, resume, data, x, t, bs)
    if run.done >= s.iterations:
        raise ValueError(
            f"resume: that run is complete ({run.done} of {s.iterations} iterations done); "
            "raise settings.iterations to train further"
        )
    if dist is not None:  # neuroflow/distributed.py: every rank alike, before any step
        dist.check_run(net, n, bs)
        dist.set_threads()
        dist.agree(net, f"{data.fingerprint} {bs} {s.iterations} {run.done} {run.pos}")
        net._dist = dist
    net._run = run
    run.total = s.iterations
    if s.lookahead is None:
        net._slow = None
    elif resume is None or resume is False or net._slow is None:  # a resumed run keeps its slow copy
        net._slow = SlowWeights.of(net)
    lookahead, slow = s.lookahead, net._slow
    verbose = s.verbose and (dist is None or dist.is_main)
    approx = s.approximation.delta if s.approximation else None
    out = cast(Optional[LossFuncOutput], s.loss_func_output)  # Settings made it one (or None)
    mode = "a" if run.done else "w"  # a resumed run continues its loss log
    log = (open(out.file, mode, encoding="utf-8") if out is not None and out.file is not None
           and (dist is None or dist.is_main) else None)
    losses: list[float] = []
    start = datetime.now()
    stopped_by = "iterations"
    alpha = net._alpha if net._alpha is not None else 1.0
    first = run.done + 1
    report_every = max(1, s.iterations // 50)
    t0 = time.perf_counter()
    bar = None
    if verbose:
        print(net.banner(), flush=True)
        if run.done:
            print(f"resuming at iteration {net._iteration} ({run.done}/{s.iterations} of the run done)", flush=True)
        bar = _progress_bar(run.done, s.iterations)
    order, pos, rng, epoch = run.order, run.pos, run.rng, run.epoch
    drawn_from = None  # the generator's state before an epoch's order, until its step is done
    step = _stepper(net, data, approx, s)
    history: list[dict] = []  # per epoch, with validation
    with _deferred_interrupt() as interrupted:
        if dist is not None:  # each rank its shard, gradients all-reduced; Ctrl-C agreed by all
            step, interrupted = dist.stepper(net, data, s, interrupted)
        try:
            for it in range(first, s.iterations + 1):
                new_epoch = pos >= n
                if new_epoch:
                    if s.shuffle:
                        drawn_from = rng.bit_generator.state
                        order = rng.permutation(n)
                    pos = 0
                idx = order[pos : pos + bs]
                a = _rate(s.learning_rate, net._iteration + 1, alpha)
                loss = step(idx, a, epoch + new_epoch)
                if not math.isfinite(loss):
                    # the engine made no update: the weights are those of the last good step
                    stopped_by = "diverged"
                    losses.append(loss)
                    if verbose:
                        print(f"loss is {loss} at iteration {net._iteration + 1}: training diverged; keeping the weights of "
                              f"iteration {net._iteration} (lower the learning rate)", file=sys.stderr)
                    break
                pos += bs
                epoch += new_epoch
                alpha = a
                net._iteration += 1
                net._alpha = alpha
                run.order, run.pos, run.done, run.epoch = order, pos, it, epoch
                drawn_from = None
                if lookahead is not None and slow is not None and lookahead.due(net._iteration, s.iterations):
                    slow.pull(net, lookahead.pull(net._iteration, s.iterations))
                losses.append(loss)
                if log is not None:
                    log.write(f"{loss!r}\n")
                if out is not None and out.action is not None:
                    out.action(loss)
                if verbose:
                    rate = (it - first + 1) * bs / max(time.perf_counter() - t0, 1e-9)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"loss {loss:.4g}, lr {alpha:.3g}, {rate:.1f} images/s", refresh=False)
                    elif it % report_every == 0 or it == first or it == s.iterations:
                        print(_progress_line(net, it, loss, alpha, rate), flush=True)
                if s.waypoint is not None and net._iteration % s.waypoint.every_n == 0:
                    if dist is not None:
                        dist.sync_state(net)
                    s.waypoint.action(net._iteration, net)
                if validation is not None and pos >= n:  # an epoch is complete
                    if dist is not None:
                        dist.sync_state(net)  # the same BatchNorm statistics, so the same evaluation on every rank
                    ev = net.evaluate(*validation)
                    history.append({"epoch": epoch + 1, "iteration": net._iteration, "loss": ev.loss, "accuracy": ev.accuracy})
                    if verbose:  # the main process only
                        _say(f"epoch {epoch + 1}: validation loss {ev.loss:.4g}, accuracy {ev.accuracy if ev.accuracy is None else f'{ev.accuracy:.2%}'}")
                    best = max(range(len(history)), key=lambda i: history[i]["accuracy"] or 0.0)
                    stop = patience is not None and len(history) - 1 - best >= patience
                    if dist is not None and patience is not None:  # agreed, so that no rank waits for the others
                        flag = np.array([float(stop)])
                        dist.allreduce(flag, "agreeing on early stopping")
                        stop = bool(flag[0] > 0)
                    if stop:
                        stopped_by = "early_stop"
                        break
                if loss <= s.precision:
                    stopped_by = "precision"
                    break
                if interrupted():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            stopped_by = "interrupt"
        finally:
            if drawn_from is not None:  # a step failed: the run stays where it was, for a resume
                rng.bit_generator.state = drawn_from
            if log is not None:
                log.close()
            if bar is not None:
                bar.close()
    if dist is not None:
        dist.sync_state(net)
    done = [v for v in losses if math.isfinite(v)]
    if verbose and done and (bar is not None or stopped_by != "iterations"):
        rate = len(done) * bs / max(time.perf_counter() - t0, 1e-9)
        print(_progress_line(net, run.done, done[-1], alpha, rate), flush=True)
    if verbose and stopped_by == "interrupt":
        print(f"interrupted: keeping the weights of iteration {net._iteration} "
              "(net.save(path), then train(xs, ys, resume=path) continues the run)", flush=True)
    record = TrainingRun(
        iterations=len(done),
        final_loss=losses[-1] if losses else float("nan"),
        losses=np.asarray(losses),
        start=start,
        end=datetime.now(),
        stopped_by=stopped_by,
        samples=len(done) * bs,
        extra={"validation": history} if validation is not None else {},
    )
    if verbose:
        print(f"took {record.seconds:.2f} s, {record.iterations} iterations, final loss {record.final_loss:.6g}", flush=True)
    return record


def _stepper(net: "Network", data, approx, s):
    """step(indices, lr, epoch) -> loss: the CPU engine gathers, converts and augments the
    batch straight into its input buffer; other engines get the batch the data set gathers
    (converted and augmented the same way)."""
    engine = net._engine
    augment = None if s.augment is None or s.augment.identity else s.augment.to_json(net._seed)
    if approx is None and hasattr(engine, "train_step_data"):
        def step(idx, lr, epoch):
            with net._lock:
                return engine.train_step_data(data, idx, lr, augment, max(epoch, 0))
        return step

    def gathered(idx, lr, epoch):
        xb = data.gather(idx, augment, max(epoch, 0), net.dtype_name)
        tb = np.ascontiguousarray(data.targets(idx), dtype=net.dtype)
        with net._lock:
            return engine.train_step(xb, tb, lr, approx)
    return gathered


def _say(text: str) -> None:
    """A line that leaves a live progress bar intact."""
    try:
        from tqdm import tqdm

        tqdm.write(text)
    except ImportError:
        print(text, flush=True)


def _progress_line(net, it: int, loss: float, alpha: float, rate: float) -> str:
    return (
        f"[{datetime.now():%H:%M:%S}] Iteration {net._iteration} ({it}/{net.settings.iterations}), "
        f"loss {loss:.6g}, lr {alpha:g}, {rate:.1f} samples/s"
    )


def _progress_bar(done: int, total: int):
    """A tqdm bar on a terminal (NEUROFLOW_PROGRESS=bar forces it, =lines turns it off);
    None means printed lines instead, e.g. in logs, or without tqdm."""
    want = os.environ.get("NEUROFLOW_PROGRESS", "auto")
    if want == "lines" or (want != "bar" and not (sys.stderr.isatty())):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=done, unit="it", desc="training", dynamic_ncols=True, file=sys.stderr)


@contextlib.contextmanager
def _deferred_interrupt():
    """Ctrl-C during a step takes effect after it, so weights, iteration count and run
    position always agree; a second Ctrl-C interrupts at once."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum, frame):
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # signals are not ours to handle here (embedded interpreters)
        yield lambda: False
        return
    try:
        yield lambda: flag[0]
    finally:
        signal.signal(signal.SIGINT, previous)

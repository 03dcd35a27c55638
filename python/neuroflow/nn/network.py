"""The Network: a layout, settings and weights, on a CPU or GPU engine.

All numeric work happens in the engine (``neuroflow._core.Engine`` in Rust, or the WGSL
``neuroflow.gpu.GpuEngine``); this class validates input before any work starts, runs the
training loop (one engine call per weight update), and offers the article's API.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import _core
from .banner import banner as _banner
from ..io.checkpoint import RunState, data_fingerprint
from .layers import Convolution, Dense
from .losses import Loss, SoftmaxLogEntropy, SoftmaxLogMultEntropy
from .settings import Settings
from .breeders import WeightBreeder

# Activation memory for one evaluation chunk (inference and gradients are chunked).
_EVAL_BUDGET_BYTES = 256 * 2**20


@dataclass
class TrainingRun:
    """What ``Network.train`` did."""

    iterations: int
    final_loss: float
    losses: np.ndarray
    start: datetime
    end: datetime
    stopped_by: str  # "iterations", "precision" or "interrupt"
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


def _check_layout(layout) -> tuple[list, Loss]:
    if not isinstance(layout, (list, tuple)) or len(layout) < 2:
        raise ValueError("layout: expected a list of layers ending in a loss, e.g. [Dense(2, ReLU), SoftmaxLogEntropy()]")
    *layers, loss = layout
    if not isinstance(loss, Loss):
        if isinstance(loss, type) and issubclass(loss, Loss):
            raise TypeError(f"layout: the loss must be an instance: {loss.__name__}()")
        raise ValueError(f"layout: must end in a loss (SoftmaxLogEntropy(), SquaredError(), …), ends in {loss!r}")
    for i, layer in enumerate(layers):
        if isinstance(layer, Loss):
            raise ValueError(f"layout[{i}]: a loss can only be the last item")
        if not isinstance(layer, (Convolution, Dense)):
            raise TypeError(f"layout[{i}]: expected a Convolution or Dense layer, got {layer!r}")
    seen_dense = False
    for i, layer in enumerate(layers):
        if isinstance(layer, Dense):
            seen_dense = True
        elif seen_dense:
            raise ValueError(f"layout[{i}]: a Convolution cannot follow a Dense layer")
    return layers, loss


class Network:
    """A neural network of Convolution and Dense layers ending in a loss.

    >>> net = Network([Convolution((8, 8, 1), 1, 3, 1, 2, ReLU), Dense(2, ReLU), SoftmaxLogEntropy()])
    """

    def __init__(
        self,
        layout: Sequence,
        settings: Settings | None = None,
        weights: WeightBreeder | Sequence[np.ndarray] | None = None,
        backend: str = "cpu",
    ) -> None:
        layers, loss = _check_layout(layout)
        self.settings = settings if settings is not None else Settings()
        if not isinstance(self.settings, Settings):
            raise TypeError(f"settings: expected Settings(...), got {settings!r}")
        self.layout = list(layout)
        self._specs = self._layer_specs(layers)
        self.dim_in = layers[0].dim_in if isinstance(layers[0], Convolution) else (self._specs[0]["dim_in"],)
        self.dim_out = layers[-1].dim_out

        def spec_json(on_gpu: bool) -> str:
            # dtype=None: float64 on the CPU (NeuroFlow's Double), float32 on a GPU.
            dtype = self.settings.dtype or (np.float32 if on_gpu else np.float64)
            spec = {
                "dtype": "f32" if dtype == np.float32 else "f64",
                "layers": self._specs,
                "loss": loss.to_spec(),
                "update": self.settings.update_rule.to_spec(),
                "reduction": self.settings.reduction,
            }
            return json.dumps(spec)

        self.backend, self._engine = _make_engine(backend, spec_json)
        self.spec_json = self._engine.spec
        # The engine's precision is fixed from here on, whatever settings are assigned later.
        self._dtype = np.float32 if json.loads(self.spec_json)["dtype"] == "f32" else np.float64
        if self.settings.dtype is None:
            self.settings = replace(self.settings, dtype=self._dtype)
        self._weight_layers = [
            (i, repr(layer), tuple(shape)) for i, (layer, shape) in enumerate(zip(layers, self._engine.weight_shapes()))
        ]
        breeder = weights if weights is not None else WeightBreeder.he()
        if isinstance(breeder, WeightBreeder):
            self.weights = breeder.breed(self._weight_layers, self.dtype)
        else:
            self.weights = weights
        self._iteration = 0
        self._run: RunState | None = None  # the position of the last training run

    @staticmethod
    def _layer_specs(layers) -> list[dict]:
        specs = []
        prev_out = None
        for i, layer in enumerate(layers):
            if isinstance(layer, Convolution):
                if prev_out is not None and tuple(prev_out) != layer.dim_in:
                    raise ValueError(
                        f"layout[{i}]: {layer.name} expects dim_in {layer.dim_in} but layout[{i - 1}] gives {tuple(prev_out)}; "
                        f"build it with dim_in=layout[{i - 1}].dim_out"
                    )
                specs.append(layer.to_spec())
            else:
                if prev_out is None:
                    if layer.dim_in is None:
                        raise ValueError(f"layout[0]: a network that starts with Dense needs its input size: Dense({layer.neurons}, …, dim_in=N)")
                    d = layer.dim_in
                else:
                    d = int(math.prod(prev_out))
                    if layer.dim_in is not None and layer.dim_in != d:
                        raise ValueError(f"layout[{i}]: Dense has dim_in={layer.dim_in} but layout[{i - 1}] gives {d} values")
                specs.append(layer.to_spec(d))
            prev_out = layer.dim_out
        return specs

    # ---- properties ----

    @property
    def dtype(self) -> type:
        return self._dtype

    @property
    def dtype_name(self) -> str:
        return "f32" if self._dtype == np.float32 else "f64"

    @property
    def loss_function(self) -> Loss:
        return self.layout[-1]

    @property
    def num_weights(self) -> int:
        return int(self._engine.num_weights())

    @property
    def weights(self) -> list[np.ndarray]:
        """Copies of the weights: conv (fx, fy, Z, filters), dense (inputs, neurons).
        Assign a list of arrays to change them."""
        return list(self._engine.get_weights())

    @weights.setter
    def weights(self, value) -> None:
        value = _array_list(value, "weights", [s for _, _, s in self._weight_layers], self.dtype)
        self._engine.set_weights(value)

    @property
    def optimizer_state(self) -> list[np.ndarray]:
        """The update rule's state (momentum), shaped like the weights; empty for Vanilla."""
        return list(self._engine.get_state())

    @optimizer_state.setter
    def optimizer_state(self, value) -> None:
        shapes = [s for _, _, s in self._weight_layers] if self.optimizer_state else []
        self._engine.set_state(_array_list(value, "optimizer_state", shapes, self.dtype))

    @property
    def iteration(self) -> int:
        """Weight updates done so far (over all calls of ``train``)."""
        return self._iteration

    def banner(self) -> str:
        """The article's banner: version, network, weights, precision, loss, update, layout."""
        from .. import __version__

        return _banner(self, __version__)

    def __repr__(self) -> str:
        inner = ", ".join(repr(x) for x in self.layout)
        return f"Network([{inner}], backend={self.backend!r}, dtype={self.dtype_name})"

    # ---- input checks ----

    def _samples(self, xs, name: str = "xs") -> tuple[np.ndarray, bool]:
        """A C-contiguous batch in the engine's dtype (or uint8); and whether one sample was given."""
        if not isinstance(xs, np.ndarray):
            try:
                xs = np.asarray(xs)
            except Exception as e:  # ragged lists and the like
                raise TypeError(f"{name}: expected an array of shape (N, {_shape(self.dim_in)}), got {type(xs).__name__}") from e
        if xs.dtype == np.uint8:
            pass
        elif xs.dtype in (np.float32, np.float64):
            xs = xs.astype(self.dtype, copy=False)
        else:
            raise TypeError(f"{name}: expected float32, float64 or uint8 values, got {xs.dtype}")
        single = xs.shape == tuple(self.dim_in)
        if single:
            xs = xs[None]
        if xs.ndim != len(self.dim_in) + 1 or xs.shape[1:] != tuple(self.dim_in):
            raise ValueError(
                f"{name}: expected shape (N, {_shape(self.dim_in)}) or ({_shape(self.dim_in)}) "
                f"as (X, Y, Z) = (width, height, depth), got {xs.shape}"
            )
        if xs.shape[0] == 0:
            raise ValueError(f"{name}: the batch is empty")
        if xs.dtype != np.uint8 and not np.isfinite(xs).all():
            bad = np.argwhere(~np.isfinite(xs))[0]
            raise ValueError(f"{name}: contains NaN or infinity (first at index {tuple(int(i) for i in bad)})")
        return np.ascontiguousarray(xs), single

    def _targets(self, ys, n: int, single: bool) -> np.ndarray:
        k = int(math.prod(self.dim_out))
        ys = np.asarray(ys)
        if single and ys.ndim in (0, 1) and not (ys.ndim == 1 and ys.shape[0] == 1 and k != 1):
            ys = ys[None]
        if ys.ndim == 1 and np.issubdtype(ys.dtype, np.integer):
            if ys.shape[0] != n:
                raise ValueError(f"ys: expected {n} class ids (one per sample), got {ys.shape[0]}")
            if ys.min() < 0 or ys.max() >= k:
                raise ValueError(f"ys: class ids must be in 0..{k - 1}, got values from {ys.min()} to {ys.max()}")
            t = np.zeros((n, k), dtype=self.dtype)
            t[np.arange(n), ys] = 1
            return t
        if ys.ndim != 2 or ys.shape != (n, k):
            raise ValueError(f"ys: expected targets of shape ({n}, {k}) or ({n},) integer class ids, got shape {ys.shape}")
        if not np.issubdtype(ys.dtype, np.number) or np.issubdtype(ys.dtype, np.complexfloating):
            raise TypeError(f"ys: expected numbers, got {ys.dtype}")
        t = np.ascontiguousarray(ys, dtype=self.dtype)
        if not np.isfinite(t).all():
            raise ValueError("ys: contains NaN or infinity")
        loss = self.loss_function
        if isinstance(loss, (SoftmaxLogEntropy, SoftmaxLogMultEntropy)):
            want = loss.n if isinstance(loss, SoftmaxLogMultEntropy) else 1
            sums = t.sum(axis=1)
            if (t < 0).any() or not np.allclose(sums, want, rtol=1e-3, atol=1e-3):
                raise ValueError(
                    f"ys: {loss!r} needs non-negative target rows that sum to {want} "
                    f"(one-hot classes), got row sums from {sums.min():g} to {sums.max():g}"
                )
        return t

    def _chunk(self) -> int:
        """Samples per evaluation chunk, so activations stay within a memory budget."""
        per = int(math.prod(self.dim_in)) + sum(2 * int(math.prod(layer.dim_out)) for layer in self.layout[:-1])
        return max(1, _EVAL_BUDGET_BYTES // (per * np.dtype(self.dtype).itemsize))

    # ---- evaluation ----

    def __call__(self, xs) -> np.ndarray:
        """The net's output: (N, K) for a batch, (K,) for one sample; probabilities for a
        softmax loss."""
        x, single = self._samples(xs)
        c = self._chunk()
        out = np.concatenate([self._engine.predict(x[i : i + c]) for i in range(0, len(x), c)])
        return out[0] if single else out

    evaluate = __call__

    def focus(self, layer) -> Callable[[np.ndarray], np.ndarray]:
        """A function returning the activations of ``layer`` (a layer of the layout or its
        index) for an input: (X', Y', Z') for one sample, (N, X', Y', Z') for a batch."""
        index = self._layer_index(layer)

        def activations(xs) -> np.ndarray:
            x, single = self._samples(xs)
            c = self._chunk()
            out = np.concatenate([self._engine.focus(x[i : i + c], index) for i in range(0, len(x), c)])
            return out[0] if single else out

        return activations

    Ω = focus

    def _layer_index(self, layer) -> int:
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            if not 0 <= layer < len(self.layout) - 1:
                raise ValueError(f"layer: index {layer} is not a layer with weights (0..{len(self.layout) - 2})")
            return int(layer)
        for i, l in enumerate(self.layout[:-1]):
            if l is layer:
                return i
        raise ValueError(f"layer: {layer!r} is not in this network's layout")

    def loss(self, xs, ys) -> float:
        """The loss on (xs, ys), reduced as the settings say (sum or mean over samples)."""
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        c = self._chunk()
        parts = [(self._engine.loss(x[i : i + c], t[i : i + c]), len(x[i : i + c])) for i in range(0, len(x), c)]
        return self._combine([p for p, _ in parts], [m for _, m in parts])

    def gradients(self, xs, ys) -> list[np.ndarray]:
        """∂loss/∂weights on (xs, ys), shaped like ``weights`` (by finite differences when
        the settings say ``approximation=FiniteDifferences(Δ)``)."""
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        approx = self.settings.approximation
        c = self._chunk()
        parts, sizes = [], []
        for i in range(0, len(x), c):
            xb, tb = x[i : i + c], t[i : i + c]
            g = self._engine.fd_gradients(xb, tb, approx.delta) if approx else self._engine.gradients(xb, tb)
            parts.append(g)
            sizes.append(len(xb))
        if len(parts) == 1:
            return list(parts[0])
        return [self._combine([p[j] for p in parts], sizes) for j in range(len(parts[0]))]

    def _combine(self, values, sizes):
        if self.settings.reduction == "sum":
            return sum(values)
        return sum(v * (m / sum(sizes)) for v, m in zip(values, sizes))

    # ---- training ----

    def train(self, xs, ys, resume=None) -> TrainingRun:
        """Train for ``settings.iterations`` weight updates (or until the mean batch loss
        falls to ``settings.precision``). Ctrl-C stops after the step in flight, keeping
        the weights of the last finished step.

        ``resume``: a file written by ``net.save`` or a ``checkpoint_to`` waypoint during an
        earlier run on the same data. Its weights, optimizer state, iteration count, learning
        rate and shuffle position replace this network's, and the run goes on until it has
        ``settings.iterations`` updates in all; on the CPU it then ends with exactly the
        weights of an uninterrupted run. ``resume=True`` continues this network's own last
        run (after an interrupt, or after ``neuroflow.load``)."""
        s = self.settings
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        n = len(x)
        bs = min(s.batch_size, n)
        if resume is None or resume is False:
            run = RunState.start(n, bs, s.iterations, s.shuffle, s.seed, data_fingerprint(x, t))
        else:
            run = self._resume(resume, x, t, bs)
        self._run = run
        run.total = s.iterations
        approx = s.approximation.delta if s.approximation else None
        out = s.loss_func_output
        mode = "a" if run.done else "w"  # a resumed run continues its loss log
        log = open(out.file, mode, encoding="utf-8") if out is not None and out.file is not None else None
        losses: list[float] = []
        start = datetime.now()
        stopped_by = "iterations"
        alpha = getattr(self, "_alpha", 1.0)
        first = run.done + 1
        report_every = max(1, s.iterations // 50)
        t0 = time.perf_counter()
        bar = None
        if s.verbose:
            print(self.banner(), flush=True)
            if run.done:
                print(f"resuming at iteration {self._iteration} ({run.done}/{s.iterations} of the run done)", flush=True)
            bar = _progress_bar(run.done, s.iterations)
        order, pos, rng = run.order, run.pos, run.rng
        drawn_from = None  # the generator's state before an epoch's order, until its step is done
        with _deferred_interrupt() as interrupted:
            try:
                for it in range(first, s.iterations + 1):
                    if pos >= n:
                        if s.shuffle:
                            drawn_from = rng.bit_generator.state
                            order = rng.permutation(n)
                        pos = 0
                    idx = order[pos : pos + bs]
                    pos += bs
                    alpha = float(s.learning_rate(self._iteration + 1, alpha))
                    if not math.isfinite(alpha):
                        raise ValueError(f"learning_rate: returned {alpha!r} at iteration {self._iteration + 1}")
                    # a batch of the whole set is the whole set, in any order: no gather
                    whole = len(idx) == n
                    xb, tb = (x, t) if whole else (x[idx], t[idx])
                    loss = self._engine.train_step(xb, tb, alpha, approx)
                    self._iteration += 1
                    self._alpha = alpha
                    run.order, run.pos, run.done = order, pos, it
                    drawn_from = None
                    losses.append(loss)
                    if log is not None:
                        log.write(f"{loss!r}\n")
                    if out is not None and out.action is not None:
                        out.action(loss)
                    if s.verbose:
                        rate = (it - first + 1) * bs / max(time.perf_counter() - t0, 1e-9)
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix_str(f"loss {loss:.4g}, lr {alpha:.3g}, {rate:.1f} images/s", refresh=False)
                        elif it % report_every == 0 or it == first or it == s.iterations:
                            print(self._progress_line(it, loss, alpha, rate), flush=True)
                    if s.waypoint is not None and self._iteration % s.waypoint.every_n == 0:
                        s.waypoint.action(self._iteration, self)
                    if not math.isfinite(loss):
                        stopped_by = "diverged"
                        if s.verbose:
                            print(f"loss is {loss}: training diverged; lower the learning rate", file=sys.stderr)
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
        if s.verbose and losses and (bar is not None or stopped_by != "iterations"):
            rate = len(losses) * bs / max(time.perf_counter() - t0, 1e-9)
            print(self._progress_line(run.done, losses[-1], alpha, rate), flush=True)
        if s.verbose and stopped_by == "interrupt":
            print(f"interrupted: keeping the weights of iteration {self._iteration} "
                  "(net.save(path), then train(xs, ys, resume=path) continues the run)", flush=True)
        end = datetime.now()
        run_record = TrainingRun(
            iterations=len(losses),
            final_loss=losses[-1] if losses else float("nan"),
            losses=np.asarray(losses),
            start=start,
            end=end,
            stopped_by=stopped_by,
            samples=len(losses) * bs,
        )
        if s.verbose:
            print(f"took {run_record.seconds:.2f} s, {run_record.iterations} iterations, final loss {run_record.final_loss:.6g}", flush=True)
        return run_record

    def _progress_line(self, it: int, loss: float, alpha: float, rate: float) -> str:
        return (
            f"[{datetime.now():%H:%M:%S}] Iteration {self._iteration} ({it}/{self.settings.iterations}), "
            f"loss {loss:.6g}, lr {alpha:g}, {rate:.1f} samples/s"
        )

    def _resume(self, resume, x: np.ndarray, t: np.ndarray, bs: int) -> RunState:
        """Restore a checkpointed run into this network; check it fits the data and settings."""
        if resume is True:
            run = getattr(self, "_run", None)
            if run is None:
                raise ValueError("resume=True: this network has no run to continue; train it first, or load a checkpoint")
            where = "this network's last run"
        else:
            from ..io.modelfile import check_compatible, read

            mf = read(resume)
            check_compatible(self, mf)
            if mf.run is None:
                raise ValueError(
                    f"resume: {mf.path} holds no training run (it was saved before training); "
                    "load it with neuroflow.load and call train() to start a run"
                )
            run, where = mf.run, str(mf.path)
        s = self.settings
        if len(run.order) != len(x) or run.data != data_fingerprint(x, t):
            raise ValueError(
                f"resume: xs/ys are not the data of {where} ({len(run.order)} samples there, {len(x)} here, "
                "or other values); resuming needs the same samples in the same order"
            )
        if run.batch_size != bs or run.shuffle != s.shuffle:
            raise ValueError(
                f"resume: {where} used batch_size={run.batch_size}, shuffle={run.shuffle}; the settings say "
                f"batch_size={bs}, shuffle={s.shuffle}. Resuming continues the same run; to start a new one "
                "from these weights, use neuroflow.load(path) and train() without resume"
            )
        if resume is not True:
            self.weights = mf.weights
            if mf.state:
                self.optimizer_state = mf.state
            self._iteration = mf.iteration
            if mf.alpha is not None:
                self._alpha = mf.alpha
            elif hasattr(self, "_alpha"):
                del self._alpha
        # A copy: the file's or the network's record stays as it was if this run is interrupted.
        return RunState(_copy_rng(run.rng), run.order.copy(), run.pos, run.done, run.total, run.batch_size,
                        run.shuffle, run.data)

    # ---- files ----

    def save(self, path) -> "Path":
        """Write this network to one safetensors file (layout, settings, weights, optimizer
        state, iteration count, the run in flight), atomically. See ``neuroflow.modelfile``."""
        from ..io.modelfile import save

        return save(self, path)

    @classmethod
    def load(cls, path, **kw) -> "Network":
        """``neuroflow.load``: a network rebuilt from a model file."""
        from ..io.modelfile import load

        return load(path, **kw)


def _copy_rng(rng: np.random.Generator) -> np.random.Generator:
    gen = np.random.Generator(np.random.PCG64())
    gen.bit_generator.state = rng.bit_generator.state
    return gen


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


def _shape(dims) -> str:
    return ", ".join(str(d) for d in dims)


def _array_list(value, name: str, shapes: list, dtype) -> list[np.ndarray]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name}: expected a list of {len(shapes)} arrays, got {type(value).__name__}")
    if len(value) != len(shapes):
        raise ValueError(f"{name}: expected {len(shapes)} arrays, got {len(value)}")
    out = []
    for i, (v, shape) in enumerate(zip(value, shapes)):
        a = np.asarray(v)
        if a.shape != tuple(shape):
            raise ValueError(f"{name}[{i}]: expected shape {tuple(shape)}, got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating) and not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name}[{i}]: expected numbers, got {a.dtype}")
        a = np.ascontiguousarray(a, dtype=dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"{name}[{i}]: contains NaN or infinity")
        out.append(a)
    return out


def _make_engine(backend: str, spec_json: Callable[[bool], str]):
    """The engine for `backend`; `spec_json(on_gpu)` gives the spec for that engine."""
    if backend not in ("cpu", "gpu", "auto"):
        raise ValueError(f'backend: expected "cpu", "gpu" or "auto", got {backend!r}')
    if backend == "cpu":
        return "cpu", _core.Engine(spec_json(False))
    try:
        from ..engines.gpu import GpuEngine

        return "gpu", GpuEngine(spec_json(True))
    except Exception as e:
        if backend == "gpu":
            raise
        print(f"neuroflow: no GPU backend ({e}); using the CPU", file=sys.stderr)
        return "cpu", _core.Engine(spec_json(False))

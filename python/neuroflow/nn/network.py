"""The Network: a layout, settings, and an engine that holds the parameters and computes.

All numeric work happens in the engine (``neuroflow._core.Engine`` in Rust, the WGSL
``GpuEngine``, or the NumPy ``ReferenceEngine``), behind the contract of docs/engine.md.
This class builds the engine's spec, validates input before any work starts, and offers
the article's API; training runs in ``nn/training.py``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from .. import _core
from .banner import banner as _banner
from .breeders import WeightBreeder
from .layers import BatchNorm, Dense, Dropout, Layer, Residual, default_names
from .lookahead import SlowWeights
from .losses import Loss, SoftmaxLogEntropy, SoftmaxLogMultEntropy
from .settings import Settings
from .training import RunState, TrainingRun, train

__all__ = ["Evaluation", "Network", "TrainingRun"]

# Activation memory for one evaluation chunk (inference and gradients are chunked).
_EVAL_BUDGET_BYTES = 256 * 2**20


def _fresh_seed() -> int:
    """A fresh 64-bit seed from the OS's entropy (for ``Settings(seed=None)``)."""
    entropy = np.random.SeedSequence().entropy  # an int when none is given
    assert isinstance(entropy, int)
    return entropy % 2**64


class Evaluation(NamedTuple):
    """What ``net.evaluate`` measures: the mean loss per sample (whatever the reduction) and
    the accuracy (None when the targets have no classes)."""

    loss: float
    accuracy: float | None  # not Optional[...]: doc tools evaluate it where __new__ lives, without this module's imports


@dataclass
class Entry:
    """One layer of the walk (pre-order, residuals' inner layers after them)."""

    layer: Layer
    spec: dict  # resolved
    uid: int
    top: int  # layout index of the top-level layer it belongs to
    path: str  # full name, e.g. "res3.c0"


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
        if isinstance(layer, type) and issubclass(layer, Layer):
            raise TypeError(f"layout[{i}]: a layer must be an instance: {layer.__name__}(...)")
        if not isinstance(layer, Layer):
            raise TypeError(f"layout[{i}]: expected a layer (Convolution, Dense, BatchNorm, MaxPool, …), got {layer!r}")
    if layers[0].dim_in is None:
        what = (f"a network that starts with Dense needs its input size: Dense({layers[0].neurons}, …, dim_in=N)"
                if isinstance(layers[0], Dense) else "the first layer needs its input shape: dim_in=(X, Y, Z)")
        raise ValueError(f"layout[0]: {what}")
    return layers, loss


def _walk(layers: Sequence[Layer], specs: Sequence[dict]) -> list[Entry]:
    out: list[Entry] = []

    def go(layers, specs, top, prefix):
        for i, (layer, spec) in enumerate(zip(layers, specs)):
            t = i if top is None else top
            out.append(Entry(layer, spec, len(out), t, prefix + spec["name"]))
            if isinstance(layer, Residual):
                go(layer.layers, spec["layers"], t, prefix + spec["name"] + ".")

    go(layers, specs, None, "")
    return out


def _shape(dims) -> str:
    return ", ".join(str(d) for d in dims)


class Network:
    """A neural network: layers ending in a loss, settings, and an engine.

    >>> net = Network([Convolution((8, 8, 1), 1, 3, 1, 2, ReLU), Dense(2, ReLU), SoftmaxLogEntropy()])
    """

    def __init__(
        self,
        layout: Sequence,
        settings: Settings | None = None,
        weights: WeightBreeder | Sequence[np.ndarray] | None = None,
        backend: str = "cpu",
        input_norm: Optional[tuple] = None,
    ) -> None:
        layers, loss = _check_layout(layout)
        self.input_norm = _input_norm(input_norm, layers[0].input_shape())
        settings = settings if settings is not None else Settings()
        if not isinstance(settings, Settings):
            raise TypeError(f"settings: expected Settings(...), got {settings!r}")
        if backend not in ("cpu", "gpu", "auto", "reference"):
            raise ValueError(f'backend: expected "cpu", "gpu", "auto" or "reference", got {backend!r}')
        self.layout = list(layout)
        self._lock = threading.RLock()
        self._trainer: Optional[int] = None  # the thread training this network, if any
        # seed None: one fresh draw, kept (the engine's dropout and the model file use it)
        self._seed = settings.seed if settings.seed is not None else _fresh_seed()
        self._settings = settings
        self.backend, self._engine = _make_engine(backend, lambda gpu: self._spec_json(settings, gpu))
        spec = json.loads(self._engine.spec)
        self._dtype = np.float32 if spec["dtype"] == "f32" else np.float64
        if settings.dtype is None:
            self._settings = replace(settings, dtype=self._dtype)
        self._entries = _walk(layers, spec["layers"])
        self._check_given_dims()
        self._param_info = [(n, tuple(s)) for n, s in self._engine.param_info()]
        self._state_info = [(n, tuple(s)) for n, s in self._engine.state_info()]
        self.dim_in = tuple(spec["input"])
        self.dim_out = tuple(spec["layers"][-1]["dim_out"])
        self._iteration = 0
        self._alpha: Optional[float] = None
        self._run: Optional[RunState] = None  # the position of the last training run (nn/training.py)
        self._slow: Optional[SlowWeights] = None  # the lookahead's slow weights of that run (nn/lookahead.py)
        self._dist = None  # the ranks of its distributed run (neuroflow/distributed.py): saves are collective
        self._init_params(weights)

    # ---- building ----

    def _spec_json(self, settings: Settings, on_gpu: bool, seed: Optional[int] = None) -> str:
        """The engine spec, resolved by the engine core (docs/engine.md)."""
        layers, loss = self.layout[:-1], self.layout[-1]
        dtype = settings.dtype or (np.float32 if on_gpu else np.float64)
        spec = {
            "version": 2,
            "dtype": "f32" if dtype == np.float32 else "f64",
            "input": list(layers[0].input_shape()),
            "layers": [layer.to_spec(name) for layer, name in zip(layers, default_names(layers))],
            "loss": loss.to_spec(),
            "update": settings.update_rule.to_spec(),
            "reduction": settings.reduction,
            "seed": self._seed if seed is None else seed,
        }
        if self.input_norm is not None:
            spec["input_norm"] = {"mean": list(self.input_norm[0]), "std": list(self.input_norm[1])}
        return _core.resolve(json.dumps(spec))

    def _check_given_dims(self) -> None:
        """A layer built with dim_in after another layer must agree with what it is given."""
        tops = [e for e in self._entries if e.path == e.spec["name"]]
        for i, e in enumerate(tops[1:], 1):
            given, got = e.layer.input_shape(), tuple(e.spec["dim_in"])
            if given is None:
                continue
            if isinstance(e.layer, Dense):
                if math.prod(given) != math.prod(got):
                    raise ValueError(f"layout[{i}]: Dense has dim_in={math.prod(given)} but layout[{i - 1}] gives {math.prod(got)} values")
            elif given != got:
                raise ValueError(
                    f"layout[{i}]: {e.layer.label} expects dim_in {given} but layout[{i - 1}] gives {got}; "
                    f"build it with dim_in=layout[{i - 1}].dim_out"
                )

    def _init_params(self, weights) -> None:
        """Weights from the breeder (or the given list); biases and shifts 0, scales 1."""
        if weights is not None and not isinstance(weights, WeightBreeder):
            self.weights = weights
            return
        breeder = weights if weights is not None else WeightBreeder.he()
        wanted = [(self._entry_of(name).top, repr(self._entry_of(name).layer), shape)
                  for name, shape in self._param_info if name.endswith(".weight")]
        drawn = iter(breeder.breed(wanted, self.dtype, seed=self._seed))
        params = []
        for name, shape in self._param_info:
            kind = name.rsplit(".", 1)[1]
            params.append(next(drawn) if kind == "weight" else np.full(shape, 1.0 if kind == "scale" else 0.0, self.dtype))
        self.weights = params

    def _entry_of(self, param_name: str) -> Entry:
        path = param_name.rsplit(".", 1)[0]
        return next(e for e in self._entries if e.path == path)

    # ---- properties ----

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, value: Settings) -> None:
        """New settings; when they change what the engine computes (update rule, reduction,
        seed), the engine is rebuilt with the parameters, state and step kept, and the
        optimizer state kept where the update rule's slots are the same."""
        if not isinstance(value, Settings):
            raise TypeError(f"settings: expected Settings(...), got {value!r}")
        if value.dtype is None:
            value = replace(value, dtype=self._dtype)
        if value.dtype != self._dtype:
            raise ValueError(
                f"settings.dtype: this network computes in {np.dtype(self._dtype)}; its precision is fixed when it is "
                "built (build a new Network, or save and neuroflow.load(path, settings=...))"
            )
        with self._lock:
            self._guard("settings")
            seed = value.seed if value.seed is not None else self._seed
            if seed != self._seed or value.update_rule != self._settings.update_rule or value.reduction != self._settings.reduction:
                self._rebuild(value, seed)
            self._settings = value

    def _rebuild(self, settings: Settings, seed: int) -> None:
        """A new engine for `settings`, carrying parameters, state, step and (same slots)
        the optimizer state."""
        old = self._engine
        same_slots = list(settings.update_rule.slots) == list(old.optimizer_slots())
        engine = _make_engine(self.backend, lambda gpu: self._spec_json(settings, gpu, seed))[1]
        engine.set_params(old.get_params())
        engine.set_state(old.get_state())
        engine.set_step(old.get_step())
        if same_slots:
            engine.set_optimizer_state(old.get_optimizer_state())
        self._engine, self._seed = engine, seed

    @property
    def spec_json(self) -> str:
        """The engine's resolved spec (docs/engine.md)."""
        return self._engine.spec

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
        """Trained values in all: weights, biases, BatchNorm scales and shifts."""
        return sum(math.prod(s) for _, s in self._param_info)

    @property
    def weights(self) -> list[np.ndarray]:
        """Copies of every trained tensor in layout order (a layer's weight before its bias,
        BatchNorm's scale before its shift): conv (fx, fy, Z, F), dense (D, O), biases,
        scales and shifts (C,). Assign a list of arrays to change them."""
        with self._lock:
            return list(self._engine.get_params())

    @weights.setter
    def weights(self, value) -> None:
        value = _array_list(value, "weights", [s for _, s in self._param_info], self.dtype)
        with self._lock:
            self._guard("weights")
            self._engine.set_params(value)

    @property
    def parameters(self) -> dict[str, np.ndarray]:
        """The trained tensors by name ("c0.weight", "bn1.shift", "res3.c0.bias", …), copies.
        Assign a dict of some or all of them to change those."""
        return dict(zip((n for n, _ in self._param_info), self.weights))

    @parameters.setter
    def parameters(self, value) -> None:
        self.weights = self._merge(value, self.parameters, "parameters")

    @property
    def state(self) -> dict[str, np.ndarray]:
        """The non-trained tensors by name (BatchNorm's "bn1.running_mean", "bn1.running_var"),
        copies; assign a dict of some or all of them to change those."""
        with self._lock:
            return dict(zip((n for n, _ in self._state_info), self._engine.get_state()))

    @state.setter
    def state(self, value) -> None:
        merged = self._merge(value, self.state, "state")
        arrays = _array_list(merged, "state", [s for _, s in self._state_info], self.dtype)
        with self._lock:
            self._guard("state")
            self._engine.set_state(arrays)

    @staticmethod
    def _merge(value, current: dict, what: str) -> list:
        if not isinstance(value, dict):
            raise TypeError(f"{what}: expected a dict of name → array, got {type(value).__name__}")
        unknown = sorted(set(value) - set(current))
        if unknown:
            raise ValueError(f"{what}: no tensor named {unknown[0]!r}; the names are {sorted(current)}")
        return [value.get(k, v) for k, v in current.items()]

    @property
    def optimizer_state(self) -> list[np.ndarray]:
        """The update rule's slots per parameter (momentum; Adam's m, v), parameter-major:
        [p0.slot0, p0.slot1, p1.slot0, …]; empty for Vanilla."""
        with self._lock:
            return list(self._engine.get_optimizer_state())

    @optimizer_state.setter
    def optimizer_state(self, value) -> None:
        k = len(self._engine.optimizer_slots())
        shapes = [s for _, s in self._param_info for _ in range(k)]
        value = _array_list(value, "optimizer_state", shapes, self.dtype)
        with self._lock:
            self._guard("optimizer_state")
            self._engine.set_optimizer_state(value)

    @property
    def iteration(self) -> int:
        """Weight updates done so far (over all calls of ``train``)."""
        return self._iteration

    @property
    def layer_specs(self) -> list[dict]:
        """Every layer's resolved spec (shapes, parameters, state), in pre-order."""
        return [e.spec for e in self._entries]

    def banner(self) -> str:
        """The article's banner: version, network, weights, precision, loss, update, layout."""
        from .. import __version__

        return _banner(self, __version__)

    def __repr__(self) -> str:
        inner = ", ".join(repr(x) for x in self.layout)
        return f"Network([{inner}], backend={self.backend!r}, dtype={self.dtype_name})"

    def _guard(self, what: str) -> None:
        """Changes (weights, state, settings) are refused while another thread trains."""
        if self._trainer is not None and self._trainer != threading.get_ident():
            raise RuntimeError(f"{what}: this network is training in another thread; wait for train() to return")

    # ---- input checks ----

    def _samples(self, xs, name: str = "xs", finite: bool = True) -> tuple[np.ndarray, bool]:
        """A C-contiguous batch in the engine's dtype (or uint8); and whether one sample was
        given. ``finite=False`` leaves the NaN check to the caller."""
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
        if finite and xs.dtype != np.uint8 and not np.isfinite(xs).all():
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
            t: np.ndarray = np.zeros((n, k), dtype=self.dtype)
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

    def _chunk(self, train_mode: bool = False) -> int:
        """Samples per chunk, so activations stay within a memory budget. Train-mode
        results of a net with batch statistics or dropout depend on the whole batch: one chunk."""
        if train_mode and any(isinstance(e.layer, (BatchNorm, Dropout)) for e in self._entries):
            return sys.maxsize
        per = math.prod(self.dim_in) + sum(2 * math.prod(e.spec["dim_out"]) for e in self._entries)
        return max(1, _EVAL_BUDGET_BYTES // (per * np.dtype(self.dtype).itemsize))

    def _chunks(self, n: int, train_mode: bool = False) -> list[slice]:
        c = self._chunk(train_mode)
        return [slice(i, min(i + c, n)) for i in range(0, n, c)]

    def _call(self, method: str, *args, **kw):
        """An engine call that changes nothing, one thread at a time: while another thread
        trains it runs between two steps (training holds the lock a step at a time)."""
        with self._lock:
            return getattr(self._engine, method)(*args, **kw)

    # ---- evaluation ----

    def __call__(self, xs) -> np.ndarray:
        """The net's output in eval mode: (N, K) for a batch, (K,) for one sample;
        probabilities for a softmax loss."""
        x, single = self._samples(xs)
        out = np.concatenate([self._call("predict", x[c]) for c in self._chunks(len(x))])
        return out[0] if single else out

    def evaluate(self, xs, ys, tta: str | None = None) -> Evaluation:
        """The mean loss per sample and the accuracy on (xs, ys), in eval mode. Accuracy:
        the share of samples whose largest output is a target class (None for targets that
        are not one-hot rows or class ids).

        ``tta`` (test-time augmentation, images only) averages the last layer's output over
        views of each image: ``"flip"`` (the image and its mirror along X) or
        ``"flip_translate"`` (those, and both shifted by one pixel, reflected, on X and Y)."""
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        return self.score(self.outputs(x, tta), t)

    def outputs(self, xs, tta: str | None = None) -> np.ndarray:
        """The last layer's eval-mode output (N, *dim_out) (not the softmax: see ``net(xs)``),
        averaged over the views of ``tta`` (see ``evaluate``)."""
        x, _ = self._samples(xs)
        return np.concatenate([self._outputs(x[c], tta) for c in self._chunks(len(x))])

    def score(self, outputs: np.ndarray, ys) -> Evaluation:
        """``evaluate`` on outputs already computed (by ``outputs``)."""
        from ..engines.reference.losses import sample_losses

        out = np.asarray(outputs).reshape(len(outputs), -1).astype(np.float64)
        t = self._targets(ys, len(out), False).astype(np.float64)
        losses, _ = sample_losses(json.loads(self.spec_json)["loss"], out, t)
        pick = out.argmax(axis=1)
        classes = np.isin(t, (0, 1)).all() and (t.sum(axis=1) >= 1).all()
        accuracy = float((t[np.arange(len(pick)), pick] > 0).mean()) if classes else None
        return Evaluation(float(losses.mean()), accuracy)

    def _outputs(self, x: np.ndarray, tta: str | None) -> np.ndarray:
        """The last layer's eval-mode output, averaged over the test-time views of ``tta``."""
        if tta is None:
            return self._call("forward", x)
        if tta not in ("flip", "flip_translate"):
            raise ValueError(f'tta: expected None, "flip" or "flip_translate", got {tta!r}')
        if x.ndim != 4:
            raise ValueError(f"tta: needs images (N, X, Y, Z), the network takes {self.dim_in}")
        views = [x, x[:, ::-1]]
        if tta == "flip_translate":
            pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            X, Y = x.shape[1:3]
            for v in (pad[:, :X, :Y], pad[:, 2:, 2:]):  # shifted by (+1, +1) and (−1, −1)
                views += [v, v[:, ::-1]]
        return sum(self._call("forward", np.ascontiguousarray(v)) for v in views) / len(views)

    def focus(self, layer) -> Callable[[np.ndarray], np.ndarray]:
        """A function returning the activations of ``layer`` (a layer of the layout, also one
        inside a Residual, or a layout index) for an input, in eval mode: (X', Y', Z') for
        one sample, (N, X', Y', Z') for a batch."""
        uid = self._uid(layer)

        def activations(xs) -> np.ndarray:
            x, single = self._samples(xs)
            out = np.concatenate([self._call("forward", x[c], uid, "eval") for c in self._chunks(len(x))])
            return out[0] if single else out

        return activations

    Ω = focus

    def _uid(self, layer) -> int:
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            tops = [e for e in self._entries if e.path == e.spec["name"]]
            if not 0 <= layer < len(tops):
                raise ValueError(f"layer: index {layer} is not a layer of the layout (0..{len(tops) - 1})")
            return tops[int(layer)].uid
        for e in self._entries:
            if e.layer is layer:
                return e.uid
        raise ValueError(f"layer: {layer!r} is not in this network's layout")

    def loss(self, xs, ys, mode: str = "eval") -> float:
        """The loss on (xs, ys), reduced as the settings say (sum or mean over samples).
        ``mode="train"`` uses batch statistics and dropout (the loss ``gradients``
        differentiates); neither mode changes any state."""
        if mode not in ("eval", "train"):
            raise ValueError(f'mode: expected "eval" or "train", got {mode!r}')
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        chunks = self._chunks(len(x), mode == "train")
        parts = [self._call("loss", x[c], t[c], mode=mode) for c in chunks]
        return self._combine(parts, [c.stop - c.start for c in chunks])

    def gradients(self, xs, ys) -> list[np.ndarray]:
        """∂loss/∂weights on (xs, ys) in train mode, shaped like ``weights`` (by finite
        differences when the settings say ``approximation=FiniteDifferences(Δ)``)."""
        x, single = self._samples(xs)
        t = self._targets(ys, len(x), single)
        approx = self.settings.approximation
        chunks = self._chunks(len(x), True)
        parts = [self._call("fd_gradients", x[c], t[c], approx.delta) if approx else self._call("gradients", x[c], t[c])
                 for c in chunks]
        if len(parts) == 1:
            return list(parts[0])
        sizes = [c.stop - c.start for c in chunks]
        return [self._combine([p[j] for p in parts], sizes) for j in range(len(parts[0]))]

    def _combine(self, values, sizes):
        if self.settings.reduction == "sum":
            return sum(values)
        return sum(v * (m / sum(sizes)) for v, m in zip(values, sizes))

    # ---- training ----

    def train(self, xs, ys, resume=None, validation=None, patience: int | None = None, distributed=None) -> TrainingRun:
        """Train for ``settings.iterations`` weight updates (or until the mean batch loss
        falls to ``settings.precision``). Ctrl-C stops after the step in flight, keeping
        the weights of the last finished step. A step whose loss or gradients are not finite
        changes nothing and ends the run ("diverged").

        ``resume``: a file written by ``net.save`` or a ``checkpoint_to`` waypoint during an
        earlier run on the same data; the run goes on until it has ``settings.iterations``
        updates in all, ending with exactly the weights of an uninterrupted run (CPU).
        ``resume=True`` continues this network's own last run.

        ``validation=(xs, ys)``: evaluated after every epoch (loss and accuracy, printed and in
        ``run.extra["validation"]``); with ``patience=k`` training stops ("early stop") once the
        validation accuracy has not improved for k epochs.

        ``distributed``: True (every process of the MPI job) or a
        ``neuroflow.distributed.Distributed(...)``: data-parallel training, each process
        computing its share of every batch (see neuroflow/distributed.py); then ``save`` is
        collective: every rank calls it and rank 0 writes."""
        return train(self, xs, ys, resume, validation, patience, distributed)

    # ---- files ----

    def save(self, path) -> "object":
        """Write this network to one safetensors file (layout, settings, parameters, state,
        optimizer state, iteration count, the run in flight), atomically."""
        from .persist import save

        if self._dist is not None:  # a distributed net: every rank calls, rank 0 writes
            return self._dist.save(self, path)
        with self._lock:
            return save(self, path)

    @classmethod
    def load(cls, path, **kw) -> "Network":
        """``neuroflow.load``: a network rebuilt from a model file."""
        from .persist import load

        return load(path, **kw)


def _input_norm(value, dim_in: tuple) -> Optional[tuple]:
    """(mean, std) per input channel, checked: the engines compute (x − mean) / std after
    scaling bytes by 1/255."""
    if value is None:
        return None
    c = dim_in[-1]
    try:
        mean, std = value
        mean, std = np.asarray(mean, dtype=np.float64).reshape(-1), np.asarray(std, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise TypeError(f"input_norm: expected (mean, std), one number per input channel, got {value!r}") from None
    if mean.size == 1:
        mean = np.repeat(mean, c)
    if std.size == 1:
        std = np.repeat(std, c)
    if mean.size != c or std.size != c:
        raise ValueError(f"input_norm: expected {c} means and {c} standard deviations (one per input channel), got {mean.size} and {std.size}")
    if not np.isfinite(mean).all() or not (np.isfinite(std) & (std > 0)).all():
        raise ValueError("input_norm: means must be finite and standard deviations positive")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


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


def _too_large(e: Exception) -> bool:
    """A size the GPU cannot hold, or memory refused: no reason to try the CPU (which would
    run out of memory too), unlike a missing adapter or driver."""
    if isinstance(e, MemoryError):
        return True
    try:
        from ..engines.gpu.device import CapacityError
    except Exception:
        return False
    return isinstance(e, CapacityError)


def _make_engine(backend: str, spec_json: Callable[[bool], str]):
    """The engine for `backend`; `spec_json(on_gpu)` gives the spec for that engine."""
    if backend == "cpu":
        return "cpu", _core.Engine(spec_json(False))
    if backend == "reference":
        from ..engines.reference import ReferenceEngine

        return "reference", ReferenceEngine(spec_json(False))
    try:
        from ..engines.gpu import GpuEngine

        return "gpu", GpuEngine(spec_json(True))
    except Exception as e:
        if backend == "gpu" or _too_large(e):
            raise
        print(f"neuroflow: no GPU backend ({e}); using the CPU", file=sys.stderr)
        return "cpu", _core.Engine(spec_json(False))

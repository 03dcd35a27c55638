"""Model files: a network's layout, settings, weights, optimizer state and training position
in one safetensors file (``net.save(path)``, ``neuroflow.load(path)``).

Format "neuroflow.model", version 1. Tensors (little-endian, the engine's dtype):

- ``weights.{i}``: one per weight layer, shaped as in docs/engine.md;
- ``state.{i}``: the update rule's state, shaped like the weights (none for Vanilla);
- ``run.order``: int64 ``(N,)``, the sample order of the epoch in flight (only with a run).

Metadata (string → string; the structured values are JSON):

- ``format``, ``format_version``, ``neuroflow_version``;
- ``spec``: ``Network.spec_json``, what the engine is built from;
- ``layout``: the Python layers (their constructor arguments) and the loss;
- ``settings``: the serialisable settings. A learning-rate schedule (a Python callable) cannot
  be stored; its name is recorded and ``load`` asks for it again;
- ``training``: the iteration count, the last learning rate (alpha) and the run in flight
  (shuffle RNG state, position in the epoch, data fingerprint), so ``train(resume=path)``
  continues it exactly;
- ``checksums``: sha256 of every tensor's bytes, so a damaged file is refused.

Reading parses JSON and raw arrays only: no pickle, no eval, nothing in a file is ever run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..nn.activators import Activator
from .atomic import atomic_write_bytes
from .checkpoint import RunState
from ..nn.layers import Convolution, Dense
from ..nn.losses import Loss, loss_from_spec
from .nfjson import (
    neuroflow_matrices, read_neuroflow_json, set_neuroflow_weights, weights_from_neuroflow, write_neuroflow_json,
)
from ..nn.settings import FiniteDifferences, Settings, _constant_rate
from ..nn.optim import update_from_spec

__all__ = [
    "FORMAT", "FORMAT_VERSION", "ModelFile", "ModelFileError", "load", "read", "save",
    "neuroflow_matrices", "read_neuroflow_json", "set_neuroflow_weights", "weights_from_neuroflow",
    "write_neuroflow_json",
]

FORMAT = "neuroflow.model"
FORMAT_VERSION = 1
_CONSTANT_CODE = _constant_rate(1.0).__code__


class ModelFileError(ValueError):
    """A file that is not a readable neuroflow model: the message names the file and the fault."""


# ---------------------------------------------------------------- writing


def _layer_json(layer) -> dict:
    if isinstance(layer, Convolution):
        return {
            "kind": "conv", "name": layer.name, "dim_in": list(layer.dim_in), "padding": list(layer.padding),
            "field": list(layer.field), "stride": list(layer.stride), "filters": layer.filters,
            "activator": layer.activator.to_spec(),
        }
    return {"kind": "dense", "name": layer.name, "neurons": layer.neurons, "dim_in": layer.dim_in,
            "activator": layer.activator.to_spec()}


def constant_learning_rate(settings: Settings) -> float | None:
    """The learning rate if ``settings`` holds a constant one, else None (a schedule)."""
    lr = settings.learning_rate
    if getattr(lr, "__code__", None) is _CONSTANT_CODE:
        return float(lr(1, 1.0))
    return None


def _settings_json(s: Settings, dtype_name: str) -> dict:
    rate = constant_learning_rate(s)
    return {
        "learning_rate": rate,
        "learning_rate_schedule": None if rate is not None else getattr(s.learning_rate, "__qualname__", "a callable"),
        "update_rule": s.update_rule.to_spec(),
        "batch_size": s.batch_size,
        "iterations": s.iterations,
        "precision": s.precision,
        "verbose": s.verbose,
        "pretty_print": s.pretty_print,
        "approximation": s.approximation.delta if s.approximation is not None else None,
        "reduction": s.reduction,
        "dtype": dtype_name,  # the engine's precision
        "shuffle": s.shuffle,
        "seed": s.seed,
    }


def _checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(net, path: str | os.PathLike) -> Path:
    """Write ``net`` (layout, settings, weights, optimizer state, iteration count, the run in
    flight) to ``path`` as one safetensors file, atomically. Returns the path."""
    from safetensors.numpy import save as st_save

    from .. import __version__

    tensors: dict[str, np.ndarray] = {}
    for i, w in enumerate(net.weights):
        tensors[f"weights.{i}"] = np.ascontiguousarray(w)
    for i, m in enumerate(net.optimizer_state):
        tensors[f"state.{i}"] = np.ascontiguousarray(m)
    run: RunState | None = getattr(net, "_run", None)
    if run is not None:
        tensors["run.order"] = np.ascontiguousarray(run.order, dtype=np.int64)
    alpha = getattr(net, "_alpha", None)
    training = {"iteration": net.iteration, "alpha": alpha, "run": run.to_json() if run is not None else None}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "neuroflow_version": __version__,
        "spec": net.spec_json,
        "layout": json.dumps({"layers": [_layer_json(l) for l in net.layout[:-1]], "loss": net.loss_function.to_spec()}),
        "settings": json.dumps(_settings_json(net.settings, net.dtype_name)),
        "training": json.dumps(training),
        "checksums": json.dumps({k: _checksum(v) for k, v in tensors.items()}),
    }
    return atomic_write_bytes(path, st_save(tensors, metadata=metadata))


# ---------------------------------------------------------------- reading


@dataclass
class ModelFile:
    """The checked contents of a model file (see :func:`read`)."""

    path: Path
    version: str  # neuroflow version that wrote it
    spec: dict
    layers: list
    loss: Loss
    settings: dict
    weights: list[np.ndarray]
    state: list[np.ndarray]
    iteration: int
    alpha: float | None
    run: RunState | None

    @property
    def layout(self) -> list:
        return [*self.layers, self.loss]

    @property
    def learning_rate(self) -> float | None:
        """The stored constant learning rate; None if the model was trained with a schedule."""
        return self.settings["learning_rate"]

    @property
    def schedule_name(self) -> str | None:
        return self.settings["learning_rate_schedule"]


def _json(meta: dict, key: str, where: str):
    if key not in meta:
        raise ModelFileError(f"{where}: metadata has no {key!r} entry (the file is incomplete or not a neuroflow model)")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{where}: metadata {key!r} is not valid JSON ({e})") from None


def _int(v, what: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{what}: expected an int ≥ {minimum}, got {v!r}")
    return v


def _num(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what}: expected a finite number, got {v!r}")
    return float(v)


def _ints(v, n: int, what: str) -> tuple:
    if not isinstance(v, list) or len(v) != n:
        raise ValueError(f"{what}: expected a list of {n} ints, got {v!r}")
    return tuple(_int(x, what) for x in v)


def _activator(d, what: str) -> Activator:
    if not isinstance(d, dict) or not isinstance(d.get("name"), str):
        raise ValueError(f"{what}: expected {{'name', 'alpha', 'bias'}}, got {d!r}")
    return Activator(d["name"], _num(d.get("alpha", 0.0), f"{what}.alpha"), _num(d.get("bias", 0.0), f"{what}.bias"))


def _layers(doc) -> tuple[list, Loss]:
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), list) or not doc["layers"]:
        raise ValueError("expected {'layers': [...], 'loss': {...}}")
    layers = []
    for i, d in enumerate(doc["layers"]):
        w = f"layers[{i}]"
        if not isinstance(d, dict):
            raise ValueError(f"{w}: expected an object, got {d!r}")
        name = d.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{w}.name: expected a string, got {name!r}")
        act = _activator(d.get("activator"), f"{w}.activator")
        if d.get("kind") == "conv":
            layers.append(Convolution(
                dim_in=_ints(d.get("dim_in"), 3, f"{w}.dim_in"), padding=_ints(d.get("padding"), 2, f"{w}.padding"),
                field=_ints(d.get("field"), 2, f"{w}.field"), stride=_ints(d.get("stride"), 2, f"{w}.stride"),
                filters=_int(d.get("filters"), f"{w}.filters", 1), activator=act, name=name,
            ))
        elif d.get("kind") == "dense":
            dim_in = d.get("dim_in")
            layers.append(Dense(_int(d.get("neurons"), f"{w}.neurons", 1), act,
                                dim_in=None if dim_in is None else _int(dim_in, f"{w}.dim_in", 1), name=name))
        else:
            raise ValueError(f"{w}.kind: expected 'conv' or 'dense', got {d.get('kind')!r}")
    loss = doc.get("loss")
    if not isinstance(loss, dict) or not isinstance(loss.get("name"), str):
        raise ValueError(f"loss: expected {{'name', 'n'}}, got {loss!r}")
    if loss["name"] == "softmax_log_mult_entropy":
        n = _num(loss.get("n", 1), "loss.n")
        if n != int(n):
            raise ValueError(f"loss.n: expected a whole number, got {n!r}")
        loss = {"name": loss["name"], "n": int(n)}
    return layers, loss_from_spec(loss)


def _settings(d) -> dict:
    if not isinstance(d, dict):
        raise ValueError(f"expected an object, got {d!r}")
    out = dict(d)
    lr, sched = d.get("learning_rate"), d.get("learning_rate_schedule")
    if lr is None:
        if not isinstance(sched, str):
            raise ValueError("neither learning_rate nor learning_rate_schedule is recorded")
    else:
        _num(lr, "learning_rate")
    for key in ("batch_size", "iterations"):
        _int(d.get(key), key, 1)
    _num(d.get("precision"), "precision")
    for key in ("verbose", "pretty_print", "shuffle"):
        if not isinstance(d.get(key), bool):
            raise ValueError(f"{key}: expected true or false, got {d.get(key)!r}")
    if d.get("dtype") not in ("f32", "f64"):
        raise ValueError(f"dtype: expected 'f32' or 'f64', got {d.get('dtype')!r}")
    if d.get("seed") is not None:
        _int(d["seed"], "seed")
    if d.get("approximation") is not None:
        _num(d["approximation"], "approximation")
    rule = d.get("update_rule")
    if not isinstance(rule, dict) or not isinstance(rule.get("name"), str):
        raise ValueError(f"update_rule: expected {{'name', 'mu'}}, got {rule!r}")
    if "mu" in rule:
        _num(rule["mu"], "update_rule.mu")
    out["update_rule"] = update_from_spec(rule)
    return out


def read(path: str | os.PathLike) -> ModelFile:
    """Read and check a model file. Raises FileNotFoundError, or ModelFileError naming the
    fault: not a safetensors file, truncated or corrupted, another format or a newer format
    version, missing or extra tensors, wrong shapes or dtypes, checksums that do not match."""
    from safetensors import SafetensorError, safe_open

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"model file not found: {p}")
    where = str(p)
    try:
        with safe_open(str(p), framework="np") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as e:
        raise ModelFileError(f"{where}: not a readable safetensors file, truncated or corrupted ({e})") from None
    except (OSError, ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: cannot read it as a safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a neuroflow model file (metadata 'format' is {meta.get('format')!r}, expected {FORMAT!r})")
    version = meta.get("format_version", "")
    if not (version.isascii() and version.isdigit()):
        raise ModelFileError(f"{where}: unknown format version {version!r}")
    if int(version) != FORMAT_VERSION:
        newer = int(version) > FORMAT_VERSION
        raise ModelFileError(
            f"{where}: format version {version} {'is newer than' if newer else 'differs from'} the version this "
            f"neuroflow reads ({FORMAT_VERSION}){'; upgrade neuroflow' if newer else ''}"
        )
    spec = _json(meta, "spec", where)
    sums = _json(meta, "checksums", where)
    try:
        layers, loss = _layers(_json(meta, "layout", where))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: layout: {e}") from None
    try:
        settings = _settings(_json(meta, "settings", where))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{where}: settings: {e}") from None
    training = _json(meta, "training", where)

    # The tensors must be exactly the ones the layout implies, each intact.
    if not isinstance(sums, dict):
        raise ModelFileError(f"{where}: metadata 'checksums' is not an object")
    if set(sums) != set(tensors):
        missing, extra = sorted(set(sums) - set(tensors)), sorted(set(tensors) - set(sums))
        raise ModelFileError(f"{where}: tensors and checksums disagree (missing tensors {missing}, unlisted tensors {extra})")
    for k, a in tensors.items():
        if _checksum(a) != sums[k]:
            raise ModelFileError(f"{where}: tensor {k!r} does not match its checksum: the file is corrupted")
    try:
        shapes = _check_spec(layers, loss, settings, spec)
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{where}: layout: {e}") from None
    dtype = np.float32 if settings["dtype"] == "f32" else np.float64
    has_state = settings["update_rule"].to_spec()["name"] != "vanilla"
    expected = {f"weights.{i}": s for i, s in enumerate(shapes)}
    if has_state:
        expected.update({f"state.{i}": s for i, s in enumerate(shapes)})
    run_doc = training.get("run") if isinstance(training, dict) else None
    named = set(expected) | ({"run.order"} if run_doc is not None else set())
    if set(tensors) != named:
        missing, extra = sorted(named - set(tensors)), sorted(set(tensors) - named)
        raise ModelFileError(f"{where}: the layout needs tensors {sorted(named)}; missing {missing}, unexpected {extra}")
    for k, shape in expected.items():
        a = tensors[k]
        if a.shape != shape:
            raise ModelFileError(f"{where}: tensor {k!r} has shape {a.shape}, the layout needs {shape}")
        if a.dtype != dtype:
            raise ModelFileError(f"{where}: tensor {k!r} is {a.dtype}, the settings say {np.dtype(dtype)}")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{where}: tensor {k!r} contains NaN or infinity")

    try:
        if not isinstance(training, dict):
            raise ValueError(f"expected an object, got {training!r}")
        iteration = _int(training.get("iteration"), "iteration")
        alpha = training.get("alpha")
        alpha = None if alpha is None else _num(alpha, "alpha")
        run = None if run_doc is None else RunState.from_json(run_doc, tensors["run.order"])
    except (ValueError, TypeError, KeyError) as e:
        raise ModelFileError(f"{where}: training: {e}") from None
    n = len(shapes)
    return ModelFile(
        path=p, version=str(meta.get("neuroflow_version", "?")), spec=spec, layers=layers, loss=loss, settings=settings,
        weights=[tensors[f"weights.{i}"] for i in range(n)],
        state=[tensors[f"state.{i}"] for i in range(n)] if has_state else [],
        iteration=iteration, alpha=alpha, run=run,
    )


def _check_spec(layers, loss, settings: dict, spec) -> list[tuple]:
    """Weight shapes of ``layers``, checking that the stored engine spec is the one the stored
    layers, loss and settings give."""
    from ..nn.network import Network

    specs = Network._layer_specs(layers)
    want = {"dtype": settings["dtype"], "layers": specs, "loss": loss.to_spec(),
            "update": settings["update_rule"].to_spec(), "reduction": settings["reduction"]}
    if not isinstance(spec, dict):
        raise ValueError("the stored engine spec is not an object")
    for key, value in want.items():
        if spec.get(key) != value:
            raise ValueError(f"the stored engine spec's {key!r} ({spec.get(key)!r}) disagrees with the stored layout and settings ({value!r})")
    shapes = []
    for s in specs:
        if s["kind"] == "conv":
            shapes.append((*s["field"], s["dim_in"][2], s["filters"]))
        else:
            shapes.append((s["dim_in"], s["neurons"]))
    return shapes


def _schedule_not_saved(name: str) -> Callable[[int, float], float]:
    def learning_rate(iteration: int, alpha: float) -> float:
        raise ValueError(
            f"learning_rate: this model was trained with a learning-rate schedule ({name}), which a model file "
            "cannot hold (that would mean running code from a file); give it again: "
            "neuroflow.load(path, learning_rate=schedule)"
        )

    learning_rate.__qualname__ = f"unsaved schedule ({name})"
    return learning_rate


def settings_of(mf: ModelFile, learning_rate=None) -> Settings:
    """The stored settings as a Settings object; ``learning_rate`` replaces the stored rate."""
    d = mf.settings
    if learning_rate is None:
        learning_rate = d["learning_rate"] if d["learning_rate"] is not None else _schedule_not_saved(d["learning_rate_schedule"])
    return Settings(
        learning_rate=learning_rate, update_rule=d["update_rule"], batch_size=d["batch_size"],
        iterations=d["iterations"], precision=d["precision"], verbose=d["verbose"], pretty_print=d["pretty_print"],
        approximation=FiniteDifferences(d["approximation"]) if d["approximation"] is not None else None,
        reduction=d["reduction"], dtype=np.float32 if d["dtype"] == "f32" else np.float64,
        shuffle=d["shuffle"], seed=d["seed"],
    )


def load(path: str | os.PathLike, *, backend: str = "cpu", learning_rate=None, settings: Settings | None = None):
    """A Network rebuilt from a model file: layout, settings, weights, optimizer state,
    iteration count, and the run in flight (continue it with ``net.train(xs, ys, resume=True)``).

    ``learning_rate`` (a number or ``callable(iteration, alpha)``) replaces the stored rate; a
    model trained with a schedule needs it before it can train again (a file holds no code).
    ``settings`` replaces all stored settings; its dtype, update rule and reduction must be
    the stored ones, since the weights and optimizer state depend on them.
    """
    from ..nn.network import Network

    mf = read(path)
    if settings is None:
        s = settings_of(mf, learning_rate)
    else:
        if not isinstance(settings, Settings):
            raise TypeError(f"settings: expected Settings(...), got {settings!r}")
        stored = settings_of(mf)
        if settings.dtype is None:  # the default: take the file's precision
            settings = replace(settings, dtype=stored.dtype)
        for key in ("dtype", "update_rule", "reduction"):
            if getattr(settings, key) != getattr(stored, key):
                raise ValueError(
                    f"settings.{key}: the model file was saved with {getattr(stored, key)!r}, got {getattr(settings, key)!r}"
                )
        s = settings if learning_rate is None else replace(settings, learning_rate=learning_rate)
    net = Network(mf.layout, s, weights=mf.weights, backend=backend)
    if mf.state:
        net.optimizer_state = mf.state
    net._iteration = mf.iteration
    if mf.alpha is not None:
        net._alpha = mf.alpha
    net._run = mf.run
    return net


def check_compatible(net, mf: ModelFile) -> None:
    """Raise ValueError unless ``mf`` holds weights and state for ``net``'s layout and dtype."""
    mine = json.loads(net.spec_json)
    if mine == mf.spec:
        return
    for key in ("dtype", "layers", "loss", "update", "reduction"):
        if mine.get(key) != mf.spec.get(key):
            what = {"layers": "layout", "update": "update rule"}.get(key, key)
            raise ValueError(
                f"resume: {mf.path} was saved from a network with another {what} "
                f"({json.dumps(mf.spec.get(key))} there, {json.dumps(mine.get(key))} here)"
            )
    raise ValueError(f"resume: {mf.path} was saved from another network")

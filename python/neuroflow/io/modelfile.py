"""Model files: a network's spec, settings, parameters, state, optimizer state and training
position in one safetensors file. This module reads and writes them as plain data
(``ModelFile``); ``neuroflow.load`` / ``net.save`` (nn/persist.py) turn them into networks.

Format "neuroflow.model", version 2. Tensors (little-endian, the engine's dtype):

- ``param.{name}``: every trained tensor, named as ``net.parameters`` ("c0.weight", …);
- ``state.{name}``: every non-trained tensor ("bn1.running_mean", …);
- ``optim.{name}.{slot}``: the update rule's slots ("c0.weight.momentum", "c0.weight.m", …);
- ``run.order``: int64 ``(N,)``, the sample order of the epoch in flight (only with a run);
- ``lookahead.param.{name}``, ``lookahead.state.{name}``: the lookahead's slow copy of
  the parameters and state (only with a run that has ``settings.lookahead``).

Metadata (string → string; the structured values are JSON):

- ``format``, ``format_version``, ``neuroflow_version``;
- ``spec``: the engine's resolved spec (docs/engine.md): layers, loss, update rule,
  reduction, dtype, seed — all a layout needs;
- ``settings``: the other settings. A learning-rate schedule from ``neuroflow.schedules``
  is stored as data; a Python callable cannot be (its name is recorded and ``load`` asks
  for it again);
- ``training``: the iteration count, the last learning rate, the optimizer's step, and
  the run in flight (shuffle generator state, position, data fingerprint);
- ``checksums``: sha256 of every tensor's bytes and of the other metadata entries, so a
  damaged or edited file is refused.

Version 1 files (before named parameters; conv and dense layers only) are read too.
Reading parses JSON and raw arrays only: no pickle, no eval, nothing in a file is ever run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .. import _core
from . import safejson
from .atomic import atomic_write_bytes
from .nfjson import neuroflow_matrices, read_neuroflow_json, set_neuroflow_weights, weights_from_neuroflow, write_neuroflow_json

__all__ = [
    "FORMAT", "FORMAT_VERSION", "ModelFile", "ModelFileError", "read", "write", "spec_tensors",
    "neuroflow_matrices", "read_neuroflow_json", "set_neuroflow_weights", "weights_from_neuroflow",
    "write_neuroflow_json",
]

FORMAT = "neuroflow.model"
FORMAT_VERSION = 2
# Bounds on what a file may declare before anything is built from it.
_MAX_JSON_BYTES = 16 << 20
_MAX_DEPTH = 64


class ModelFileError(ValueError):
    """A file that is not a readable neuroflow model: the message names the file and the fault."""


@dataclass
class ModelFile:
    """A model file's checked contents, as plain data."""

    spec: dict  # resolved engine spec
    settings: dict  # see module doc
    params: dict[str, np.ndarray]
    state: dict[str, np.ndarray] = field(default_factory=dict)
    optim: dict[str, np.ndarray] = field(default_factory=dict)  # "{param}.{slot}"
    iteration: int = 0
    alpha: Optional[float] = None
    step: int = 0
    run: Optional[dict] = None  # RunState.to_json()
    run_order: Optional[np.ndarray] = None
    slow: dict[str, np.ndarray] = field(default_factory=dict)  # "param.{name}", "state.{name}": the lookahead's copy
    path: Optional[Path] = None
    version: str = ""  # neuroflow version that wrote it
    format_version: int = FORMAT_VERSION


def spec_tensors(spec: dict) -> tuple[list[tuple[str, tuple]], list[tuple[str, tuple]]]:
    """(name, shape) of the parameters and of the state a resolved spec implies, in order."""
    params, state = [], []

    def go(layers, prefix):
        for layer in layers:
            name = prefix + layer["name"]
            params.extend((f"{name}.{p['name']}", tuple(p["shape"])) for p in layer["params"])
            state.extend((f"{name}.{s['name']}", tuple(s["shape"])) for s in layer["state"])
            if layer["kind"] == "residual":
                go(layer["layers"], name + ".")

    go(spec["layers"], "")
    return params, state


def _slots(spec: dict) -> list[str]:
    from ..nn.optim import RULES  # (nn imports this module)

    return list(RULES[spec["update"]["name"]].slots)


def _checksum(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _meta_digest(meta: dict) -> str:
    return safejson.canonical_digest({k: v for k, v in meta.items() if k != "checksums"})


# ---------------------------------------------------------------- writing


def write(path: str | os.PathLike, mf: ModelFile) -> Path:
    """Write ``mf`` as one safetensors file, atomically. Refuses non-finite tensors: a
    good file is never replaced by a broken one."""
    from safetensors.numpy import save as st_save

    from .. import __version__

    tensors: dict[str, np.ndarray] = {}
    for prefix, group in (("param", mf.params), ("state", mf.state), ("optim", mf.optim), ("lookahead", mf.slow)):
        for k, v in group.items():
            a = np.ascontiguousarray(v)
            if not np.isfinite(a).all():
                raise ValueError(f"save: {prefix} {k!r} holds NaN or infinity; not writing a model that cannot be loaded")
            tensors[f"{prefix}.{k}"] = a
    if mf.run is not None:
        tensors["run.order"] = np.ascontiguousarray(mf.run_order, dtype=np.int64)
    training = {"iteration": mf.iteration, "alpha": mf.alpha, "step": mf.step, "run": mf.run, "lookahead": bool(mf.slow)}
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "neuroflow_version": __version__,
        "spec": json.dumps(mf.spec),
        "settings": json.dumps(mf.settings),
        "training": json.dumps(training),
    }
    sums = {k: _checksum(v) for k, v in tensors.items()}
    sums["metadata"] = _meta_digest(meta)
    meta["checksums"] = json.dumps(sums)
    return atomic_write_bytes(path, st_save(tensors, metadata=meta))


# ---------------------------------------------------------------- reading


def _loads(text: str, what: str, where: str):
    """JSON from a file, within limits (io/safejson.py): size, nesting depth, number lengths,
    duplicate keys, NaN and infinities are refused with a clear error."""
    try:
        return safejson.loads(text, what=f"metadata {what!r}", max_bytes=_MAX_JSON_BYTES, max_depth=_MAX_DEPTH)
    except safejson.JSONLimitError as e:
        raise ModelFileError(f"{where}: {e}") from None


def _entry(meta: dict, key: str, where: str):
    if key not in meta:
        raise ModelFileError(f"{where}: metadata has no {key!r} entry (the file is incomplete or not a neuroflow model)")
    return _loads(meta[key], key, where)


def _int(v, what: str, minimum: int = 0) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v < 2**63:
        raise ValueError(f"{what}: expected an int ≥ {minimum}, got {v!r:.50}")
    return v


def _num(v, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what}: expected a finite number, got {v!r:.50}")
    return float(v)


def check_settings(d) -> dict:
    """The stored settings' types and ranges (the Settings object checks the rest)."""
    if not isinstance(d, dict):
        raise ValueError(f"expected an object, got {d!r:.100}")
    lr = d.get("learning_rate")
    if not isinstance(lr, dict) or not (isinstance(lr.get("schedule"), dict) or isinstance(lr.get("code"), str)):
        raise ValueError("learning_rate: expected {'schedule': …} or {'code': name}")
    _int(d.get("iterations"), "iterations", 1)
    if "batch_size" not in d:
        raise ValueError("batch_size: missing (expected a whole number ≥ 1, or null: the whole data set)")
    if d["batch_size"] is not None:
        _int(d["batch_size"], "batch_size", 1)
    _num(d.get("precision"), "precision")
    for key in ("verbose", "pretty_print", "shuffle"):
        if not isinstance(d.get(key), bool):
            raise ValueError(f"{key}: expected true or false, got {d.get(key)!r:.50}")
    for key in ("approximation", "seed"):  # null when unset, but never missing
        if key not in d:
            raise ValueError(f"{key}: missing (expected a number or null)")
    if d.get("seed") is not None:
        _int(d["seed"], "seed")
    if d.get("approximation") is not None:
        _num(d["approximation"], "approximation")
    return d


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
    except (OSError, ValueError, TypeError, MemoryError) as e:
        raise ModelFileError(f"{where}: cannot read it as a safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a neuroflow model file (metadata 'format' is {meta.get('format')!r:.80}, expected {FORMAT!r})")
    version = meta.get("format_version", "")
    if not (version.isascii() and version.isdigit() and len(version) < 6):
        raise ModelFileError(f"{where}: unknown format version {version!r:.20}")
    if int(version) > FORMAT_VERSION:
        raise ModelFileError(f"{where}: format version {version} is newer than the versions this neuroflow reads "
                             f"(1, {FORMAT_VERSION}); upgrade neuroflow")
    sums = _entry(meta, "checksums", where)
    if not isinstance(sums, dict):
        raise ModelFileError(f"{where}: metadata 'checksums' is not an object")
    names = set(tensors) | ({"metadata"} if int(version) >= 2 else set())
    if set(sums) != names:
        missing, extra = sorted(set(sums) - names), sorted(names - set(sums))
        raise ModelFileError(f"{where}: tensors and checksums disagree (missing {missing}, unlisted {extra})")
    for k, a in tensors.items():
        if _checksum(a) != sums[k]:
            raise ModelFileError(f"{where}: tensor {k!r} does not match its checksum: the file is corrupted")
    if int(version) == 1:
        from .modelfile_v1 import read_v1

        mf = read_v1(meta, tensors, where)
    else:
        if _meta_digest(meta) != sums["metadata"]:
            raise ModelFileError(f"{where}: the metadata does not match its checksum: the file was edited or is corrupted")
        mf = _read_v2(meta, tensors, where)
    mf.path, mf.version = p, str(meta.get("neuroflow_version", "?"))[:40]
    return mf


# The largest window stride a file may declare. The core's resolver suggests a fix for a
# convolution whose stride does not divide its input by trying paddings one by one, up to
# the stride: a stride of 2**40 in a crafted file would keep it busy for hours. No input
# this engine can hold needs a stride anywhere near this.
MAX_STRIDE = 1 << 24


def check_strides(spec: Any, where: str) -> None:
    """Refuse a spec (resolved or not) with a window stride above MAX_STRIDE, before the core
    resolves it."""

    def go(layers: Any, depth: int) -> None:
        if not isinstance(layers, list) or depth > _MAX_DEPTH:
            return
        for layer in layers:
            if not isinstance(layer, dict):
                continue
            stride = layer.get("stride")
            if isinstance(stride, list) and any(isinstance(v, int) and v > MAX_STRIDE for v in stride):
                raise ModelFileError(f"{where}: layout: layer {str(layer.get('name'))[:40]!r} has stride {stride!r:.60}, "
                                     f"more than {MAX_STRIDE} (a corrupted or hostile file)")
            go(layer.get("layers"), depth + 1)

    if isinstance(spec, dict):
        go(spec.get("layers"), 0)


def resolved(spec: Any, where: str) -> dict:
    """The stored spec, checked: it must be exactly what the engine core resolves it to."""
    if not isinstance(spec, dict):
        raise ModelFileError(f"{where}: the stored spec is not an object")
    check_strides(spec, where)
    try:
        again = json.loads(_core.resolve(json.dumps(spec)))
    except ValueError as e:
        raise ModelFileError(f"{where}: layout: {e}") from None
    if again != spec:
        raise ModelFileError(f"{where}: layout: the stored shapes are not those of the stored layout")
    return spec


def _read_v2(meta: dict, tensors: dict, where: str) -> ModelFile:
    spec = resolved(_entry(meta, "spec", where), where)
    try:
        settings = check_settings(_entry(meta, "settings", where))
    except ValueError as e:
        raise ModelFileError(f"{where}: settings: {e}") from None
    training = _entry(meta, "training", where)
    dtype = np.float32 if spec["dtype"] == "f32" else np.float64
    params, state = spec_tensors(spec)
    slots = _slots(spec)
    expected = {f"param.{n}": s for n, s in params}
    expected |= {f"state.{n}": s for n, s in state}
    expected |= {f"optim.{n}.{k}": s for n, s in params for k in slots}
    run_doc = training.get("run") if isinstance(training, dict) else None
    if isinstance(training, dict) and training.get("lookahead") is True:  # the slow copy, shaped as the weights
        expected |= {f"lookahead.param.{n}": s for n, s in params} | {f"lookahead.state.{n}": s for n, s in state}
    named = set(expected) | ({"run.order"} if run_doc is not None else set())
    if set(tensors) != named:
        missing, extra = sorted(named - set(tensors)), sorted(set(tensors) - named)
        raise ModelFileError(f"{where}: the layout needs tensors {len(named)} tensors; missing {missing[:5]}, unexpected {extra[:5]}")
    for k, shape in expected.items():
        a = tensors[k]
        if a.shape != shape:
            raise ModelFileError(f"{where}: tensor {k!r} has shape {a.shape}, the layout needs {shape}")
        if a.dtype != dtype:
            raise ModelFileError(f"{where}: tensor {k!r} is {a.dtype}, the spec says {np.dtype(dtype)}")
        if not np.isfinite(a).all():
            raise ModelFileError(f"{where}: tensor {k!r} contains NaN or infinity")
    try:
        if not isinstance(training, dict):
            raise ValueError(f"expected an object, got {training!r:.100}")
        iteration = _int(training.get("iteration"), "iteration")
        step = _int(training.get("step"), "step")
        alpha = training.get("alpha")
        alpha = None if alpha is None else _num(alpha, "alpha")
    except ValueError as e:
        raise ModelFileError(f"{where}: training: {e}") from None
    return ModelFile(
        spec=spec, settings=settings,
        params={n: tensors[f"param.{n}"] for n, _ in params},
        state={n: tensors[f"state.{n}"] for n, _ in state},
        optim={f"{n}.{k}": tensors[f"optim.{n}.{k}"] for n, _ in params for k in slots},
        iteration=iteration, alpha=alpha, step=step, run=run_doc, run_order=tensors.get("run.order"),
        slow={k[len("lookahead."):]: a for k, a in tensors.items() if k.startswith("lookahead.")}, format_version=2,
    )

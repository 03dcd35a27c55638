"""Reading format version 1 model files (before named parameters: a chain of Convolution and
Dense layers, one weight array each, NeuroFlow's update rules). They become version-2 data:
the same layout and numbers, parameters named as today's networks name them."""

from __future__ import annotations

import numpy as np

from .modelfile import ModelFile, ModelFileError, _entry, _int, _num, check_settings, check_strides, resolved, spec_tensors

_DEFAULT_LABELS = {"conv": "Convolution", "dense": "Dense"}
_PREFIX = {"conv": "c", "dense": "d"}


def _names(layers: list) -> list[str]:
    """v1 names were labels ("Convolution" unless given): today's default names instead
    wherever a label repeats or was the default."""
    given = [d.get("name") for d in layers]
    out = []
    for i, (d, name) in enumerate(zip(layers, given)):
        default = name is None or name == _DEFAULT_LABELS.get(d.get("kind")) or given.count(name) > 1
        out.append(f"{_PREFIX.get(d.get('kind'), 'l')}{i}" if default else name)
    return out


def read_v1(meta: dict, tensors: dict, where: str) -> ModelFile:
    old = _entry(meta, "spec", where)
    layout = _entry(meta, "layout", where)
    raw = _entry(meta, "settings", where)
    training = _entry(meta, "training", where)
    try:
        if not isinstance(old, dict) or not isinstance(old.get("layers"), list) or not old["layers"]:
            raise ValueError("the stored spec has no layers")
        if not isinstance(raw, dict) or not isinstance(training, dict):
            raise ValueError("the stored settings and training must be objects")
        if not isinstance(layout, dict) or not isinstance(layout.get("layers"), list) or len(layout["layers"]) != len(old["layers"]):
            raise ValueError("the stored layout and spec disagree")
        if not all(isinstance(d, dict) for d in layout["layers"]):
            raise ValueError("a layer of the stored layout is not an object")
        names = _names(layout["layers"])
        layers = []
        for name, l in zip(names, old["layers"]):
            if not isinstance(l, dict):
                raise ValueError(f"a layer is not an object: {l!r:.80}")
            if l.get("kind") == "conv":
                layers.append({"kind": "conv", "name": name, **{k: l[k] for k in ("padding", "field", "stride", "filters", "activator")}})
            elif l.get("kind") == "dense":
                layers.append({"kind": "dense", "name": name, "neurons": l["neurons"], "activator": l["activator"]})
            else:
                raise ValueError(f"unknown layer kind {l.get('kind')!r:.40}")
        first = old["layers"][0]
        spec = {"version": 2, "dtype": old["dtype"], "input": first["dim_in"] if first["kind"] == "conv" else [first["dim_in"]],
                "layers": layers, "loss": {**old["loss"], "label_smoothing": 0.0}, "update": old["update"],
                "reduction": old["reduction"], "seed": raw.get("seed") or 0}
    except (ValueError, KeyError, TypeError) as e:
        raise ModelFileError(f"{where}: layout (format version 1): {e}") from None
    from .. import _core
    import json

    check_strides(spec, where)
    try:
        spec = json.loads(_core.resolve(json.dumps(spec)))
    except ValueError as e:
        raise ModelFileError(f"{where}: layout (format version 1): {e}") from None
    spec = resolved(spec, where)
    try:
        if not isinstance(raw, dict):
            raise ValueError("expected an object")
        lr = raw.get("learning_rate")
        rate = {"schedule": {"kind": "piecewise", "points": [[0, _num(lr, "learning_rate")]]}} if lr is not None else {
            "code": str(raw.get("learning_rate_schedule", "a callable"))[:200]}
        settings = check_settings({k: raw.get(k) for k in ("batch_size", "iterations", "precision", "verbose", "pretty_print",
                                                             "approximation", "shuffle", "seed")} | {"learning_rate": rate})
        iteration = _int(training.get("iteration"), "iteration")
        alpha = training.get("alpha")
        alpha = None if alpha is None else _num(alpha, "alpha")
    except (ValueError, AttributeError) as e:
        raise ModelFileError(f"{where}: settings or training (format version 1): {e}") from None
    params, _ = spec_tensors(spec)
    dtype = np.float32 if spec["dtype"] == "f32" else np.float64
    slot = "momentum" if spec["update"]["name"] != "vanilla" else None
    want = {f"weights.{i}" for i in range(len(params))} | ({f"state.{i}" for i in range(len(params))} if slot else set())
    run_doc = training.get("run")
    want |= {"run.order"} if run_doc is not None else set()
    if set(tensors) != want:
        raise ModelFileError(f"{where}: the layout needs tensors {sorted(want)}, the file holds {sorted(tensors)}")
    out_params: dict[str, np.ndarray] = {}
    optim: dict[str, np.ndarray] = {}
    for i, (n, shape) in enumerate(params):
        for key, target, name in ((f"weights.{i}", out_params, n), (f"state.{i}", optim, f"{n}.{slot}")):
            if key not in tensors:
                continue
            a = tensors[key]
            if a.shape != shape or a.dtype != dtype or not np.isfinite(a).all():
                raise ModelFileError(f"{where}: tensor {key!r} is {a.dtype} {a.shape}; the layout needs finite {np.dtype(dtype)} {shape}")
            target[name] = a
    return ModelFile(spec=spec, settings=settings, params=out_params, optim=optim, iteration=iteration, alpha=alpha,
                     step=iteration, run=run_doc, run_order=tensors.get("run.order"), format_version=1)

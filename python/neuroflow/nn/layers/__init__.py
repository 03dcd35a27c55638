"""Layers: configuration only (sizes, activator, options). Parameters and state live in the
network; shapes come from the engine core's resolver (docs/engine.md). One class per kind
of ids.json."""

from __future__ import annotations

from ...ids import names
from .base import Layer
from .batchnorm import BatchNorm
from .conv import Convolution
from .dense import Dense
from .dropout import Dropout
from .pool import AvgPool, GlobalAvgPool, MaxPool
from .residual import Residual

KINDS = {cls.kind: cls for cls in (Convolution, Dense, BatchNorm, MaxPool, AvgPool, GlobalAvgPool, Dropout, Residual)}
assert list(KINDS) == names("layers"), "nn/layers and ids.json disagree"

__all__ = ["AvgPool", "BatchNorm", "Convolution", "Dense", "Dropout", "GlobalAvgPool", "KINDS", "Layer", "MaxPool",
           "Residual", "default_names", "layer_from_spec"]


def default_names(layers) -> list[str]:
    """Each layer's name: its own, or its kind's prefix and its position (c0, bn1, …)."""
    return [layer.name or f"{layer.prefix}{i}" for i, layer in enumerate(layers)]


def layer_from_spec(d, position: int | None = None) -> Layer:
    """The layer a (stored, resolved) spec describes; plain data only. With its ``position``
    in its chain, a name that is the default for it is left unset, and only the first layer
    keeps its dim_in: the layer as it was most likely written."""
    if not isinstance(d, dict) or d.get("kind") not in KINDS:
        raise ValueError(f"layer: expected a spec with kind one of {names('layers')}, got {d!r:.200}")
    cls = KINDS[d["kind"]]
    d = dict(d)
    if position is not None:
        if d.get("name") == f"{cls.prefix}{position}":
            d["name"] = None
        if position > 0:
            d["dim_in"] = None
    try:
        return cls.from_spec(d)
    except KeyError as e:
        raise ValueError(f"layer {d.get('name')!r}: its spec lacks {e}") from None

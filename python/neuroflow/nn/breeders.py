"""Weight breeders: how a network's weights are drawn.

A breeder draws every layer's ``weight`` tensor; biases and BatchNorm's shift start at 0,
BatchNorm's scale at 1. Indices count layout positions from 0, as in the article (the
loss, last, has no weights; a Residual's index covers the weights inside it). A dict that
misses a weighted layer, or names one that does not exist, is an error that names the index.
A breeder without a seed draws from the network's ``Settings.seed``.
"""

from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import numpy as np


def _per_layer(arg, what: str, arity: int):
    """Normalise `arg` to either one parameter tuple for all layers or a dict of them."""
    def tup(v, where):
        t = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if len(t) != arity or not all(isinstance(x, numbers.Real) and np.isfinite(x) for x in t):
            raise ValueError(f"WeightBreeder.{what}: {where} must be {arity} finite number(s), got {v!r}")
        return tuple(float(x) for x in t)

    if isinstance(arg, Mapping):
        return {int(k): tup(v, f"layer {k}") for k, v in arg.items()}
    return tup(arg, "the parameters")


class WeightBreeder:
    """Draws the weights of a network, seeded for reproducibility."""

    def __init__(self, kind: str, params, seed: int | None = None) -> None:
        self.kind, self.params, self.seed = kind, params, seed

    @classmethod
    def normal(cls, mean: float | Mapping[int, tuple[float, float]] = 0.0, std: float | None = None,
               seed: int | None = None) -> "WeightBreeder":
        """``normal(mean, std)`` for every layer, or ``normal({index: (mean, std)})``."""
        if isinstance(mean, Mapping):
            params = _per_layer(mean, "normal", 2)
        else:
            if std is None:
                raise ValueError("WeightBreeder.normal: give std, e.g. normal(0, 0.1), or a dict {index: (mean, std)}")
            params = _per_layer((mean, std), "normal", 2)
        cls._check_std(params)
        return cls("normal", params, seed)

    @classmethod
    def random(cls, low: float | Mapping[int, tuple[float, float]] = -1.0, high: float = 1.0,
               seed: int | None = None) -> "WeightBreeder":
        """Uniform in [low, high) for every layer, or ``random({index: (low, high)})``."""
        params = _per_layer(low, "random", 2) if isinstance(low, Mapping) else _per_layer((low, high), "random", 2)
        for k, (lo, hi) in (params.items() if isinstance(params, dict) else [("all", params)]):
            if not lo < hi:
                raise ValueError(f"WeightBreeder.random: low must be < high for layer {k}, got ({lo}, {hi})")
        return cls("random", params, seed)

    @classmethod
    def static(cls, value: float | Mapping[int, float] = 0.0) -> "WeightBreeder":
        """Every weight the same value (or ``static({index: value})``)."""
        return cls("static", _per_layer(value, "static", 1), None)

    @classmethod
    def he(cls, seed: int | None = None) -> "WeightBreeder":
        """Normal(0, √(2 / fan-in)) per layer: the default, a good start for ReLU nets."""
        return cls("he", None, seed)

    @staticmethod
    def _check_std(params) -> None:
        for k, (_, s) in (params.items() if isinstance(params, dict) else [("all", params)]):
            if s < 0:
                raise ValueError(f"WeightBreeder.normal: std must be ≥ 0 for layer {k}, got {s}")

    def breed(self, layers: Sequence[tuple[int, str, tuple]], dtype, seed: int | None = None) -> list[np.ndarray]:
        """Arrays for `layers`, given as (layout index, description, weight shape); `seed` is
        used when the breeder has none of its own."""
        if isinstance(self.params, dict):
            have = {i for i, _, _ in layers}
            missing = [(i, d) for i, d, _ in layers if i not in self.params]
            if missing:
                i, d = missing[0]
                raise ValueError(
                    f"WeightBreeder.{self.kind}: no parameters for layer {i} ({d}); "
                    f"the layout's weighted layers are {sorted(have)}"
                )
            extra = sorted(set(self.params) - have)
            if extra:
                raise ValueError(
                    f"WeightBreeder.{self.kind}: layer {extra[0]} has no weights (the layout's weighted layers are {sorted(have)})"
                )
        rng = np.random.default_rng(self.seed if self.seed is not None else seed)
        out = []
        for i, _, shape in layers:
            p = self.params[i] if isinstance(self.params, dict) else self.params
            if self.kind == "normal":
                w = rng.normal(p[0], p[1], size=shape)
            elif self.kind == "random":
                w = rng.uniform(p[0], p[1], size=shape)
            elif self.kind == "static":
                w = np.full(shape, p[0])
            else:
                fan_in = int(np.prod(shape[:-1]))
                w = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
            out.append(np.ascontiguousarray(w, dtype=dtype))
        return out

    def __repr__(self) -> str:
        return f"WeightBreeder.{self.kind}({self.params!r}, seed={self.seed!r})"

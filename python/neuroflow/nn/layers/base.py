"""What every layer class shares: argument checks with messages that name the argument, the
layer's spec (docs/engine.md), and its shapes — always computed by the engine core's one
resolver (``neuroflow._core.resolve_layer``), never here."""

from __future__ import annotations

import json
import numbers
from typing import ClassVar, Mapping, Optional

from ... import _core


def pair(value, name: str, layer: str, minimum: int) -> tuple[int, int]:
    """NeuroFlow's autoTupler: an int means the same value on both axes."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        raise TypeError(f"{layer}: {name} must be an int or a pair of ints (x, y), got {value!r}")
    if min(value) < minimum:
        raise ValueError(f"{layer}: {name} must be ≥ {minimum} on both axes, got {tuple(value)}")
    return int(value[0]), int(value[1])


def positive_int(value, name: str, layer: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def dims(value, name: str, layer: str) -> tuple[int, ...]:
    """An input shape: (X, Y, Z), or (D,) / D for flat input."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if (
        not isinstance(value, (tuple, list))
        or len(value) not in (1, 3)
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        or min(value) < 1
    ):
        raise ValueError(
            f"{layer}: {name} must be three positive ints (X, Y, Z) = (width, height, depth), or one for flat input, got {value!r}"
        )
    return tuple(int(v) for v in value)


def real(value, name: str, layer: str, lo: float, hi: float, closed_hi: bool = False) -> float:
    # `not value < lo` rather than `lo <= value`: typeshed's numbers.Real has no reflected
    # comparisons (NaN still fails the upper bound)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and not value < lo and (value <= hi if closed_hi else value < hi)
    if not ok:
        raise ValueError(f"{layer}: {name} must be a number in [{lo:g}, {hi:g}{']' if closed_hi else ')'}, got {value!r}")
    return float(value)


def shape_text(d) -> str:
    return "*".join(str(v) for v in d)


class Layer:
    """A layer's configuration (what the user writes): validated when made, turned into the
    engine's spec by ``to_spec``. Weights and state live in the network."""

    kind: ClassVar[str] = ""
    prefix: ClassVar[str] = "l"  # default names: prefix + position, e.g. c0, bn1

    def __init__(self, *, name: Optional[str] = None, lr_mult=None, wd_mult=None, dim_in=None) -> None:
        label = type(self).__name__ if name is None else name
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"{label!r}: name must be a non-empty string without '.', got {name!r}")
        self.name = name
        self.label = label
        # (Dense keeps a flat input as its number of values, as NeuroFlow wrote it)
        self.dim_in: tuple[int, ...] | int | None = None if dim_in is None else dims(dim_in, "dim_in", label)
        self.lr_mult = self._mults(lr_mult, "lr_mult")
        self.wd_mult = self._mults(wd_mult, "wd_mult")

    # ---- what subclasses say ----

    def param_names(self) -> list[str]:
        """Names of the trained tensors this configuration has."""
        return []

    def config(self) -> dict:
        """The kind's fields of the spec."""
        return {}

    def describe(self, spec: dict) -> str:
        """The banner's line for this layer, from its resolved spec."""
        return f"{type(self).__name__} ~> {shape_text(spec['dim_out'])}"

    # ---- shared ----

    def input_shape(self) -> Optional[tuple]:
        """dim_in as a shape tuple (None when not given)."""
        d = self.dim_in
        return None if d is None else (d,) if isinstance(d, int) else tuple(d)

    def _mults(self, value, what: str) -> dict:
        if value is None:
            return {}
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if k not in self.param_names():
                    raise ValueError(f"{self.label}: {what} names {k!r}, not a parameter of this layer ({self.param_names()})")
                out[k] = real(v, f"{what}[{k!r}]", self.label, 0.0, float("inf"))
            return out
        v = real(value, what, self.label, 0.0, float("inf"))
        return {k: v for k in self.param_names()}

    def to_spec(self, name: str) -> dict:
        spec = {"kind": self.kind, "name": name, **self.config()}
        if self.lr_mult:
            spec["lr_mult"] = dict(self.lr_mult)
        if self.wd_mult:
            spec["wd_mult"] = dict(self.wd_mult)
        return spec

    def resolve(self, dim_in, where: Optional[str] = None) -> dict:
        """This layer's resolved spec for input ``dim_in`` (shapes, parameters, state)."""
        return json.loads(_core.resolve_layer(json.dumps(self.to_spec(self.name or self.prefix)), list(dim_in), where or self.label))

    @property
    def dim_out(self) -> Optional[tuple]:
        """The output shape when ``dim_in`` was given (else the network knows it)."""
        if self.dim_in is None:
            return None
        if not hasattr(self, "_dim_out"):
            self._dim_out = tuple(self.resolve(self.input_shape())["dim_out"])
        return self._dim_out

    def _check_now(self) -> None:
        """Refuse a bad configuration at once when dim_in is known."""
        if self.dim_in is not None:
            _ = self.dim_out

    def _args(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = [a for a in (self._args(), f"name={self.name!r}" if self.name else "") if a]
        return f"{type(self).__name__}({', '.join(extra)})"

"""Layers: configuration only (sizes, activator). Weights live in the network.

A ``Convolution`` checks its geometry when it is built, so ``layer.dim_out`` is known at
once and a bad configuration is refused before any work starts.
"""

from __future__ import annotations

import numbers
from typing import Sequence

from .activators import Activator, check_activator


def _pair(value, name: str, layer: str, minimum: int) -> tuple[int, int]:
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


def _positive_int(value, name: str, layer: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def _dims(value, name: str, layer: str) -> tuple[int, int, int]:
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 3
        or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
        or min(value) < 1
    ):
        raise ValueError(f"{layer}: {name} must be three positive ints (X, Y, Z) = (width, height, depth), got {value!r}")
    return int(value[0]), int(value[1]), int(value[2])


def _suggest(size: int, pad: int, field: int, stride: int) -> str:
    """A nearby padding or stride that makes (size + 2·pad − field) divisible by the stride."""
    ideas = []
    for p in range(pad, pad + stride + 1):
        if size + 2 * p >= field and (size + 2 * p - field) % stride == 0:
            ideas.append(f"padding {p}")
            break
    for p in range(pad - 1, -1, -1):
        if size + 2 * p >= field and (size + 2 * p - field) % stride == 0:
            ideas.append(f"padding {p}")
            break
    span = size + 2 * pad - field
    if span >= 0:
        divisors = [s for s in range(1, span + 1) if span % s == 0] if span > 0 else [1]
        best = min(divisors, key=lambda s: (abs(s - stride), s))
        ideas.append(f"stride {best}")
    return " or ".join(ideas) if ideas else "a smaller field"


class Convolution:
    """A convolution layer with ``filters`` filters of ``field`` over a zero-padded input.

    ``dim_in = (X, Y, Z)`` is the unpadded input; ``padding``, ``field`` and ``stride`` are an
    int (both axes) or a pair (x, y). Output: ``dim_out = ((X + 2px − fx)/sx + 1,
    (Y + 2py − fy)/sy + 1, filters)``.
    """

    def __init__(
        self,
        dim_in: Sequence[int],
        padding=0,
        field=3,
        stride=1,
        filters: int = 1,
        activator: Activator | None = None,
        name: str | None = None,
    ) -> None:
        label = name or "Convolution"
        self.name = label
        self.dim_in = _dims(dim_in, "dim_in", label)
        self.padding = _pair(padding, "padding", label, 0)
        self.field = _pair(field, "field", label, 1)
        self.stride = _pair(stride, "stride", label, 1)
        self.filters = _positive_int(filters, "filters", label)
        if activator is None:
            raise TypeError(f"{label}: activator is required (e.g. activator=ReLU)")
        self.activator = check_activator(activator, f"{label}: activator")
        out = []
        for axis, size, p, f, s in zip("XY", self.dim_in, self.padding, self.field, self.stride):
            padded = size + 2 * p
            if f > padded:
                raise ValueError(
                    f"{label} with dim_in {self.dim_in}: the field {f} on {axis} is larger than the padded input "
                    f"{size} + 2·{p} = {padded}; try {_suggest(size, p, f, s)}"
                )
            if (padded - f) % s:
                raise ValueError(
                    f"{label} with dim_in {self.dim_in}: on {axis}, {size} + 2·{p} − {f} = {padded - f} is not "
                    f"divisible by the stride {s}; try {_suggest(size, p, f, s)}"
                )
            out.append((padded - f) // s + 1)
        self.dim_out = (out[0], out[1], self.filters)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(fx, fy, Z, filters)."""
        return (self.field[0], self.field[1], self.dim_in[2], self.filters)

    def to_spec(self) -> dict:
        return {
            "kind": "conv",
            "dim_in": list(self.dim_in),
            "padding": list(self.padding),
            "field": list(self.field),
            "stride": list(self.stride),
            "filters": self.filters,
            "activator": self.activator.to_spec(),
        }

    def describe(self) -> str:
        """The article's layout line: padded input ~> [field : stride] ~> output (activator)."""
        (x, y, z), (px, py) = self.dim_in, self.padding
        ox, oy, f = self.dim_out
        return (
            f"{x + 2 * px}*{y + 2 * py}*{z} ~> [{self.field[0]}*{self.field[1]} : "
            f"{self.stride[0]}*{self.stride[1]}] ~> {ox}*{oy}*{f} ({self.activator!r})"
        )

    def __repr__(self) -> str:
        return (
            f"Convolution(dim_in={self.dim_in}, padding={self.padding}, field={self.field}, "
            f"stride={self.stride}, filters={self.filters}, activator={self.activator!r})"
        )


class Dense:
    """A fully connected layer of ``neurons`` neurons. Its input size comes from the layer
    before it; a network that starts with a Dense layer gives it ``dim_in``."""

    def __init__(self, neurons: int, activator: Activator | None = None, dim_in: int | None = None, name: str | None = None) -> None:
        label = name or "Dense"
        self.name = label
        self.neurons = _positive_int(neurons, "neurons", label)
        if activator is None:
            raise TypeError(f"{label}: activator is required (e.g. Dense({neurons}, ReLU))")
        self.activator = check_activator(activator, f"{label}: activator")
        self.dim_in = None if dim_in is None else _positive_int(dim_in, "dim_in", label)
        self.dim_out = (self.neurons,)

    def to_spec(self, dim_in: int) -> dict:
        return {"kind": "dense", "dim_in": dim_in, "neurons": self.neurons, "activator": self.activator.to_spec()}

    def describe(self) -> str:
        return f"{self.neurons} Dense ({self.activator!r})"

    def __repr__(self) -> str:
        extra = f", dim_in={self.dim_in}" if self.dim_in is not None else ""
        return f"Dense({self.neurons}, {self.activator!r}{extra})"

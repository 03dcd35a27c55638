"""Convolution: ``filters`` filters of ``field`` over a zero-padded input, an optional
learnable bias, then the activator."""

from __future__ import annotations

from typing import Optional, Sequence

from ...ids import names
from ..activators import Activator, check_activator
from .base import Layer, pair, positive_int, shape_text

ALGORITHMS = tuple(names("conv_algorithms"))


class Convolution(Layer):
    """A convolution layer.

    ``dim_in = (X, Y, Z)`` is the unpadded input (may be omitted after another layer: the
    network infers it, and checks it when given); ``padding``, ``field`` and ``stride`` are
    an int (both axes) or a pair (x, y). Output: ``((X + 2px − fx)/sx + 1, (Y + 2py −
    fy)/sy + 1, filters)``, which must be whole (NeuroFlow's rule; the error suggests a
    padding or stride that fits). ``bias=True`` adds a learnable bias per filter.
    ``algorithm`` picks the CPU engine's implementation (results differ by rounding only):
    auto, im2col, im2col_t, winograd (F(2×2, 3×3)), winograd4 (F(4×4, 3×3) or F(4×4, 2×2);
    a strided layer whose field is 2 or 3 strides runs over its input's phases), direct.
    """

    kind = "conv"
    prefix = "c"

    def __init__(
        self,
        dim_in: Optional[Sequence[int]] = None,
        padding=0,
        field=3,
        stride=1,
        filters: int = 1,
        activator: Activator | None = None,
        name: str | None = None,
        *,
        bias: bool = False,
        algorithm: str = "auto",
        lr_mult=None,
        wd_mult=None,
    ) -> None:
        label = name or "Convolution"
        self.padding = pair(padding, "padding", label, 0)
        self.field = pair(field, "field", label, 1)
        self.stride = pair(stride, "stride", label, 1)
        self.filters = positive_int(filters, "filters", label)
        if activator is None:
            raise TypeError(f"{label}: activator is required (e.g. activator=ReLU)")
        self.activator = check_activator(activator, f"{label}: activator")
        if not isinstance(bias, bool):
            raise TypeError(f"{label}: bias must be True or False, got {bias!r}")
        self.bias = bias
        if algorithm not in ALGORITHMS:
            raise ValueError(f"{label}: algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        self.algorithm = algorithm
        super().__init__(name=name, lr_mult=lr_mult, wd_mult=wd_mult, dim_in=dim_in)
        shape = self.input_shape()
        if shape is not None and len(shape) != 3:
            raise ValueError(f"{label}: dim_in must be three positive ints (X, Y, Z) = (width, height, depth), got {dim_in!r}")
        self._check_now()

    def param_names(self) -> list[str]:
        return ["weight", "bias"] if self.bias else ["weight"]

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(fx, fy, Z, filters), when dim_in is known."""
        shape = self.input_shape()
        if shape is None:
            raise ValueError(f"{self.label}: the weight shape needs dim_in (or the network's layer shapes)")
        return (self.field[0], self.field[1], shape[2], self.filters)

    def config(self) -> dict:
        return {
            "padding": list(self.padding), "field": list(self.field), "stride": list(self.stride), "filters": self.filters,
            "bias": self.bias, "activator": self.activator.to_spec(), "algorithm": self.algorithm,
        }

    @classmethod
    def from_spec(cls, d: dict) -> "Convolution":
        return cls(d.get("dim_in") or None, d["padding"], d["field"], d["stride"], d["filters"],
                   Activator.from_spec(d["activator"]), d["name"],
                   bias=d.get("bias", False), algorithm=d.get("algorithm", "auto"),
                   lr_mult=d.get("lr_mult"), wd_mult=d.get("wd_mult"))

    def describe(self, spec: dict) -> str:
        """The article's layout line: padded input ~> [field : stride] ~> output (activator)."""
        (x, y, z), (px, py) = spec["dim_in"], self.padding
        bias = " + bias" if self.bias else ""
        return (
            f"{x + 2 * px}*{y + 2 * py}*{z} ~> [{self.field[0]}*{self.field[1]} : "
            f"{self.stride[0]}*{self.stride[1]}] ~> {shape_text(spec['dim_out'])} ({self.activator!r}{bias})"
        )

    def _args(self) -> str:
        parts = [f"dim_in={self.dim_in}"] if self.dim_in is not None else []
        parts += [f"padding={self.padding}", f"field={self.field}", f"stride={self.stride}", f"filters={self.filters}",
                  f"activator={self.activator!r}"]
        if self.bias:
            parts.append("bias=True")
        if self.algorithm != "auto":
            parts.append(f"algorithm={self.algorithm!r}")
        return ", ".join(parts)

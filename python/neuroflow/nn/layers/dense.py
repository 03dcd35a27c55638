"""Dense (fully connected) layer: s = x·W (+ b), then the activator. A 3-D input is read
flattened in (x, y, z) order."""

from __future__ import annotations

from ..activators import Activator, check_activator
from .base import Layer, positive_int


class Dense(Layer):
    """``neurons`` neurons with ``activator``; ``bias=True`` adds a learnable bias. Its input
    size comes from the layer before it; a network that starts with a Dense layer gives it
    ``dim_in``."""

    kind = "dense"
    prefix = "d"

    def __init__(self, neurons: int, activator: Activator | None = None, dim_in=None, name: str | None = None, *,
                 bias: bool = False, lr_mult=None, wd_mult=None) -> None:
        label = name or "Dense"
        self.neurons = positive_int(neurons, "neurons", label)
        if activator is None:
            raise TypeError(f"{label}: activator is required (e.g. Dense({neurons}, ReLU))")
        self.activator = check_activator(activator, f"{label}: activator")
        if not isinstance(bias, bool):
            raise TypeError(f"{label}: bias must be True or False, got {bias!r}")
        self.bias = bias
        if dim_in is not None and not isinstance(dim_in, (tuple, list)):
            dim_in = positive_int(dim_in, "dim_in", label)
        super().__init__(name=name, lr_mult=lr_mult, wd_mult=wd_mult, dim_in=dim_in)
        if isinstance(self.dim_in, tuple) and len(self.dim_in) == 1:
            self.dim_in = self.dim_in[0]  # a flat input is a number of values, as NeuroFlow wrote it

    def param_names(self) -> list[str]:
        return ["weight", "bias"] if self.bias else ["weight"]

    def config(self) -> dict:
        return {"neurons": self.neurons, "bias": self.bias, "activator": self.activator.to_spec()}

    @classmethod
    def from_spec(cls, d: dict) -> "Dense":
        return cls(d["neurons"], Activator.from_spec(d["activator"]), d.get("dim_in") or None, d["name"], bias=d.get("bias", False),
                   lr_mult=d.get("lr_mult"), wd_mult=d.get("wd_mult"))

    def describe(self, spec: dict) -> str:
        return f"{self.neurons} Dense ({self.activator!r}{' + bias' if self.bias else ''})"

    def _args(self) -> str:
        extra = f", dim_in={self.dim_in}" if self.dim_in is not None else ""
        return f"{self.neurons}, {self.activator!r}{extra}" + (", bias=True" if self.bias else "")

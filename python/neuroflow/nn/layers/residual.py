"""Residual block: output = act(input + layers(input)); the inner layers keep the shape."""

from __future__ import annotations

from typing import Sequence

from ..activators import Activator, Linear, check_activator
from .base import Layer


class Residual(Layer):
    """``Residual([Convolution(..., activator=Linear), BatchNorm(activator=ReLU), ...])``: the
    inner layers' output added to the block's input (shapes checked when the network is
    built), then ``activator`` (default Linear)."""

    kind = "residual"
    prefix = "res"

    def __init__(self, layers: Sequence[Layer], activator: Activator = Linear, *, name: str | None = None) -> None:
        label = name or "Residual"
        if not isinstance(layers, (list, tuple)) or not layers:
            raise ValueError(f"{label}: layers must be a non-empty list of layers, got {layers!r}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"{label}: layers[{i}] must be a layer (Convolution, BatchNorm, …), got {layer!r}")
        self.layers = list(layers)
        self.activator = check_activator(activator, f"{label}: activator")
        super().__init__(name=name)

    def config(self) -> dict:
        from . import default_names

        names = default_names(self.layers)
        return {"layers": [layer.to_spec(n) for layer, n in zip(self.layers, names)], "activator": self.activator.to_spec()}

    @classmethod
    def from_spec(cls, d: dict) -> "Residual":
        from . import layer_from_spec

        return cls([layer_from_spec(x, i) for i, x in enumerate(d["layers"])], Activator.from_spec(d["activator"]), name=d["name"])

    def describe(self, spec: dict) -> str:
        inner = "; ".join(layer.describe(s) for layer, s in zip(self.layers, spec["layers"]))
        act = f" ({self.activator!r})" if self.activator != Linear else ""
        return f"Residual [{inner}]{act}"

    def _args(self) -> str:
        act = f", activator={self.activator!r}" if self.activator != Linear else ""
        return f"[{', '.join(repr(x) for x in self.layers)}]{act}"

"""Pooling: max and average over windows, and the global average over all positions."""

from __future__ import annotations

from .base import Layer, pair, shape_text


class _Pool(Layer):
    """A window of ``field`` moved by ``stride`` (default: the field) over the input padded
    by ``padding`` (at most half the field). The output is ⌊(X + 2p − f)/s⌋ + 1 wide (a
    last partial window is dropped, as PyTorch)."""

    def __init__(self, field=2, stride=None, padding=0, *, name: str | None = None) -> None:
        label = name or type(self).__name__
        self.field = pair(field, "field", label, 1)
        self.stride = self.field if stride is None else pair(stride, "stride", label, 1)
        self.padding = pair(padding, "padding", label, 0)
        for a in range(2):
            if self.padding[a] > self.field[a] // 2:
                raise ValueError(f"{label}: padding {self.padding} must be at most half the field {self.field}")
        super().__init__(name=name)

    def config(self) -> dict:
        return {"field": list(self.field), "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def from_spec(cls, d: dict):
        return cls(d["field"], d["stride"], d.get("padding", 0), name=d["name"])

    def describe(self, spec: dict) -> str:
        return (f"{type(self).__name__} [{self.field[0]}*{self.field[1]} : {self.stride[0]}*{self.stride[1]}] "
                f"~> {shape_text(spec['dim_out'])}")

    def _args(self) -> str:
        parts = [f"field={self.field}"]
        if self.stride != self.field:
            parts.append(f"stride={self.stride}")
        if self.padding != (0, 0):
            parts.append(f"padding={self.padding}")
        return ", ".join(parts)


class MaxPool(_Pool):
    """The maximum over each window (padding never wins; ties go to the first element)."""

    kind = "maxpool"
    prefix = "mp"


class AvgPool(_Pool):
    """The mean over each window (padding counts as zeros)."""

    kind = "avgpool"
    prefix = "ap"


class GlobalAvgPool(Layer):
    """The mean over all positions of each channel: (X, Y, Z) → (Z,)."""

    kind = "global_avg_pool"
    prefix = "gap"

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name=name)

    @classmethod
    def from_spec(cls, d: dict) -> "GlobalAvgPool":
        return cls(name=d["name"])

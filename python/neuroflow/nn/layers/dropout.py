"""Dropout: in train mode each value is kept with probability 1 − rate and scaled by
1/(1 − rate); eval mode passes values through. The masks are seeded (Settings.seed, the
step, the layer) and the same on every engine."""

from __future__ import annotations

from .base import Layer, real


class Dropout(Layer):
    kind = "dropout"
    prefix = "drop"

    def __init__(self, rate: float = 0.5, *, name: str | None = None) -> None:
        self.rate = real(rate, "rate", name or "Dropout", 0.0, 1.0)
        super().__init__(name=name)

    def config(self) -> dict:
        return {"rate": self.rate}

    @classmethod
    def from_spec(cls, d: dict) -> "Dropout":
        return cls(d["rate"], name=d["name"])

    def describe(self, spec: dict) -> str:
        return f"Dropout({self.rate:g})"

    def _args(self) -> str:
        return f"{self.rate:g}"

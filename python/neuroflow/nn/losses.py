"""Losses. As in NeuroFlow, a loss reads the last layer's activated output, and its gradient
is multiplied by that layer's activator derivative (docs/engine.md)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..ids import names


def _smoothing(v) -> float:
    # v < 0.0 or not v < 1.0: typeshed's numbers.Real has no reflected comparisons; NaN is refused
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < 0.0 or not v < 1.0:
        raise ValueError(f"label_smoothing: expected a number in [0, 1), got {v!r}")
    return float(v)


@dataclass(frozen=True)
class Loss:
    """Base of the losses: the last item of a layout."""

    name = ""
    softmax = False

    def to_spec(self) -> dict:
        return {"name": self.name, "n": 1.0, "label_smoothing": 0.0}


@dataclass(frozen=True)
class SoftmaxLogEntropy(Loss):
    """−Σ t′·log softmax(y), computed stably; targets are probability rows (one-hot classes),
    smoothed to t′ = (1 − ε)·t + ε/K with ``label_smoothing`` ε. The network's output
    (``net(x)``) is the softmax probabilities."""

    label_smoothing: float = 0.0
    name = "softmax_log_entropy"
    softmax = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_smoothing", _smoothing(self.label_smoothing))

    def to_spec(self) -> dict:
        return {"name": self.name, "n": 1.0, "label_smoothing": self.label_smoothing}

    def __repr__(self) -> str:
        return f"SoftmaxLogEntropy(label_smoothing={self.label_smoothing:g})" if self.label_smoothing else "SoftmaxLogEntropy"


@dataclass(frozen=True)
class SoftmaxLogMultEntropy(Loss):
    """Softmax log-entropy for targets with ``n`` ones per row (several true classes)."""

    n: int = 1
    label_smoothing: float = 0.0
    name = "softmax_log_mult_entropy"
    softmax = True

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, numbers.Integral) or self.n < 1:
            raise ValueError(f"n: expected a positive number of targets per sample, got {self.n!r}")
        object.__setattr__(self, "label_smoothing", _smoothing(self.label_smoothing))

    def to_spec(self) -> dict:
        return {"name": self.name, "n": float(self.n), "label_smoothing": self.label_smoothing}

    def __repr__(self) -> str:
        extra = f", label_smoothing={self.label_smoothing:g}" if self.label_smoothing else ""
        return f"SoftmaxLogMultEntropy({self.n}{extra})"


@dataclass(frozen=True)
class SquaredError(Loss):
    """½ Σ (y − t)²."""

    name = "squared_error"

    def __repr__(self) -> str:
        return "SquaredError"


@dataclass(frozen=True)
class AbsCubicError(Loss):
    """½ Σ |y − t|³."""

    name = "abs_cubic_error"

    def __repr__(self) -> str:
        return "AbsCubicError"


LOSSES = {cls.name: cls for cls in (SoftmaxLogEntropy, SoftmaxLogMultEntropy, SquaredError, AbsCubicError)}
assert list(LOSSES) == names("losses"), "nn/losses.py and ids.json disagree"


def loss_from_spec(d: dict) -> Loss:
    if not isinstance(d, dict) or d.get("name") not in LOSSES:
        raise ValueError(f"loss: expected one of {names('losses')}, got {d!r}")
    name, n, eps = d["name"], d.get("n", 1), d.get("label_smoothing", 0.0)
    if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n) or n != int(n):
        raise ValueError(f"loss.n: expected a whole number, got {n!r}")
    if name == "softmax_log_mult_entropy":
        return SoftmaxLogMultEntropy(int(n), eps)
    if name == "softmax_log_entropy":
        return SoftmaxLogEntropy(eps)
    if eps:
        raise ValueError(f"loss.label_smoothing: {name} takes none, got {eps!r}")
    return LOSSES[name]()

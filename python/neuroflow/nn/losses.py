"""Losses. As in NeuroFlow, a loss reads the last layer's activated output, and its gradient
is multiplied by that layer's activator derivative."""

from __future__ import annotations

from dataclasses import dataclass
import numbers


@dataclass(frozen=True)
class Loss:
    """Base of the losses: the last item of a layout."""

    name = ""
    softmax = False

    def to_spec(self) -> dict:
        return {"name": self.name, "n": 1.0}


@dataclass(frozen=True)
class SoftmaxLogEntropy(Loss):
    """−Σ t·log softmax(y), computed stably; targets are probability rows (one-hot classes).
    The network's output (``net(x)``) is the softmax probabilities."""

    name = "softmax_log_entropy"
    softmax = True

    def __repr__(self) -> str:
        return "SoftmaxLogEntropy"


@dataclass(frozen=True)
class SoftmaxLogMultEntropy(Loss):
    """Softmax log-entropy for targets with ``n`` ones per row (several true classes)."""

    n: int = 1
    name = "softmax_log_mult_entropy"
    softmax = True

    def __post_init__(self) -> None:
        if not isinstance(self.n, numbers.Integral) or self.n < 1:
            raise ValueError(f"n: expected a positive number of targets per sample, got {self.n!r}")

    def to_spec(self) -> dict:
        return {"name": self.name, "n": float(self.n)}

    def __repr__(self) -> str:
        return f"SoftmaxLogMultEntropy({self.n})"


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


def loss_from_spec(d: dict) -> Loss:
    name = d["name"]
    if name == "softmax_log_mult_entropy":
        return SoftmaxLogMultEntropy(int(d.get("n", 1)))
    for cls in (SoftmaxLogEntropy, SquaredError, AbsCubicError):
        if cls.name == name:
            return cls()
    raise ValueError(f"loss: unknown name {name!r}")

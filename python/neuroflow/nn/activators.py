"""Activators, each usable biased as in NeuroFlow: ``ReLU.biased(0.1)`` computes f(x + 0.1).

Each activator is a small immutable value: its name, LeakyReLU's slope α, and the fixed
bias. The engines compute them natively; ``__call__`` and ``derivative`` evaluate them with
NumPy (handy for plots and as an independent reference in tests).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace

import numpy as np

from ..ids import names

# The users' names of the activators in ids.json (tests/test_ids.py checks that both list
# the same ones).
_DISPLAY = {
    "relu": "ReLU",
    "leaky_relu": "LeakyReLU",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "linear": "Linear",
    "softplus": "SoftPlus",
    "square": "Square",
    "gelu": "GELU",
}
_erf = np.frompyfunc(math.erf, 1, 1)


def _phi(x: np.ndarray) -> np.ndarray:
    """Φ(x), the standard normal CDF."""
    return 0.5 * (1.0 + np.asarray(_erf(np.asarray(x) / math.sqrt(2.0)), np.float64))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive number only: no overflow for large |x| either way.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass(frozen=True)
class Activator:
    """An activation function f, applied as f(x + bias)."""

    name: str
    alpha: float = 0.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in names("activators"):
            raise ValueError(f"activator: unknown name {self.name!r}; expected one of {names('activators')}")

    def biased(self, bias: float) -> "Activator":
        """The same activator applied to x + bias (a fixed constant, not a trained weight)."""
        if not isinstance(bias, numbers.Real) or not np.isfinite(bias):
            raise ValueError(f"bias: expected a finite number, got {bias!r}")
        return replace(self, bias=float(bias))

    def to_spec(self) -> dict:
        return {"name": self.name, "alpha": self.alpha, "bias": self.bias}

    @staticmethod
    def from_spec(d: dict) -> "Activator":
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ValueError(f"activator: expected {{'name', 'alpha', 'bias'}}, got {d!r}")
        alpha, bias = d.get("alpha", 0.0), d.get("bias", 0.0)
        for what, v in (("alpha", alpha), ("bias", bias)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"activator.{what}: expected a finite number, got {v!r}")
        return Activator(d["name"], float(alpha), float(bias))

    @property
    def folds(self) -> bool:
        """Does f′ follow from the output alone (so no pre-activations need keeping)?"""
        return self.name not in ("square", "gelu") and not (self.name == "leaky_relu" and self.alpha < 0)

    def __repr__(self) -> str:
        base = _DISPLAY[self.name] + (f"({self.alpha:g})" if self.name == "leaky_relu" else "")
        return base + (f".biased({self.bias:g})" if self.bias else "")

    def __call__(self, x) -> np.ndarray:
        """f(x + bias) in NumPy."""
        x = np.asarray(x, dtype=np.float64) + self.bias
        n = self.name
        if n == "relu":
            return np.maximum(x, 0.0)
        if n == "leaky_relu":
            return np.where(x > 0, x, self.alpha * x)
        if n == "sigmoid":
            return _sigmoid(x)
        if n == "tanh":
            return np.tanh(x)
        if n == "linear":
            return x
        if n == "softplus":
            return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))
        if n == "gelu":
            return x * _phi(x)
        return x * x

    def derivative(self, x) -> np.ndarray:
        """f'(x + bias) in NumPy."""
        x = np.asarray(x, dtype=np.float64) + self.bias
        n = self.name
        if n == "relu":
            return (x > 0).astype(np.float64)
        if n == "leaky_relu":
            return np.where(x > 0, 1.0, self.alpha)
        if n == "sigmoid":
            s = _sigmoid(x)
            return s * (1 - s)
        if n == "tanh":
            return 1 - np.tanh(x) ** 2
        if n == "linear":
            return np.ones_like(x)
        if n == "softplus":
            return _sigmoid(x)
        if n == "gelu":
            return _phi(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
        return 2 * x


ReLU = Activator("relu")
Sigmoid = Activator("sigmoid")
Tanh = Activator("tanh")
Linear = Activator("linear")
SoftPlus = Activator("softplus")
Square = Activator("square")
GELU = Activator("gelu")


def LeakyReLU(alpha: float = 0.01) -> Activator:  # noqa: N802 - the article's name
    """x for x > 0, αx otherwise; derivative 1 or α (NeuroFlow's forward was not leaky)."""
    if not isinstance(alpha, numbers.Real) or not np.isfinite(alpha):
        raise ValueError(f"alpha: expected a finite number, got {alpha!r}")
    return Activator("leaky_relu", alpha=float(alpha))


def check_activator(act, where: str) -> Activator:
    """Return `act` if it is an Activator, else raise a TypeError that says what to pass."""
    if isinstance(act, Activator):
        return act
    if act is LeakyReLU:
        raise TypeError(f"{where}: LeakyReLU needs its slope, e.g. LeakyReLU(0.01)")
    raise TypeError(
        f"{where}: expected an activator (ReLU, LeakyReLU(α), Sigmoid, Tanh, Linear, SoftPlus, Square, GELU), got {act!r}"
    )

"""Update rules. They are settings only; the momentum they need lives in the network."""

from __future__ import annotations

from dataclasses import dataclass
import numbers


def _check_mu(mu) -> float:
    if not isinstance(mu, numbers.Real) or not 0.0 <= mu < 1.0:
        raise ValueError(f"mu: expected a momentum in [0, 1), got {mu!r}")
    return float(mu)


@dataclass(frozen=True)
class Vanilla:
    """W ← W − α∇W."""

    def to_spec(self) -> dict:
        return {"name": "vanilla"}

    def __repr__(self) -> str:
        return "Vanilla"


@dataclass(frozen=True)
class Momentum:
    """NeuroFlow's momentum: M ← μM − α∇W, W ← W + M."""

    mu: float = 0.9

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _check_mu(self.mu))

    def to_spec(self) -> dict:
        return {"name": "momentum", "mu": self.mu}

    def __repr__(self) -> str:
        return f"Momentum({self.mu:g})"


@dataclass(frozen=True)
class Nesterov:
    """Nesterov momentum: M′ = μM − α∇W, W ← W − μM + (1 + μ)M′."""

    mu: float = 0.9

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _check_mu(self.mu))

    def to_spec(self) -> dict:
        return {"name": "nesterov", "mu": self.mu}

    def __repr__(self) -> str:
        return f"Nesterov({self.mu:g})"


def update_from_spec(d: dict):
    name = d["name"]
    if name == "vanilla":
        return Vanilla()
    if name == "momentum":
        return Momentum(d["mu"])
    if name == "nesterov":
        return Nesterov(d["mu"])
    raise ValueError(f"update_rule: unknown name {name!r}")

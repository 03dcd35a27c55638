"""Update rules: settings only (docs/engine.md has the formulas). Their state — momentum,
Adam's moments, the step count — lives in the network and its model file."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import ClassVar

from ..ids import names


def _in(v, name: str, lo: float, hi: float, what: str) -> float:
    # (`v < lo or not v < hi`, not `not lo <= v < hi`: typeshed's numbers.Real has no reflected
    # comparisons; NaN is refused either way)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or v < lo or not v < hi:
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return float(v)


def _decay(v) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0:
        raise ValueError(f"weight_decay: expected a number ≥ 0, got {v!r}")
    return float(v)


@dataclass(frozen=True)
class UpdateRule:
    """Base of the update rules."""

    name: ClassVar[str] = ""
    slots: ClassVar[tuple] = ()

    def to_spec(self) -> dict:
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name) != f.default)
        return f"{type(self).__name__}({args})" if args or type(self) is not Vanilla else "Vanilla"


@dataclass(frozen=True, repr=False)
class Vanilla(UpdateRule):
    """W ← W − α(∇W + λW)."""

    weight_decay: float = 0.0
    name = "vanilla"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight_decay", _decay(self.weight_decay))


_DEFAULT_MU = 0.9


@dataclass(frozen=True, repr=False)
class _WithMomentum(UpdateRule):
    mu: float = _DEFAULT_MU
    weight_decay: float = 0.0
    slots = ("momentum",)

    def __init__(self, mu: float | None = None, weight_decay: float = 0.0, **kw: float) -> None:
        # NeuroFlow writes Momentum(μ = 0.8f): μ is accepted beside mu (as net.Ω beside focus).
        if kw.keys() - {"μ"}:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kw.keys() - {'μ'})}; "
                            "expected mu (or μ) and weight_decay")
        if "μ" in kw and mu is not None:
            raise TypeError(f"{type(self).__name__}: give mu or μ, not both")
        mu = kw.get("μ", _DEFAULT_MU if mu is None else mu)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "weight_decay", weight_decay)
        self.__post_init__()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _in(self.mu, "mu", 0.0, 1.0, "a momentum in [0, 1)"))
        object.__setattr__(self, "weight_decay", _decay(self.weight_decay))

    def __repr__(self) -> str:
        extra = f", weight_decay={self.weight_decay:g}" if self.weight_decay else ""
        return f"{type(self).__name__}({self.mu:g}{extra})"


@dataclass(frozen=True, repr=False, init=False)
class Momentum(_WithMomentum):
    """NeuroFlow's momentum: M ← μM − α(∇W + λW), W ← W + M."""

    name = "momentum"


@dataclass(frozen=True, repr=False, init=False)
class Nesterov(_WithMomentum):
    """Nesterov momentum: M′ = μM − α(∇W + λW), W ← W − μM + (1 + μ)M′."""

    name = "nesterov"


@dataclass(frozen=True, repr=False)
class Adam(UpdateRule):
    """Adam with bias correction (and L2 weight decay added to the gradient)."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    name = "adam"
    slots = ("m", "v")

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta1", _in(self.beta1, "beta1", 0.0, 1.0, "a number in [0, 1)"))
        object.__setattr__(self, "beta2", _in(self.beta2, "beta2", 0.0, 1.0, "a number in [0, 1)"))
        object.__setattr__(self, "eps", _in(self.eps, "eps", 0.0, math.inf, "a positive number"))
        if self.eps == 0:
            raise ValueError("eps: expected a positive number, got 0")
        object.__setattr__(self, "weight_decay", _decay(self.weight_decay))


@dataclass(frozen=True, repr=False)
class AdamW(Adam):
    """Adam with decoupled weight decay: W ← W − αλW before the Adam step."""

    weight_decay: float = 0.01
    name = "adamw"


@dataclass(frozen=True, repr=False)
class Muon(UpdateRule):
    """Muon (Keller Jordan, 2024) on the convolution filters, Nesterov elsewhere.

    For a filter tensor (fx, fy, Z, F), read as a (fx·fy·Z) × F matrix: M ← μM + ∇W, then
    W ← W(1 − αλ) − α·√max(1, F/(fx·fy·Z))·O, with O the ``steps``-step Newton–Schulz
    orthogonalisation of ∇W + μM (about UVᵀ for ∇W + μM = USVᵀ: one step size in every
    direction). ``normalize`` rescales each filter tensor to the norm √F before its step,
    as airbench94_muon does for convolutions followed by BatchNorm. Every other parameter
    (biases, BatchNorm, dense weights) takes ``Nesterov(fallback_mu, weight_decay)``; give
    those layers their own learning rate with ``lr_mult``. docs/engine.md has the formulas.
    """

    mu: float = 0.95
    fallback_mu: float = 0.9
    steps: int = 5
    normalize: bool = False
    weight_decay: float = 0.0
    name = "muon"
    slots = ("momentum",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _in(self.mu, "mu", 0.0, 1.0, "a momentum in [0, 1)"))
        object.__setattr__(self, "fallback_mu", _in(self.fallback_mu, "fallback_mu", 0.0, 1.0, "a momentum in [0, 1)"))
        if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral) or not 1 <= self.steps <= 100:
            raise ValueError(f"steps: expected a whole number of Newton–Schulz steps from 1 to 100, got {self.steps!r}")
        object.__setattr__(self, "steps", int(self.steps))
        if not isinstance(self.normalize, bool):
            raise ValueError(f"normalize: expected True or False, got {self.normalize!r}")
        object.__setattr__(self, "weight_decay", _decay(self.weight_decay))

    def __repr__(self) -> str:
        return (f"Muon({self.mu:g}, fallback_mu={self.fallback_mu:g}, steps={self.steps}"
                + (", normalize=True" if self.normalize else "")
                + (f", weight_decay={self.weight_decay:g}" if self.weight_decay else "") + ")")


RULES = {cls.name: cls for cls in (Vanilla, Momentum, Nesterov, Adam, AdamW, Muon)}
assert list(RULES) == names("updates"), "nn/optim.py and ids.json disagree"


def update_from_spec(d: dict) -> UpdateRule:
    if not isinstance(d, dict) or d.get("name") not in RULES:
        raise ValueError(f"update_rule: expected one of {names('updates')}, got {d!r}")
    cls = RULES[d["name"]]
    known = {f.name for f in fields(cls)}
    extra = set(d) - known - {"name"}
    if extra:
        raise ValueError(f"update_rule: {d['name']} takes no {sorted(extra)}")
    return cls(**{k: v for k, v in d.items() if k in known})

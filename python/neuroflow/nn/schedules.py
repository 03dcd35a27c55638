"""Learning-rate schedules as ready callables in NeuroFlow's ``f(iteration, alpha)`` form
(iteration counts weight updates from 1; alpha is the previous rate). Unlike a lambda,
each is plain data: a model file stores it and ``neuroflow.load`` gives it back.

    Settings(learning_rate=schedules.warmup(200, schedules.cosine(0.1, 5000)))

- ``constant(rate)``
- ``linear(start, end, steps)``: from start to end over ``steps``, then end;
- ``cosine(start, steps, end=0)``: half a cosine from start to end;
- ``triangular(peak, steps, warmup=0.2, start=0, end=0)`` (one-cycle): linear up to peak
  over the first ``warmup`` fraction of ``steps``, then linear down to end;
- ``step_decay(rate, milestones, gamma=0.1)``: rate·gammaᵏ after the k-th milestone;
- ``warmup(steps, then)``: linear from 0 to ``then``'s rate over ``steps``, then ``then``
  (counted from the start);
- ``piecewise(points)``: linear between (iteration, rate) points, constant outside.
"""

from __future__ import annotations

import bisect
import math
import numbers
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Schedule", "constant", "cosine", "linear", "piecewise", "step_decay", "triangular", "warmup", "from_spec"]


def _rate(v, what: str, zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v < 0 or (v == 0 and not zero):
        raise ValueError(f"{what}: expected a {'non-negative' if zero else 'positive'} learning rate, got {v!r}")
    return float(v)


def _steps(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"{what}: expected a positive whole number of iterations, got {v!r}")
    return int(v)


class Schedule:
    """A learning rate as a function of the iteration; data, not code."""

    kind = ""

    def rate(self, iteration: int) -> float:
        raise NotImplementedError

    def __call__(self, iteration: int, alpha: float = 1.0) -> float:
        return self.rate(iteration)

    def to_spec(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Linear between points (iteration, rate); the first rate before, the last after."""

    points: tuple
    kind = "piecewise"

    def __post_init__(self) -> None:
        pts = tuple((int(i), float(r)) for i, r in self.points)
        if not pts or any(b[0] <= a[0] for a, b in zip(pts, pts[1:])):
            raise ValueError(f"piecewise: expected points with increasing iterations, got {self.points!r}")
        for i, r in pts:
            _rate(r, f"piecewise: the rate at iteration {i}", zero=True)
        object.__setattr__(self, "points", pts)

    def rate(self, iteration: int) -> float:
        xs = [p[0] for p in self.points]
        k = bisect.bisect_right(xs, iteration)
        if k == 0:
            return self.points[0][1]
        if k == len(xs):
            return self.points[-1][1]
        (x0, y0), (x1, y1) = self.points[k - 1], self.points[k]
        return y0 + (y1 - y0) * (iteration - x0) / (x1 - x0)

    def to_spec(self) -> dict:
        return {"kind": self.kind, "points": [list(p) for p in self.points]}


@dataclass(frozen=True)
class Cosine(Schedule):
    start: float
    steps: int
    end: float = 0.0
    kind = "cosine"

    def __post_init__(self) -> None:
        _rate(self.start, "cosine: start")
        _steps(self.steps, "cosine: steps")
        _rate(self.end, "cosine: end", zero=True)

    def rate(self, iteration: int) -> float:
        t = min(max(iteration, 0), self.steps) / self.steps
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * t))

    def to_spec(self) -> dict:
        return {"kind": self.kind, "start": self.start, "steps": self.steps, "end": self.end}


@dataclass(frozen=True)
class StepDecay(Schedule):
    start: float
    milestones: tuple
    gamma: float = 0.1
    kind = "step_decay"

    def __post_init__(self) -> None:
        _rate(self.start, "step_decay: rate")
        ms = tuple(_steps(m, "step_decay: milestone") for m in self.milestones)
        if list(ms) != sorted(set(ms)):
            raise ValueError(f"step_decay: milestones must increase, got {self.milestones!r}")
        object.__setattr__(self, "milestones", ms)
        _rate(self.gamma, "step_decay: gamma")

    def rate(self, iteration: int) -> float:
        return self.start * self.gamma ** bisect.bisect_right(self.milestones, iteration - 1)

    def to_spec(self) -> dict:
        return {"kind": self.kind, "start": self.start, "milestones": list(self.milestones), "gamma": self.gamma}


@dataclass(frozen=True)
class Warmup(Schedule):
    steps: int
    then: Schedule
    kind = "warmup"

    def __post_init__(self) -> None:
        _steps(self.steps, "warmup: steps")
        if not isinstance(self.then, Schedule):
            raise TypeError(f"warmup: then must be a schedule (constant(…), cosine(…), …), got {self.then!r}")

    def rate(self, iteration: int) -> float:
        r = self.then.rate(iteration)
        return r * min(1.0, iteration / self.steps)

    def to_spec(self) -> dict:
        return {"kind": self.kind, "steps": self.steps, "then": self.then.to_spec()}


def constant(rate: float) -> Schedule:
    return Piecewise(((0, _rate(rate, "constant")),))


def linear(start: float, end: float, steps: int) -> Schedule:
    return Piecewise(((0, _rate(start, "linear: start", zero=True)), (_steps(steps, "linear: steps"), _rate(end, "linear: end", zero=True))))


def cosine(start: float, steps: int, end: float = 0.0) -> Schedule:
    return Cosine(start, steps, end)


def triangular(peak: float, steps: int, warmup: float = 0.2, start: float = 0.0, end: float = 0.0) -> Schedule:
    """One cycle: linear from ``start`` up to ``peak`` over the first ``warmup`` fraction of
    ``steps``, then linear down to ``end`` at ``steps``."""
    _steps(steps, "triangular: steps")
    if isinstance(warmup, bool) or not isinstance(warmup, numbers.Real) or not 0 <= warmup < 1:
        raise ValueError(f"triangular: warmup must be a fraction in [0, 1), got {warmup!r}")
    top = max(1, round(warmup * steps)) if warmup > 0 else 0
    points = [(0, start), (top, peak), (max(steps, top + 1), end)] if top else [(0, peak), (steps, end)]
    _rate(peak, "triangular: peak")
    return Piecewise(tuple(points))


def step_decay(rate: float, milestones: Sequence[int], gamma: float = 0.1) -> Schedule:
    return StepDecay(rate, tuple(milestones), gamma)


def warmup(steps: int, then: Schedule | float) -> Schedule:
    return Warmup(steps, then if isinstance(then, Schedule) else constant(then))


def piecewise(points: Sequence[tuple[int, float]]) -> Schedule:
    return Piecewise(tuple(points))


def from_spec(d) -> Schedule:
    """A schedule from its stored description (plain data: nothing is executed)."""
    if not isinstance(d, dict):
        raise ValueError(f"schedule: expected an object, got {d!r}")
    kind = d.get("kind")
    try:
        if kind == "piecewise":
            return Piecewise(tuple(tuple(p) for p in d["points"]))
        if kind == "cosine":
            return Cosine(d["start"], d["steps"], d.get("end", 0.0))
        if kind == "step_decay":
            return StepDecay(d["start"], tuple(d["milestones"]), d.get("gamma", 0.1))
        if kind == "warmup":
            return Warmup(d["steps"], from_spec(d["then"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"schedule {kind!r}: malformed ({e})") from None
    raise ValueError(f"schedule: unknown kind {kind!r}")


def describe(lr: object) -> str:
    return repr(lr) if isinstance(lr, Schedule) else getattr(lr, "__qualname__", "a callable")

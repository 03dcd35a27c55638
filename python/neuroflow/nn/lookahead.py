"""Lookahead (Zhang et al., 2019, "Lookahead Optimizer: k steps forward, 1 step back"), as
airbench uses it: every ``every`` steps a second, slow copy of the weights (and of the
BatchNorm statistics) moves part of the way to the trained ones, and training goes on from
the slow copy. The update rule is unchanged; the slow copy damps its noise, which is worth
most late in a short run.

The fraction moved at iteration t is ``1 - decay · (t / steps) ** power``: ``power = 0``
is the paper's constant pull ``1 - decay``; airbench's ``Lookahead.airbench()`` (decay
0.95⁵, power 3) follows the fast weights early and averages more and more as the run ends.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from .network import Network

__all__ = ["Lookahead"]


@dataclass(frozen=True)
class Lookahead:
    """Slow weights pulled toward the trained ones every ``every`` iterations (module doc).
    ``steps``: the iteration at which the pull reaches its last value (``t / steps`` is
    capped at 1); None: ``settings.iterations``."""

    every: int = 5
    decay: float = 0.5
    power: float = 0.0
    steps: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, numbers.Integral) or self.every < 1:
            raise ValueError(f"lookahead: every: expected a whole number ≥ 1, got {self.every!r}")
        for name, low, high in (("decay", 0.0, 1.0), ("power", 0.0, 1e6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not low <= v < high:
                raise ValueError(f"lookahead: {name}: expected a number in [{low:g}, {high:g}), got {v!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral)
                                       or self.steps < 1):
            raise ValueError(f"lookahead: steps: expected a whole number ≥ 1 or None, got {self.steps!r}")

    @classmethod
    def airbench(cls, steps: Optional[int] = None) -> "Lookahead":
        """airbench94's choice: every 5 steps, decay 0.95⁵, power 3."""
        return cls(5, 0.95**5, 3.0, steps)

    def last(self, iterations: int) -> int:
        """The iteration of the run's last pull."""
        return self.steps or iterations

    def pull(self, iteration: int, iterations: int) -> float:
        """The fraction of the way the slow weights move at ``iteration``."""
        t = min(iteration / self.last(iterations), 1.0)
        return 1.0 - self.decay * t**self.power

    def due(self, iteration: int, iterations: int) -> bool:
        return iteration % self.every == 0 or iteration == self.last(iterations)


class SlowWeights:
    """The slow copy of a network's parameters and state (engine order), and the pull."""

    def __init__(self, params: list[np.ndarray], state: list[np.ndarray]):
        self.params, self.state = params, state

    @classmethod
    def of(cls, net: "Network") -> "SlowWeights":
        return cls([np.array(a) for a in net._engine.get_params()], [np.array(a) for a in net._engine.get_state()])

    def pull(self, net: "Network", fraction: float) -> None:
        """Move the slow copy ``fraction`` of the way to the network's weights, then give the
        network the slow copy. Under the network's lock, as a step is: another thread's
        evaluation never sees the parameters pulled and the statistics not yet."""
        with net._lock:
            engine = net._engine
            for slow, fast in zip(self.params + self.state, list(engine.get_params()) + list(engine.get_state())):
                slow += slow.dtype.type(fraction) * (fast - slow)
            engine.set_params(self.params)
            engine.set_state(self.state)

"""Training settings: what the user writes. State (weights, momentum) belongs to the network.

Defaults differ from NeuroFlow's where NeuroFlow's would surprise: its learning rate 1.0
becomes 1e-3, its endless iterations become 100, its full-batch default becomes 32
(``batch_size=None`` is NeuroFlow's whole data set), and
batches are reshuffled each epoch (``shuffle=False`` cycles fixed batches as NeuroFlow did).
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from .augment import Augment
from .lookahead import Lookahead
from .optim import Momentum, UpdateRule
from .schedules import constant


@dataclass(frozen=True)
class Waypoint:
    """Call ``action(iteration, net)`` every ``every_n`` iterations (e.g. to save a checkpoint)."""

    every_n: int
    action: Callable

    def __post_init__(self) -> None:
        if not isinstance(self.every_n, numbers.Integral) or self.every_n < 1:
            raise ValueError(f"waypoint: every_n must be a positive int, got {self.every_n!r}")
        if not callable(self.action):
            raise TypeError(f"waypoint: action must be callable as action(iteration, net), got {self.action!r}")


@dataclass(frozen=True)
class FiniteDifferences:
    """Train on central finite differences with step Δ instead of backprop (NeuroFlow's
    ``Approximation``): two forward passes per weight, for checking and tiny nets."""

    delta: float = 1e-4

    def __post_init__(self) -> None:
        if not isinstance(self.delta, numbers.Real) or not (0 < self.delta < 1):
            raise ValueError(f"approximation: delta must be in (0, 1), got {self.delta!r}")


@dataclass(frozen=True)
class LossFuncOutput:
    """Where each iteration's loss goes: a text file (one loss a line) and/or a callback."""

    file: Optional[Union[str, os.PathLike]] = None
    action: Optional[Callable[[float], None]] = None


def _float_type(dtype) -> type:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}")
    return dt.type


@dataclass(frozen=True)
class Settings:
    """How to train.

    - ``learning_rate``: a number, a schedule (``neuroflow.schedules``: warmup, cosine,
      triangular, …, which model files keep), or any ``callable(iteration, alpha) -> rate``
      where iteration counts weight updates from 1 and alpha is the previous rate (1.0
      before the first).
    - ``update_rule``: Vanilla(), Momentum(μ), Nesterov(μ), Adam(), AdamW() (each with
      ``weight_decay``).
    - ``batch_size``: samples per weight update; None: the whole data set (NeuroFlow's
      default). ``iterations``: weight updates in all.
    - ``precision``: stop once a batch's mean loss falls to it.
    - ``reduction``: "sum" (NeuroFlow's: the article's learning rates work as published)
      or "mean".
    - ``dtype``: np.float32 or np.float64; None (the default) is float64 on the CPU
      (NeuroFlow's Double) and float32 on a GPU.
    - ``shuffle``: reshuffle each epoch; False cycles fixed batches.
    - ``seed``: seeds everything random in a run — default weights (unless the breeder has
      its own seed), shuffling, dropout, augmentation: the same script gives the same net.
      None draws a fresh seed each time.
    - ``augment``: ``Augment(translate, flip, cutout)`` applied to training batches as they
      are gathered (never to evaluation).
    - ``lookahead``: ``Lookahead(every, decay, power, steps)`` or ``Lookahead.airbench()``:
      every few iterations the weights are pulled back toward a slow copy (nn/lookahead.py).
    """

    learning_rate: Union[float, Callable[[int, float], float]] = 1e-3
    update_rule: UpdateRule = field(default_factory=lambda: Momentum(0.9))
    batch_size: Optional[int] = 32
    iterations: int = 100
    precision: float = 1e-5
    verbose: bool = True
    pretty_print: bool = False
    loss_func_output: Union[None, str, os.PathLike, Callable, LossFuncOutput] = None
    waypoint: Optional[Waypoint] = None
    approximation: Optional[FiniteDifferences] = None
    reduction: str = "sum"
    dtype: Optional[type] = None
    shuffle: bool = True
    seed: Optional[int] = 0
    augment: Optional[Augment] = None
    lookahead: Optional[Lookahead] = None

    def __post_init__(self) -> None:
        lr = self.learning_rate
        if isinstance(lr, numbers.Real) and not isinstance(lr, bool):
            if not np.isfinite(lr) or lr <= 0:
                raise ValueError(f"learning_rate: expected a positive number, got {lr!r}")
            object.__setattr__(self, "learning_rate", constant(float(lr)))
        elif not callable(lr):
            raise TypeError(f"learning_rate: expected a number, a schedule or callable(iteration, alpha) -> rate, got {lr!r}")
        if not isinstance(self.update_rule, UpdateRule):
            raise TypeError(f"update_rule: expected Vanilla(), Momentum(μ), Nesterov(μ), Adam() or AdamW(), got {self.update_rule!r}")
        for name in ("batch_size", "iterations"):
            v = getattr(self, name)
            if name == "batch_size" and v is None:
                continue  # the whole data set
            if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
                what = "a positive int or None (the whole data set)" if name == "batch_size" else "a positive int"
                raise ValueError(f"{name}: expected {what}, got {v!r}")
        if not isinstance(self.precision, numbers.Real) or self.precision < 0:
            raise ValueError(f"precision: expected a number ≥ 0, got {self.precision!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f'reduction: expected "sum" or "mean", got {self.reduction!r}')
        if self.dtype is not None:
            object.__setattr__(self, "dtype", _float_type(self.dtype))
        if self.waypoint is not None and not isinstance(self.waypoint, Waypoint):
            raise TypeError(f"waypoint: expected Waypoint(every_n, action), got {self.waypoint!r}")
        if self.approximation is not None and not isinstance(self.approximation, FiniteDifferences):
            raise TypeError(f"approximation: expected FiniteDifferences(Δ), got {self.approximation!r}")
        out = self.loss_func_output
        if out is not None and not isinstance(out, LossFuncOutput):
            if callable(out):
                out = LossFuncOutput(action=out)
            elif isinstance(out, (str, os.PathLike)):
                out = LossFuncOutput(file=out)
            else:
                raise TypeError(f"loss_func_output: expected a file path, a callable or LossFuncOutput, got {out!r}")
            object.__setattr__(self, "loss_func_output", out)
        if self.augment is not None and not isinstance(self.augment, Augment):
            raise TypeError(f"augment: expected Augment(translate=…, flip=…, cutout=…), got {self.augment!r}")
        if self.lookahead is not None and not isinstance(self.lookahead, Lookahead):
            raise TypeError(f"lookahead: expected Lookahead(every, decay, power, steps) or None, got {self.lookahead!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral)
                                      or not 0 <= self.seed < 2**64):
            raise ValueError(f"seed: expected an int in [0, 2⁶⁴) or None, got {self.seed!r}")

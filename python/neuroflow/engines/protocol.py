"""The engine contract as code (docs/engine.md): what the Rust CPU engine, the GPU engine and
the NumPy reference engine all implement. ``Network`` talks to engines through these methods
only; ``tests/conformance/`` checks every engine against them."""

from __future__ import annotations

from typing import Literal, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

Mode = Literal["eval", "train"]


@runtime_checkable
class Engine(Protocol):
    @property
    def spec(self) -> str:
        """The resolved spec JSON the engine was built from."""
        ...

    def param_info(self) -> list[tuple[str, tuple[int, ...]]]:
        """(full name, shape) of every trained tensor, in layout order."""
        ...

    def state_info(self) -> list[tuple[str, tuple[int, ...]]]:
        """(full name, shape) of every non-trained tensor (running statistics)."""
        ...

    def get_params(self) -> list[np.ndarray]: ...

    def set_params(self, params: Sequence[np.ndarray]) -> None: ...

    def get_state(self) -> list[np.ndarray]: ...

    def set_state(self, state: Sequence[np.ndarray]) -> None: ...

    def optimizer_slots(self) -> list[str]:
        """The update rule's slots per parameter, e.g. ["momentum"] or ["m", "v"]."""
        ...

    def get_optimizer_state(self) -> list[np.ndarray]:
        """Per parameter, its slots in order: [p0.slot0, p0.slot1, p1.slot0, …]."""
        ...

    def set_optimizer_state(self, state: Sequence[np.ndarray]) -> None: ...

    def get_step(self) -> int:
        """Updates done so far (Adam's t; the dropout masks' step)."""
        ...

    def set_step(self, step: int) -> None: ...

    def forward(self, x: np.ndarray, layer: Optional[int] = None, mode: Mode = "eval") -> np.ndarray:
        """Activated output of layer ``layer`` (its pre-order uid; default the last): (N, *dim_out)."""
        ...

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Eval-mode output of the last layer; softmax probabilities for softmax losses."""
        ...

    def loss(self, x: np.ndarray, t: np.ndarray, mode: Mode = "eval") -> float:
        """The reduced loss; train mode changes no state."""
        ...

    def gradients(self, x: np.ndarray, t: np.ndarray) -> list[np.ndarray]:
        """Train-mode gradients of the reduced loss, shaped like the params; changes no state."""
        ...

    def fd_gradients(self, x: np.ndarray, t: np.ndarray, delta: float) -> list[np.ndarray]:
        """The same by central finite differences of the train-mode loss."""
        ...

    def train_step(self, x: np.ndarray, t: np.ndarray, lr: float, fd_delta: Optional[float] = None) -> float:
        """One update; returns the batch's mean per-sample loss before it."""
        ...

    def backward(self, x: np.ndarray, t: np.ndarray, grads: np.ndarray, batch: Optional[int] = None, offset: int = 0,
                 sync=None) -> float:
        """A data-parallel shard (positions offset.. of a global batch of `batch`): flat
        gradients of the loss reduced over `batch` into `grads`, running statistics moved;
        returns the sum of the shard's per-sample losses (docs/engine.md)."""
        ...

    def apply_update(self, grads: np.ndarray, lr: float) -> None:
        """One update with the flat reduced gradients (as backward writes them)."""
        ...

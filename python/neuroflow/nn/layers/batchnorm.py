"""Batch normalisation per channel (the last dimension), then the activator."""

from __future__ import annotations

from ..activators import Activator, Linear, check_activator
from .base import Layer, real


class BatchNorm(Layer):
    """``y = act(scale·(x − μ)/√(σ² + eps) + shift)`` per channel. Train mode uses the
    batch's statistics and moves the running ones (``running ← (1 − momentum)·running +
    momentum·batch``, PyTorch's convention, unbiased variance); eval mode uses the running
    ones. ``scale=False`` / ``shift=False`` fix that parameter at 1 / 0 (not trained).
    ``Convolution(..., activator=Linear)`` then ``BatchNorm(activator=ReLU)`` is conv → BN → ReLU."""

    kind = "batchnorm"
    prefix = "bn"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, activator: Activator = Linear, *, scale: bool = True,
                 shift: bool = True, name: str | None = None, lr_mult=None, wd_mult=None) -> None:
        label = name or "BatchNorm"
        self.momentum = real(momentum, "momentum", label, 0.0, 1.0, closed_hi=True)
        self.eps = real(eps, "eps", label, 0.0, float("inf"))
        if self.eps == 0:
            raise ValueError(f"{label}: eps must be positive, got {eps!r}")
        self.activator = check_activator(activator, f"{label}: activator")
        for what, v in (("scale", scale), ("shift", shift)):
            if not isinstance(v, bool):
                raise TypeError(f"{label}: {what} must be True or False, got {v!r}")
        self.scale, self.shift = scale, shift
        super().__init__(name=name, lr_mult=lr_mult, wd_mult=wd_mult)

    def param_names(self) -> list[str]:
        return [n for n, on in (("scale", self.scale), ("shift", self.shift)) if on]

    def config(self) -> dict:
        return {"momentum": self.momentum, "eps": self.eps, "scale": self.scale, "shift": self.shift,
                "activator": self.activator.to_spec()}

    @classmethod
    def from_spec(cls, d: dict) -> "BatchNorm":
        return cls(d["momentum"], d["eps"], Activator.from_spec(d["activator"]), scale=d.get("scale", True),
                   shift=d.get("shift", True), name=d["name"], lr_mult=d.get("lr_mult"), wd_mult=d.get("wd_mult"))

    def describe(self, spec: dict) -> str:
        fixed = [n for n, on in (("scale", self.scale), ("shift", self.shift)) if not on]
        note = f", no {' or '.join(fixed)}" if fixed else ""
        return f"BatchNorm ({self.activator!r}{note}) ~> {'*'.join(map(str, spec['dim_out']))}"

    def _args(self) -> str:
        parts = [f"momentum={self.momentum:g}", f"eps={self.eps:g}"]
        if self.activator != Linear:
            parts.append(f"activator={self.activator!r}")
        parts += [f"{n}=False" for n, on in (("scale", self.scale), ("shift", self.shift)) if not on]
        return ", ".join(parts)

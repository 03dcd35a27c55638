"""Update rules, for one parameter w with reduced gradient g, learning rate a = α·lr_mult,
weight decay lam = λ·wd_mult and t = updates done counting this one. `slots` are the
parameter's optimizer arrays (updated in place); so is w."""

from __future__ import annotations

import numpy as np

SLOTS = {"vanilla": [], "momentum": ["momentum"], "nesterov": ["momentum"], "adam": ["m", "v"], "adamw": ["m", "v"]}


def apply(rule: dict, w: np.ndarray, g: np.ndarray, slots: list, a: float, lam: float, t: int) -> None:
    name = rule["name"]
    if name == "vanilla":  # w −= a(g + λw)
        w -= a * (g + lam * w)
    elif name == "momentum":  # M = μM − a(g + λw); w += M
        (M,) = slots
        M[...] = rule["mu"] * M - a * (g + lam * w)
        w += M
    elif name == "nesterov":  # M′ = μM − a(g + λw); w += −μM + (1 + μ)M′; M = M′
        (M,) = slots
        new = rule["mu"] * M - a * (g + lam * w)
        w += -rule["mu"] * M + (1 + rule["mu"]) * new
        M[...] = new
    elif name in ("adam", "adamw"):
        if name == "adamw":  # decoupled: w −= aλw, then Adam on g itself
            w -= a * lam * w
            g2 = g
        else:
            g2 = g + lam * w
        m, v = slots
        b1, b2 = rule["beta1"], rule["beta2"]
        m[...] = b1 * m + (1 - b1) * g2
        v[...] = b2 * v + (1 - b2) * g2 * g2
        w -= a * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + rule["eps"])
    else:
        raise ValueError(f"unknown update rule {name!r}")

"""Update rules, for one parameter w with reduced gradient g, learning rate a = α·lr_mult,
weight decay lam = λ·wd_mult and t = updates done counting this one. `slots` are the
parameter's optimizer arrays (updated in place); so is w."""

from __future__ import annotations

import numpy as np

SLOTS = {"vanilla": [], "momentum": ["momentum"], "nesterov": ["momentum"], "adam": ["m", "v"], "adamw": ["m", "v"],
         "muon": ["momentum"]}
NS = (3.4445, -4.7750, 2.0315)  # Muon's Newton–Schulz quintic


def orthogonalize(g: np.ndarray, steps: int) -> np.ndarray:
    """Muon's iteration on a matrix: X = g/(‖g‖ + 1e-7) on its wide side, then
    X ← aX + (bA + cA²)X with A = XXᵀ, `steps` times."""
    tall = g.shape[0] > g.shape[1]
    x = (g.T if tall else g) / (np.linalg.norm(g) + 1e-7)
    a, b, c = NS
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return x.T if tall else x


def apply(rule: dict, w: np.ndarray, g: np.ndarray, slots: list, a: float, lam: float, t: int) -> None:
    name = rule["name"]
    if name == "muon" and w.ndim == 4:  # filters (fx, fy, Z, F) as a (fx·fy·Z) × F matrix
        (M,) = slots
        k, f = w.size // w.shape[3], w.shape[3]
        M[...] = rule["mu"] * M + g
        u = (g + rule["mu"] * M).reshape(k, f)
        if rule["normalize"] and np.linalg.norm(w):
            w *= np.sqrt(f) / np.linalg.norm(w)
        o = orthogonalize(u, rule["steps"]).reshape(w.shape)
        w[...] = w * (1 - a * lam) - a * np.sqrt(max(1.0, f / k)) * o
        return
    if name == "muon":  # every other parameter: Nesterov
        name, rule = "nesterov", {**rule, "mu": rule["fallback_mu"]}
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

"""residual: y = act(x + inner(x)); ∂x = ∂L/∂(x + inner) + ∂inner. The inner layers run
through the engine's own walk (`ps.run`, `ps.back`), which also collects their gradients."""

from __future__ import annotations


def forward(layer, x, params, state, ps):
    return x + ps.run(layer.inner, x), {}


def backward(layer, g, params, cache, ps):
    return g + ps.back(layer.inner, g), []

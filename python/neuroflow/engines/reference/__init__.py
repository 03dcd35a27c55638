"""ReferenceEngine: docs/engine.md written out in plain NumPy, in float64.

The yardstick the other engines are tested against (tests/conformance/): every formula is
the page's, written the direct way — convolution as a sum of shifted slices, pooling as a
walk over the window's taps, every backward by hand. Speed is no goal; clarity is. An f32
spec is computed in f64 too; the arrays handed out are in the spec's dtype.

One module per layer kind, each with ``forward(layer, x, params, state, ps) -> (out, cache)``
(``out`` before the activator for the kinds that have one) and ``backward(layer, g, params,
cache, ps) -> (∂x, [∂param, …])`` (``g`` already multiplied by f′). The engine (engine.py)
walks the layout, applies activators, the loss (losses.py) and the update rules (updates.py).
"""

from .engine import ReferenceEngine

__all__ = ["ReferenceEngine"]

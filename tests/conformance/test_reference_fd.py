"""The reference engine's hand-written backward against central differences computed here,
through its public methods only (set_params, loss in train mode), on every case.

δ = 1e-6 in float64: truncation δ²·|L'''|/6 is ~1e-12 relative, rounding ~ε·|L|/δ ≈ 1e-9
absolute; measured agreement is 1e-10 to 1e-7, so rtol 1e-6 (+ the rounding allowance) has
margin and a wrong formula (errors of 1e-3 and up) cannot pass. Large tensors are checked
at 40 elements drawn per tensor (seeded), small ones in full.

The one non-smooth case (max-pool ties: the loss has a kink where two window elements are
equal, and the tie rule picks one of the one-sided slopes) is checked by hand in
test_reference_engine.py instead.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from cases import CASES
from checks import Run, fd_atol, param_names
from registry import ENGINES

SMOOTH = [name for name, case in CASES.items() if case.smooth]
DELTA = 1e-6
PER_TENSOR = 40


@pytest.mark.parametrize("case_name", SMOOTH)
def test_reference_backward_matches_central_differences(case_name):
    kind = ENGINES["reference"]
    run = Run(kind, CASES[case_name])
    e = run.load()
    x, t = run.batch(0)
    grads = e.gradients(x, t)
    base = e.get_params()
    loss = abs(e.loss(x, t, "train"))
    rng = np.random.default_rng(zlib.crc32(case_name.encode()))
    for k, (name, g) in enumerate(zip(param_names(run.spec), grads)):
        n = g.size
        picks = np.arange(n) if n <= PER_TENSOR else rng.choice(n, PER_TENSOR, replace=False)
        fd = np.empty(len(picks))
        for j, i in enumerate(picks):
            values = []
            for sign in (1.0, -1.0):
                params = [p.copy() for p in base]
                params[k].reshape(-1)[i] += sign * DELTA
                e.set_params(params)
                values.append(e.loss(x, t, "train"))
            fd[j] = (values[0] - values[1]) / (2 * DELTA)
        e.set_params(base)
        got = g.reshape(-1)[picks]
        err = np.abs(got - fd).max()
        allowed = 1e-6 * np.abs(g).max() + fd_atol(kind, loss, DELTA)
        assert err <= allowed, f"{name}: backward vs central differences: max |error| {err:.3g} > {allowed:.3g} (max |g| {np.abs(g).max():.3g})"

"""Contract points that need no case table, on every engine: the dropout masks bit for bit
(against an independent pure-Python murmur3 fmix32), and errors — never aborts — on
malformed specs and inputs."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from cases import CASES, dropout, loss, resolve, update
from checks import Run, casts, unchanged
from registry import ENGINES

M32 = 0xFFFFFFFF


def fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    return h ^ (h >> 16)


def keep(seed: int, step: int, uid: int, i: int, rate: float) -> bool:
    key = fmix32(fmix32(fmix32(fmix32(seed & M32) ^ (seed >> 32)) ^ (step & M32)) ^ uid)
    return fmix32(key ^ fmix32(i)) >= math.floor(rate * 2**32)


def test_fmix32_known_values():
    """murmur3's fmix32 (published test values)."""
    assert fmix32(0) == 0 and fmix32(1) == 0x514E28B7


@pytest.mark.parametrize("engine_name", list(ENGINES))
@pytest.mark.parametrize("seed,step", [(0, 0), (1, 1), (2**40 + 12345, 1000), (2**64 - 1, 7)])
def test_dropout_masks(engine_name, seed, step):
    """Two dropout layers (uids 0 and 1) on a flat input: each layer's kept elements are
    exactly those of the doc's hash, over a batch (index i = n·D + j)."""
    kind = ENGINES[engine_name]
    rates, n, d = (0.3, 0.6), 5, 37
    spec = resolve({"version": 2, "dtype": kind.dtype, "input": [d], "layers": [dropout("p0", rates[0]), dropout("p1", rates[1])],
                    "loss": loss("squared_error"), "update": update(), "reduction": "sum", "seed": seed})
    e = kind.make(json.dumps(spec))
    e.set_step(step)
    rng = np.random.default_rng(seed % 2**32)
    x = (rng.uniform(0.5, 1.0, (n, d)) * rng.choice([-1.0, 1.0], (n, d))).astype(kind.np_dtype)
    y0 = e.forward(x, 0, "train").astype(np.float64)
    y1 = e.forward(x, 1, "train").astype(np.float64)
    for uid, (got, base) in enumerate([(y0, x.astype(np.float64)), (y1, y0)]):
        want = np.array([[keep(seed, step, uid, k * d + j, rates[uid]) for j in range(d)] for k in range(n)])
        seen = base != 0  # layer 1 sees only what layer 0 kept
        kept = got != 0
        assert np.array_equal(kept[seen], want[seen]), f"layer {uid}: {np.sum(kept[seen] != want[seen])} of {seen.sum()} elements kept or dropped wrongly"
        assert 0 < want[seen].sum() < seen.sum()
        rtol = 1e-6 if kind.dtype == "f32" else 1e-14
        np.testing.assert_allclose(got[want & seen], base[want & seen] / (1 - rates[uid]), rtol=rtol,
                                   err_msg=f"layer {uid}: kept values not scaled by 1/(1 − rate)")
    assert np.array_equal(e.forward(x, 1, "eval"), x), "eval mode: dropout is the identity"


@pytest.fixture(params=list(ENGINES))
def small(request) -> Run:
    """A small engine with parameters, state and a non-square input (4, 5, 2)."""
    run = Run(ENGINES[request.param], CASES["bn_scale_only"])
    run.load()
    return run


def _other(kind):
    return np.float64 if kind.dtype == "f32" else np.float32


BAD_CALLS = {  # name -> (expected error, call(engine, x, t, kind))
    "x_short_sample": (ValueError, lambda e, x, t, k: e.forward(np.ascontiguousarray(x[:, :-1]))),
    "x_transposed": (ValueError, lambda e, x, t, k: e.forward(np.ascontiguousarray(x.transpose(0, 2, 1, 3)))),
    "x_flat": (ValueError, lambda e, x, t, k: e.forward(x.reshape(len(x), -1))),
    "x_empty_batch": (ValueError, lambda e, x, t, k: e.forward(x[:0])),
    "x_fortran_order": (ValueError, lambda e, x, t, k: e.forward(np.asfortranarray(x))),
    "x_other_float": (TypeError, lambda e, x, t, k: e.forward(x.astype(_other(k)))),
    "x_int32": (TypeError, lambda e, x, t, k: e.forward(x.astype(np.int32))),
    "x_list": (TypeError, lambda e, x, t, k: e.forward(x.tolist())),
    "t_short_row": (ValueError, lambda e, x, t, k: e.loss(x, np.ascontiguousarray(t[:, :-1]))),
    "t_too_few_rows": (ValueError, lambda e, x, t, k: e.gradients(x, t[:-1])),
    "t_fortran_order": (ValueError, lambda e, x, t, k: e.loss(x, np.asfortranarray(t))),
    "t_other_float": (TypeError, lambda e, x, t, k: e.train_step(x, t.astype(_other(k)), 0.1)),
    "mode": (ValueError, lambda e, x, t, k: e.forward(x, mode="test")),
    "layer_out_of_range": ((ValueError, IndexError), lambda e, x, t, k: e.forward(x, layer=99)),
    "lr_nan": ((ValueError, OverflowError), lambda e, x, t, k: e.train_step(x, t, float("nan"))),
    "fd_delta_zero": (ValueError, lambda e, x, t, k: e.fd_gradients(x, t, 0.0)),
}


@pytest.mark.parametrize("bad", list(BAD_CALLS))
def test_input_errors(small, bad):
    """A malformed call is refused with a ValueError or TypeError and changes nothing.
    (A transposed (N, Y, X, Z) batch has the right size but the wrong layout: an engine that
    checks only the size would silently read it wrongly.)"""
    e, kind = small.engine, small.kind
    x, t = small.batch(0)
    before = small.snapshot()
    error, call = BAD_CALLS[bad]
    with pytest.raises(error):
        call(e, x, t, kind)
    unchanged(small.snapshot(), before, "a refused call changed the engine")
    assert np.isfinite(e.forward(x)).all(), "the engine still works after refusing"


def test_state_errors(small):
    e, kind = small.engine, small.kind
    params = e.get_params()
    with pytest.raises(ValueError):
        e.set_params(params[:-1])
    with pytest.raises(ValueError):
        e.set_params([params[0][..., :-1]] + params[1:])
    with pytest.raises(TypeError):
        e.set_params([p.astype(np.int64) for p in params])
    with pytest.raises(ValueError):
        e.set_state(e.get_state()[:1])
    with pytest.raises(ValueError):
        e.set_optimizer_state(e.get_optimizer_state() + casts(kind, [np.ones(1)]))
    with pytest.raises((ValueError, OverflowError, TypeError)):
        e.set_step(-1)
    assert all(np.array_equal(a, b) for a, b in zip(e.get_params(), params))


@pytest.mark.parametrize("engine_name", list(ENGINES))
def test_spec_errors(engine_name):
    kind = ENGINES[engine_name]
    run = Run(kind, CASES["bn_scale_only"])
    good = run.spec

    def refused(edit):
        spec = copy.deepcopy(good)
        edit(spec)
        with pytest.raises(ValueError):
            kind.make(json.dumps(spec))

    refused(lambda s: s.update(version=1))
    refused(lambda s: s["layers"][0].update(kind="deconv"))
    refused(lambda s: s["layers"][0].update(dim_out=[5, 5, 7]))  # does not match its weight
    refused(lambda s: s["layers"][0]["params"][0].update(shape=[3, 3, 3, 5]))
    refused(lambda s: s["layers"][1].update(momentum=1.5))
    refused(lambda s: s["layers"][0]["activator"].update(name="swish"))
    refused(lambda s: s["loss"].update(name="hinge"))
    refused(lambda s: s["update"].update(name="rmsprop"))
    refused(lambda s: s.update(reduction="max"))
    with pytest.raises((ValueError, TypeError)):
        kind.make("{not json")

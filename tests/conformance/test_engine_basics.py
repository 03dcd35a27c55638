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
from checks import Run, casts
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
    run = Run(ENGINES[request.param], CASES["bn_conv_relu"])
    run.load()
    return run


def test_input_errors(small):
    e, kind = small.engine, small.kind
    x, t = small.batch(0)
    before = small.snapshot()
    other = np.float64 if kind.dtype == "f32" else np.float32
    with pytest.raises(ValueError):
        e.forward(x[:, :-1])
    with pytest.raises(ValueError):
        e.forward(x.reshape(len(x), -1))  # the right number of values, but not (N, *input)
    with pytest.raises(ValueError):
        e.forward(np.asfortranarray(x))
    with pytest.raises(ValueError):
        e.loss(x, np.asfortranarray(t))
    with pytest.raises(TypeError):
        e.forward(x.astype(other))
    with pytest.raises(TypeError):
        e.forward(x.astype(np.int32))
    with pytest.raises(TypeError):
        e.forward(x.tolist())
    with pytest.raises(ValueError):
        e.loss(x, t[:, :-1])
    with pytest.raises(ValueError):
        e.gradients(x, t[:-1])
    with pytest.raises(TypeError):
        e.train_step(x, t.astype(other), 0.1)
    with pytest.raises(ValueError):
        e.forward(x, mode="test")
    with pytest.raises((ValueError, IndexError)):
        e.forward(x, layer=99)
    with pytest.raises((ValueError, OverflowError)):
        e.train_step(x, t, float("nan"))
    after = small.snapshot()
    for a, b in zip(after["params"] + after["state"] + after["slots"], before["params"] + before["state"] + before["slots"]):
        assert np.array_equal(a, b), "a refused call changed the engine"
    assert after["step"] == before["step"]
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
    run = Run(kind, CASES["bn_conv_relu"])
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

"""Data-parallel steps (docs/engine.md, "Data-parallel steps") on every engine and case:
``backward`` of the shards of a batch, their gradients summed, then ``apply_update`` on
each shard's engine, against the float64 reference engine's single ``train_step`` on the
whole batch: the summed loss, the parameters, optimizer state, step and (with synchronised
BatchNorm) running statistics. Also each shard's own gradients and running statistics
against the reference's on that shard, a one-shard ``backward`` against ``gradients``, and
the refusals.

Synchronised BatchNorm needs every shard at each of its all-reduces at once. In one
process the shards run one after another instead, with a *replayed* sum: each round runs
every shard with the sums found so far, and the contributions of the first sum not yet
known give that sum; after as many rounds as there are sums, every shard has seen exactly
what an all-reduce over processes would have given it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cases import CASES
from checks import Run, close, close_lists, param_entries, param_names, reference, state_names
from registry import ENGINES

PAIRS = [(e, c) for e in ENGINES for c in CASES]
every_pair = pytest.mark.parametrize("engine_name,case_name", PAIRS, ids=[f"{e}-{c}" for e, c in PAIRS])


@pytest.fixture
def run(engine_name, case_name) -> Run:
    return Run(ENGINES[engine_name], CASES[case_name])


def shards_of(n: int, k: int) -> list[tuple[int, int]]:
    """(offset, size) of k contiguous shards of n samples, as neuroflow.distributed splits."""
    bounds = [n * i // k for i in range(k + 1)]
    return [(bounds[i], bounds[i + 1] - bounds[i]) for i in range(k) if bounds[i + 1] > bounds[i]]


def flat_size(run: Run) -> int:
    return sum(int(np.prod(s)) for _, s in run.engine.param_info())


def has_batchnorm(run: Run) -> bool:
    return "batchnorm" in run.case.kinds()


def supports_sync(run: Run) -> bool:
    return run.kind.name != "gpu"


def sharded_backward(run: Run, x, t, shards, sync: bool):
    """Each shard's engine (loaded with the case's data) after its backward; their flat
    gradients and loss sums. `sync`: BatchNorm statistics over all shards (replayed sums)."""
    known: list[np.ndarray] = []
    while True:
        engines, grads, losses, contributions = [], [], [], []
        for offset, size in shards:
            e = run.load(run.fresh())
            g = np.full(flat_size(run), np.nan, dtype=run.kind.np_dtype)
            mine: list[np.ndarray] = []

            def summed(v, mine=mine):
                assert isinstance(v, np.ndarray) and v.dtype == np.float64 and v.ndim == 1, "sync: expected a 1-D float64 array"
                i = len(mine)
                mine.append(v.copy())
                if i < len(known):
                    assert known[i].shape == v.shape, f"sum {i}: {v.shape} values, the other shards gave {known[i].shape}"
                    v[:] = known[i]

            loss = e.backward(x[offset:offset + size], t[offset:offset + size], g, batch=len(x), offset=offset,
                              sync=summed if sync else None)
            assert isinstance(loss, float), f"backward: expected a float, got {type(loss).__name__}"
            engines.append(e)
            grads.append(g)
            losses.append(loss)
            contributions.append(mine)
        calls = {len(c) for c in contributions}
        assert len(calls) == 1, f"shards made different numbers of sums: {calls}"
        if not sync or len(known) == calls.pop():
            return engines, grads, losses
        i = len(known)
        known.append(np.sum([c[i] for c in contributions], axis=0))


def summed(grads: list[np.ndarray], dtype) -> np.ndarray:
    return np.sum([g.astype(np.float64) for g in grads], axis=0).astype(dtype)


def unflatten(flat: np.ndarray, shapes) -> list[np.ndarray]:
    out, at = [], 0
    for s in shapes:
        size = int(np.prod(s))
        out.append(flat[at:at + size].reshape(s))
        at += size
    return out


@every_pair
def test_one_shard_is_gradients(run):
    """backward on the whole batch: the flat gradients of `gradients` (zero for a frozen
    parameter, lr_mult 0: a training pass computes none), the summed loss, the running
    statistics of a step; parameters, optimizer state and step unchanged."""
    ref, e, kind = reference(run.case.name), run.load(), run.kind
    x, t = run.batch(0)
    g = np.full(flat_size(run), np.nan, dtype=kind.np_dtype)
    before = run.snapshot()
    loss = e.backward(x, t, g)
    shapes = [s for _, s in e.param_info()]
    want = [np.zeros_like(w) if p["lr_mult"] == 0 else w for w, (_, p) in zip(ref["gradients"], param_entries(run.spec))]
    close_lists(unflatten(g, shapes), want, kind.rtol, "backward gradient", param_names(run.spec))
    close(np.array(loss / len(x)), ref["steps"][0]["loss"], kind.rtol, "backward: loss sum / n")
    after = run.snapshot()
    close_lists(after["state"], ref["steps"][0]["state"], kind.rtol, "backward: running statistics", state_names(run.spec))
    for a, b in zip(after["params"] + after["slots"], before["params"] + before["slots"]):
        assert np.array_equal(a, b), "backward changed the parameters or the optimizer state"
    assert after["step"] == before["step"], "backward changed the step"


@every_pair
def test_sharded_step_is_one_step(run):
    """Shards' backward, gradients summed, apply_update: the reference's train_step on the
    whole batch (with BatchNorm: synchronised statistics; the GPU engine refuses sync)."""
    ref, kind = reference(run.case.name), run.kind
    x, t = run.batch(0)
    if len(x) < 2:
        pytest.fail(f"{run.case.name}: a batch of {len(x)} cannot be sharded")
    sync = has_batchnorm(run)
    if sync and not supports_sync(run):
        with pytest.raises(ValueError, match="synchronised BatchNorm"):
            run.load().backward(x, t, np.zeros(flat_size(run), kind.np_dtype), sync=lambda v: None)
        return
    want = ref["steps"][0]
    pn, sn = param_names(run.spec), state_names(run.spec)
    for k in sorted({2, min(3, len(x))}):
        shards = shards_of(len(x), k)
        engines, grads, losses = sharded_backward(run, x, t, shards, sync)
        total = summed(grads, kind.np_dtype)
        close(np.array(sum(losses) / len(x)), want["loss"], kind.rtol, f"{k} shards: summed loss / n")
        for i, e in enumerate(engines):
            e.apply_update(total, run.case.lr)
            got = run.snapshot(e)
            assert got["step"] == want["step"], f"{k} shards, shard {i}: step {got['step']}, expected {want['step']}"
            close_lists(got["params"], want["params"], kind.rtol, f"{k} shards, shard {i}: param", pn, dtype=kind.np_dtype)
            on = [f"{p}.{s}" for p in pn for s in e.optimizer_slots()]
            close_lists(got["slots"], want["slots"], kind.rtol, f"{k} shards, shard {i}: optimizer slot", on, dtype=kind.np_dtype)
            if sync or not has_batchnorm(run):
                close_lists(got["state"], want["state"], kind.rtol, f"{k} shards, shard {i}: state", sn, dtype=kind.np_dtype)


@every_pair
def test_shard_against_reference_shard(run):
    """Without synchronisation each shard is a batch of its own for BatchNorm, yet reduced
    over the global batch and with the dropout masks of its positions in it: the same as
    the reference's backward on that shard."""
    kind = run.kind
    x, t = run.batch(1)
    shards = shards_of(len(x), 2)
    ref_run = Run(ENGINES["reference"], run.case)
    ref_engines, ref_grads, ref_losses = sharded_backward(ref_run, x.astype(np.float64) if x.dtype != np.uint8 else x,
                                                          t.astype(np.float64), shards, False)
    engines, grads, losses = sharded_backward(run, x, t, shards, False)
    for i in range(len(shards)):
        # the flat gradient as one array, relative to its largest value: a one-sample shard
        # normalised by BatchNorm leaves its scale and shift gradients as tiny cancellations
        close(grads[i], ref_grads[i], kind.rtol, f"shard {i}: flat gradient")
        close(np.array(losses[i]), ref_losses[i], kind.rtol, f"shard {i}: loss sum")
        close_lists(engines[i].get_state(), ref_engines[i].get_state(), kind.rtol, f"shard {i}: running statistics",
                    state_names(run.spec))


def test_dropout_masks_follow_the_global_position():
    """A dropout shard at offset o draws the masks of positions o.. of the whole batch: its
    train-mode outputs are rows o.. of the whole batch's (the reference engine's masks)."""
    case = CASES["dropout_flat_last"] if "dropout_flat_last" in CASES else next(c for c in CASES.values() if "dropout" in c.kinds())
    run = Run(ENGINES["reference"], case)
    e = run.load()
    x, t = run.batch(0)
    g_all = np.zeros(flat_size(run))
    e.backward(x, t, g_all)
    parts = []
    for offset, size in shards_of(len(x), len(x)):
        g = np.zeros(flat_size(run))
        run.load(e).backward(x[offset:offset + size], t[offset:offset + size], g, batch=len(x), offset=offset)
        parts.append(g)
    close(np.sum(parts, axis=0), g_all, 1e-12, "one-sample shards summed vs the whole batch")
    g_wrong = np.zeros(flat_size(run))
    for offset, size in shards_of(len(x), len(x)):
        g = np.zeros(flat_size(run))
        run.load(e).backward(x[offset:offset + size], t[offset:offset + size], g, batch=len(x), offset=0)
        g_wrong += g
    assert not np.allclose(g_wrong, g_all, rtol=1e-6), "the masks ignore the offset (the test case's dropout has no effect?)"


@pytest.mark.parametrize("engine_name", list(ENGINES))
def test_refusals(engine_name):
    """Bad flat buffers, shards outside the batch, an offset without a batch, and non-finite
    gradients or rates are refused with errors that name them, changing nothing."""
    run = Run(ENGINES[engine_name], CASES["conv_pad_bias"])
    e, kind = run.load(), run.kind
    x, t = run.batch(0)
    size = flat_size(run)
    before = run.snapshot()
    wrong_dtype = np.float64 if kind.np_dtype == np.float32 else np.float32
    for bad in (np.zeros(size + 1, kind.np_dtype), np.zeros((size, 1), kind.np_dtype), np.zeros(size, wrong_dtype)):
        with pytest.raises((ValueError, TypeError), match="grads"):
            e.backward(x, t, bad)
        with pytest.raises((ValueError, TypeError), match="grads"):
            e.apply_update(bad, 0.1)
    g = np.zeros(size, kind.np_dtype)
    with pytest.raises(ValueError, match="batch|offset"):
        e.backward(x, t, g, batch=len(x) - 1)
    with pytest.raises(ValueError, match="batch|offset"):
        e.backward(x, t, g, batch=len(x) + 1, offset=2)
    with pytest.raises(ValueError, match="batch|offset"):
        e.backward(x, t, g, offset=1)
    bad = np.zeros(size, kind.np_dtype)
    bad[size // 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        e.apply_update(bad, 0.1)
    with pytest.raises(ValueError):
        e.apply_update(g, float("nan"))
    after = run.snapshot()
    for a, b in zip(after["params"] + after["state"] + after["slots"], before["params"] + before["state"] + before["slots"]):
        assert np.array_equal(a, b), "a refused call changed the engine"
    assert after["step"] == before["step"]


def test_sync_errors_surface():
    """An exception raised by the sync callable (an all-reduce that timed out, say) comes
    out of backward as that exception, on the reference and CPU engines."""
    case = next(c for c in CASES.values() if "batchnorm" in c.kinds())
    for name in ("reference", "cpu-f64"):
        run = Run(ENGINES[name], case)
        e = run.load()
        x, t = run.batch(0)

        def broken(v):
            raise TimeoutError("all-reduce: no answer from rank 1")

        with pytest.raises(TimeoutError, match="rank 1"):
            e.backward(x, t, np.zeros(flat_size(run), run.kind.np_dtype), sync=broken)


def test_spec_json_unchanged_by_shards():
    """backward takes the shard's place per call: the engine's spec does not change."""
    run = Run(ENGINES["cpu-f64"], CASES["conv_pad_bias"])
    e = run.load()
    x, t = run.batch(0)
    spec = e.spec
    e.backward(x[:1], t[:1], np.zeros(flat_size(run)), batch=len(x), offset=1)
    assert json.loads(e.spec) == json.loads(spec)

"""The engine contract (docs/engine.md) on every engine and every case: description and fresh
state, forward in both modes at every layer, gradients, finite differences, training steps,
train/eval differences, and the state round trip. Each engine is compared with the float64
NumPy reference engine (neuroflow.engines.reference), which test_reference_fd.py checks
against finite differences on its own."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cases import CASES
from checks import (
    SLOTS,
    Run,
    close,
    close_lists,
    default_uid,
    equal_lists,
    fd_atol,
    mode_dependent,
    num_params,
    param_entries,
    param_names,
    reference,
    reference_fd,
    state_entries,
    state_names,
    uids,
    unchanged,
)
from registry import ENGINES

PAIRS = [(e, c) for e in ENGINES for c in CASES]
every_pair = pytest.mark.parametrize("engine_name,case_name", PAIRS, ids=[f"{e}-{c}" for e, c in PAIRS])
# train_step(fd_delta=…) costs a finite-difference pass: run on the small cases that still
# cover BatchNorm (running statistics), dropout, residual and every update rule.
FD_STEP_CASES = ["bn_flat", "dropout_flat_last", "residual_flat_last", "upd_vanilla_wd", "upd_momentum_wd",
                 "upd_nesterov_wd", "upd_adam_wd", "upd_adamw_dropout"]
FD_STEP_PAIRS = [(e, c) for e in ENGINES for c in FD_STEP_CASES]


@pytest.fixture
def run(engine_name, case_name) -> Run:
    return Run(ENGINES[engine_name], CASES[case_name])


@every_pair
def test_description_and_fresh_state(run):
    e, spec, dt = run.engine, run.spec, run.kind.np_dtype
    assert json.loads(e.spec) == spec, "spec: not the JSON the engine was built from"
    params, state = param_entries(spec), state_entries(spec)
    assert [(n, tuple(s)) for n, s in e.param_info()] == [(n, tuple(p["shape"])) for n, p in params]
    assert [(n, tuple(s)) for n, s in e.state_info()] == [(n, tuple(p["shape"])) for n, p in state]
    assert e.optimizer_slots() == SLOTS[run.case.update["name"]]
    # a fresh engine: parameters zero, state at its init, optimizer state zero, step 0
    got = e.get_params()
    assert [g.shape for g in got] == [tuple(p["shape"]) for _, p in params]
    for (name, _), g in zip(params, got):
        assert g.dtype == dt and not g.any(), f"{name}: a fresh engine's parameter is not all zero ({g.dtype})"
    got = e.get_state()
    assert [g.shape for g in got] == [tuple(s["shape"]) for _, s in state]
    for (name, s), g in zip(state, got):
        assert g.dtype == dt and np.all(g == s["init"]), f"{name}: a fresh engine's state is not {s['init']}"
    slots = e.get_optimizer_state()
    assert len(slots) == len(params) * len(e.optimizer_slots())
    assert all(s.dtype == dt and not s.any() for s in slots), "a fresh engine's optimizer state is not all zero"
    assert e.get_step() == 0


@every_pair
def test_forward(run):
    """Every layer's output (pre-order uid) in both modes, the default layer, predict and loss."""
    ref, e, rtol, dt = reference(run.case.name), run.load(), run.kind.rtol, run.kind.np_dtype
    x, t = run.batch(0)
    for mode in ("eval", "train"):
        for uid in uids(run.spec):
            close(e.forward(x, uid, mode), ref["forward"][mode, uid], rtol, f"forward layer {uid} ({mode})", dtype=dt)
        got = e.loss(x, t, mode)
        assert isinstance(got, float), f"loss: expected a float, got {type(got).__name__}"
        close(np.array(got), ref["loss"][mode], rtol, f"loss ({mode})")
    close(e.forward(x), ref["forward"]["eval", default_uid(run.spec)], rtol, "forward() (default: the last layer, eval)", dtype=dt)
    close(e.predict(x), ref["predict"], rtol, "predict", dtype=dt)


@every_pair
def test_gradients(run):
    """Train-mode gradients of the reduced loss against the reference's."""
    ref, e = reference(run.case.name), run.load()
    x, t = run.batch(0)
    close_lists(e.gradients(x, t), ref["gradients"], run.kind.rtol, "gradient", param_names(run.spec), dtype=run.kind.np_dtype)


@every_pair
def test_finite_differences(run):
    """fd_gradients against the reference's at the same δ (same function, so any difference
    is rounding: rtol plus the rounding allowance of a central difference); on float64
    engines also the backward against the engine's own central differences (smooth cases:
    at a tie of a max-pool the loss has a kink and the two one-sided slopes differ)."""
    e, kind, names = run.load(), run.kind, param_names(run.spec)
    x, t = run.batch(0)
    delta = kind.fd_delta
    want, loss = reference_fd(run.case.name, delta)
    if kind.name == "reference":
        fd = want  # the same call on the same engine class and data: computed (and checked) once, in reference_fd
    else:
        before = run.snapshot()
        fd = e.fd_gradients(x, t, delta)
        close_lists(fd, want, kind.rtol, f"fd_gradients(δ={delta})", names, atol=fd_atol(kind, loss, delta), dtype=kind.np_dtype)
        unchanged(run.snapshot(), before, "fd_gradients changed the engine")
    if kind.dtype == "f64" and run.case.smooth:
        # truncation: δ²·|L'''|/6 ≈ 1e-12 relative; 1e-6 leaves room for sharp activators (square, gelu)
        close_lists(e.gradients(x, t), fd, 1e-6, "gradient vs central differences", names, atol=fd_atol(kind, loss, delta))


@every_pair
def test_train_steps(run):
    """Three training steps (a new batch each) from the case's state: the returned loss,
    params, optimizer state, running statistics and step after each."""
    ref, e, rtol, dt = reference(run.case.name), run.load(), run.kind.rtol, run.kind.np_dtype
    pn, sn = param_names(run.spec), state_names(run.spec)
    on = [f"{p}.{s}" for p in pn for s in e.optimizer_slots()]
    for i, want in enumerate(ref["steps"]):
        x, t = run.batch(i)
        loss = e.train_step(x, t, run.case.lr)
        assert isinstance(loss, float), f"train_step: expected a float, got {type(loss).__name__}"
        close(np.array(loss), want["loss"], rtol, f"step {i + 1}: loss")
        got = run.snapshot()
        assert got["step"] == want["step"] == run.data.step + i + 1, f"step {i + 1}: step count {got['step']}"
        close_lists(got["params"], want["params"], rtol, f"step {i + 1}: param", pn, dtype=dt)
        close_lists(got["slots"], want["slots"], rtol, f"step {i + 1}: optimizer slot", on, dtype=dt)
        close_lists(got["state"], want["state"], rtol, f"step {i + 1}: state", sn, dtype=dt)


@pytest.mark.parametrize("engine_name,case_name", FD_STEP_PAIRS, ids=[f"{e}-{c}" for e, c in FD_STEP_PAIRS])
def test_train_step_fd(run):
    """train_step(fd_delta=δ) updates with the central differences, the rest as usual."""
    kind, e, delta = run.kind, run.load(), run.kind.fd_delta
    ref_run = Run(ENGINES["reference"], run.case)
    ref = ref_run.load()
    want_loss = ref.train_step(*ref_run.batch(0), run.case.lr, fd_delta=delta)
    close(np.array(e.train_step(*run.batch(0), run.case.lr, fd_delta=delta)), want_loss, kind.rtol, "loss")
    got, want = run.snapshot(), run.snapshot(ref)
    # A gradient off by fd_atol moves a parameter by lr·lr_mult·fd_atol (nesterov: (1 + μ)
    # times that; Adam: ≈ (1 − β1)/((1 − β1ᵗ)·√v̂) times, below 2 for these slots): 50·lr·fd_atol.
    _, loss = reference_fd(run.case.name, delta)
    atol = 50.0 * run.case.lr * fd_atol(kind, loss, delta)
    close_lists(got["params"], want["params"], kind.rtol, "param", param_names(run.spec), atol=atol)
    close_lists(got["state"], want["state"], kind.rtol, "state", state_names(run.spec))
    assert got["step"] == want["step"]


@every_pair
def test_train_eval(run):
    """Train and eval mode differ exactly at and after a BatchNorm or a dropout with rate > 0,
    and nowhere else (bit-identical there); train-mode calls change no state."""
    e = run.load()
    x, t = run.batch(0)
    before = run.snapshot()
    for uid, dep in zip(uids(run.spec), mode_dependent(run.spec)):
        tr, ev = e.forward(x, uid, "train"), e.forward(x, uid, "eval")
        if dep:
            d = np.abs(tr.astype(np.float64) - ev).max()
            assert d > 1e-3 * np.abs(ev).max(), f"layer {uid}: train and eval outputs agree (max |Δ| {d:.3g}) after a BatchNorm or dropout"
        else:
            assert np.array_equal(tr, ev), f"layer {uid}: train and eval outputs differ (max |Δ| {np.abs(tr - ev).max():.3g}) with no BatchNorm or dropout before it"
    e.loss(x, t, "train")
    e.gradients(x, t)
    unchanged(run.snapshot(), before, "train-mode forward, loss or gradients changed the engine")


@every_pair
def test_state_round_trip(run):
    """Everything one engine holds, set into a fresh one, gives identical outputs and an
    identical next training step; getters hand out copies."""
    a = run.load()
    x, t = run.batch(0)
    a.train_step(x, t, run.case.lr)  # state that no longer equals the data's
    snap = run.snapshot(a)
    for arr in snap["params"] + snap["state"] + snap["slots"]:
        arr += 1.0  # mutating what a getter returned must not reach the engine
    snap = run.snapshot(a)
    b = run.fresh()
    b.set_params(snap["params"])
    b.set_state(snap["state"])
    b.set_optimizer_state(snap["slots"])
    b.set_step(snap["step"])
    equal_lists([v for v in run.snapshot(b).values() if isinstance(v, list) for v in v],
                [v for v in snap.values() if isinstance(v, list) for v in v], "round trip")
    x1, t1 = run.batch(1)
    for mode in ("eval", "train"):
        equal_lists([b.forward(x1, None, mode)], [a.forward(x1, None, mode)], f"forward ({mode}) after the round trip")
    la, lb = a.train_step(x1, t1, run.case.lr), b.train_step(x1, t1, run.case.lr)
    assert la == lb, f"next train_step: loss {lb!r} vs {la!r}"
    sa, sb = run.snapshot(a), run.snapshot(b)
    assert sa["step"] == sb["step"]
    for key in ("params", "state", "slots"):
        equal_lists(sb[key], sa[key], f"next train_step: {key}")


def test_fd_step_cases_are_small():
    """The FD training-step cases stay cheap (each costs 2·P loss evaluations per engine)."""
    assert all(num_params(CASES[c]) <= 100 for c in FD_STEP_CASES)

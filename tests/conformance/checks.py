"""Shared machinery of the conformance tests: an engine set up on a case (`Run`), the float64
reference results every engine is compared with (computed once per case and cached), and
the comparisons."""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from cases import CASES, Case, Data, leaves, make_data, resolved
from registry import ENGINES, EngineKind

SLOTS = {"vanilla": [], "momentum": ["momentum"], "nesterov": ["momentum"], "adam": ["m", "v"], "adamw": ["m", "v"], "muon": ["momentum"]}
FD_K = 32  # rounding allowance of a central difference: FD_K·ε·max(|L|, 1)/δ


def cast(kind: EngineKind, a: np.ndarray) -> np.ndarray:
    """An input in the engine's dtype (uint8 inputs stay uint8)."""
    return a if a.dtype == np.uint8 else np.ascontiguousarray(a, dtype=kind.np_dtype)


def casts(kind: EngineKind, arrays) -> list:
    return [cast(kind, a) for a in arrays]


class Run:
    """One engine kind built on one case's resolved spec, with the case's data."""

    def __init__(self, kind: EngineKind, case: Case):
        self.kind, self.case = kind, case
        self.spec = resolved(case, kind.dtype)
        self.spec_json = json.dumps(self.spec)
        self.engine = kind.make(self.spec_json)
        self.data: Data = make_data(case, self.spec, SLOTS[case.update["name"]])

    def fresh(self):
        return self.kind.make(self.spec_json)

    def load(self, engine=None, data: Data | None = None):
        """Set the data's params, state, optimizer state and step into the engine."""
        e, d = engine or self.engine, data or self.data
        e.set_params(casts(self.kind, d.params))
        e.set_state(casts(self.kind, d.state))
        e.set_optimizer_state(casts(self.kind, d.slots))
        e.set_step(d.step)
        return e

    def batch(self, i: int = 0) -> tuple[np.ndarray, np.ndarray]:
        x, t = self.data.batches[i]
        return cast(self.kind, x), cast(self.kind, t)

    def snapshot(self, engine=None) -> dict:
        e = engine or self.engine
        return {"params": e.get_params(), "state": e.get_state(), "slots": e.get_optimizer_state(), "step": e.get_step()}


def uids(spec: dict) -> list[int]:
    return list(range(sum(1 for _ in leaves(spec["layers"]))))


def mode_dependent(spec: dict) -> list[bool]:
    """Per uid: whether the layer's output depends on the mode — a BatchNorm or a dropout
    with rate > 0 at or before it (through residuals) — in pre-order."""
    flags: list[bool] = []

    def walk(layers, dep: bool) -> bool:
        for d in layers:
            i = len(flags)
            flags.append(False)
            own = d["kind"] == "batchnorm" or (d["kind"] == "dropout" and d["rate"] > 0)
            if d["kind"] == "residual":
                own = walk(d["layers"], dep)
            dep = dep or own
            flags[i] = dep
        return dep

    walk(spec["layers"], False)
    return flags


@functools.lru_cache(maxsize=None)
def reference(case_name: str) -> dict:
    """The float64 reference engine's results on a case, computed once per session."""
    run = Run(ENGINES["reference"], CASES[case_name])
    e = run.load()
    x, t = run.batch(0)
    out = {"run": run, "forward": {}, "loss": {}}
    for mode in ("eval", "train"):
        for uid in uids(run.spec):
            out["forward"][mode, uid] = e.forward(x, uid, mode)
        out["loss"][mode] = e.loss(x, t, mode)
    out["predict"] = e.predict(x)
    out["gradients"] = e.gradients(x, t)
    out["steps"] = []
    for i in range(len(run.data.batches)):
        xi, ti = run.batch(i)
        loss = e.train_step(xi, ti, run.case.lr)
        out["steps"].append(dict(run.snapshot(e), loss=loss))
    return out


@functools.lru_cache(maxsize=None)
def reference_fd(case_name: str, delta: float) -> tuple[list, float]:
    """The reference's fd_gradients with step `delta` on batch 0, and |train loss|."""
    run = Run(ENGINES["reference"], CASES[case_name])
    e = run.load()
    x, t = run.batch(0)
    before = run.snapshot(e)
    fd = e.fd_gradients(x, t, delta)
    unchanged(run.snapshot(e), before, "the reference's fd_gradients changed the engine")
    return fd, abs(e.loss(x, t, "train"))


def unchanged(after: dict, before: dict, what: str) -> None:
    """Two snapshots (Run.snapshot) bit-identical."""
    equal_lists(after["params"] + after["state"] + after["slots"], before["params"] + before["state"] + before["slots"], what)
    assert after["step"] == before["step"], f"{what}: step {before['step']} -> {after['step']}"


def close(got, want, rtol: float, what: str, *, atol: float = 0.0, dtype=None) -> None:
    """|got − want| ≤ rtol·max|want| + atol elementwise, got finite, same shape (and dtype)."""
    assert isinstance(got, np.ndarray), f"{what}: expected a numpy array, got {type(got).__name__}"
    if dtype is not None:
        assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {np.dtype(dtype).name}"
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    bad = ~np.isfinite(got)
    assert not bad.any(), f"{what}: {bad.sum()} of {got.size} elements not finite, first at {np.argwhere(bad)[0].tolist()}"
    if got.size == 0:
        return
    diff = np.abs(got.astype(np.float64) - want)
    scale = np.abs(want).max()
    i = np.unravel_index(diff.argmax(), diff.shape)
    assert diff[i] <= rtol * scale + atol, (
        f"{what}: max |error| {diff[i]:.3g} at {tuple(int(k) for k in i)} ({got[i]!r} vs {want[i]!r}) exceeds "
        f"{rtol:g}·max|ref| ({scale:.3g}){f' + {atol:.3g}' if atol else ''}"
    )


def close_lists(got, want, rtol: float, what: str, names=None, **kw) -> None:
    assert isinstance(got, list), f"{what}: expected a list, got {type(got).__name__}"
    assert len(got) == len(want), f"{what}: {len(got)} arrays, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        close(g, w, rtol, f"{what} {names[i] if names else i}", **kw)


def equal_lists(got, want, what: str, names=None) -> None:
    """Bit-identical lists of arrays."""
    assert len(got) == len(want), f"{what}: {len(got)} arrays, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape and g.dtype == w.dtype, f"{what} {names[i] if names else i}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
        assert np.array_equal(g, w), f"{what} {names[i] if names else i}: differs, max |Δ| {np.abs(g.astype(float) - w).max():.3g}"


def fd_atol(kind: EngineKind, loss: float, delta: float) -> float:
    """What rounding may add to a central difference: the loss carries a few ε·|L| of
    error, and the difference divides by 2δ. FD_K = 32 covers sums of a few hundred terms."""
    return FD_K * kind.eps * max(loss, 1.0) / delta


def param_entries(spec: dict) -> list[tuple[str, dict]]:
    """(full name, resolved entry) of every parameter in layout order (the leaf layers')."""
    return [(f"{full}.{p['name']}", p) for full, d in leaves(spec["layers"]) if d["kind"] != "residual" for p in d["params"]]


def state_entries(spec: dict) -> list[tuple[str, dict]]:
    return [(f"{full}.{s['name']}", s) for full, d in leaves(spec["layers"]) if d["kind"] != "residual" for s in d["state"]]


def param_names(spec: dict) -> list[str]:
    return [name for name, _ in param_entries(spec)]


def state_names(spec: dict) -> list[str]:
    return [name for name, _ in state_entries(spec)]


def default_uid(spec: dict) -> int:
    """The uid of the last top-level layer (forward's default): it comes after every layer
    before it and their inner layers."""
    return sum(1 for _ in leaves(spec["layers"][:-1]))


def num_params(case: Case) -> int:
    spec = resolved(case, "f64")
    return sum(math.prod(p["shape"]) for _, d in leaves(spec["layers"]) if d["kind"] != "residual" for p in d["params"])

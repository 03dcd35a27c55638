"""The suite checks itself: every name in ids.json has a case, every engine runs every case,
the cases stay small, and the hand resolver the cases fall back on agrees with the real one."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path

import pytest

import test_conformance
from cases import ALGORITHMS, CASES, core_resolve, hand_resolve, leaves, resolved
from checks import param_entries
from registry import ENGINES

IDS = json.loads((Path(__file__).resolve().parents[2] / "python" / "neuroflow" / "ids.json").read_text())
LAYERS = [(case, d) for case in CASES.values() for _, d in leaves(case.layers)]


def _activators():
    return {d["activator"]["name"] for _, d in LAYERS if "activator" in d}


def test_every_layer_kind_has_a_case():
    assert set(IDS["layers"]) <= {d["kind"] for _, d in LAYERS}


def test_every_activator_has_a_case():
    assert set(IDS["activators"]) <= _activators()
    # and each is also the activator of the output layer the loss reads
    assert set(IDS["activators"]) <= {case.layers[-1].get("activator", {}).get("name") for case in CASES.values()}


def test_every_loss_update_and_reduction_has_a_case():
    assert set(IDS["losses"]) <= {c.loss["name"] for c in CASES.values()}
    assert set(IDS["updates"]) <= {c.update["name"] for c in CASES.values()}
    assert set(IDS["reductions"]) <= {c.reduction for c in CASES.values()}
    assert set(IDS["updates"]) <= {c.update["name"] for c in CASES.values() if c.update["weight_decay"] > 0}
    assert {"softmax_log_entropy", "softmax_log_mult_entropy"} <= {c.loss["name"] for c in CASES.values() if c.loss["label_smoothing"] > 0}


def test_every_conv_algorithm_has_a_case():
    used = {d["algorithm"] for _, d in LAYERS if d["kind"] == "conv"}
    assert set(ALGORITHMS) | {"auto"} <= used
    assert set(ALGORITHMS) | {"auto"} == set(IDS["conv_algorithms"])
    phases, f42 = False, False
    for case, d in LAYERS:
        if d["kind"] == "conv" and d["algorithm"] == "winograd":
            assert d["field"] == [3, 3] and d["stride"] == [1, 1] and d["filters"] >= 8, case.name
        if d["kind"] == "conv" and d["algorithm"] == "winograd4":
            # F(4×4, 3×3) or F(4×4, 2×2), stride 1; or a strided layer over its phases (field 2 or 3 strides)
            q = [f // s for f, s in zip(d["field"], d["stride"])]
            assert d["filters"] >= 8 and q[0] == q[1] in (2, 3) and all(f % s == 0 for f, s in zip(d["field"], d["stride"])), case.name
            phases |= d["stride"] != [1, 1]
            f42 |= d["field"] == [2, 2]
        if d["kind"] == "conv" and d["algorithm"] == "direct":
            assert d["filters"] <= 4, case.name
    assert phases and f42, "winograd4 over a strided layer's phases, and on a 2×2 layer"


def test_layer_configurations_are_covered():
    convs = [d for _, d in LAYERS if d["kind"] == "conv"]
    assert {True, False} <= {d["bias"] for d in convs}
    assert {True, False} <= {d["bias"] for _, d in LAYERS if d["kind"] == "dense"}
    assert any(d["stride"] != [1, 1] for d in convs) and any(d["padding"] != [0, 0] for d in convs)
    assert any(d["field"][0] != d["field"][1] for d in convs)
    assert any(d["filters"] > 4 for d in convs)
    bns = [(c, d) for c, d in LAYERS if d["kind"] == "batchnorm"]
    assert {(True, True), (True, False), (False, True), (False, False)} <= {(d["scale"], d["shift"]) for _, d in bns}
    assert any(len(c.input) == 1 for c, _ in bns), "a BatchNorm on flat input"
    pools = [d for _, d in LAYERS if d["kind"] in ("maxpool", "avgpool")]
    for kind in ("maxpool", "avgpool"):
        assert any(d["kind"] == kind and d["padding"] != [0, 0] for d in pools), f"{kind} with padding"
        assert any(d["kind"] == kind and d["stride"][0] < d["field"][0] for d in pools), f"{kind} with overlapping windows"
    rates = {d["rate"] for _, d in LAYERS if d["kind"] == "dropout"}
    assert 0.0 in rates and len(rates) >= 3
    nested = [d for _, d in LAYERS if d["kind"] == "residual" and any(i["kind"] == "residual" for i in d["layers"])]
    assert nested and any({"conv", "batchnorm"} <= {i["kind"] for _, i in leaves(d["layers"])} for d in nested)
    assert any(c.uint8 for c in CASES.values()) and any(not c.smooth for c in CASES.values()), "uint8 input and max-pool ties"
    mults = [(p["lr_mult"], p["wd_mult"]) for c in CASES.values() for _, p in param_entries(resolved(c, "f64"))]
    assert any(lr != 1.0 for lr, _ in mults) and any(wd != 1.0 for _, wd in mults)


def test_cases_are_small():
    """GPU runs on a software adapter: every activation of every case a few thousand elements."""
    for case in CASES.values():
        spec = resolved(case, "f64")
        biggest = max(math.prod(d["dim_out"]) for _, d in leaves(spec["layers"]))
        assert case.n * max(biggest, math.prod(case.input)) <= 4096, case.name


def test_every_engine_runs_every_case():
    """Each conformance test is parametrized over all engines × all cases (FD training steps:
    all engines × their cases); nothing is skipped but a missing GPU adapter (registry.py)."""
    assert set(ENGINES) == {"reference", "cpu-f64", "cpu-f32", "gpu"}
    full = {(e, c) for e in ENGINES for c in CASES}
    tests = [f for name, f in inspect.getmembers(test_conformance, inspect.isfunction) if name.startswith("test_")]
    assert len(tests) >= 7
    for f in tests:
        marks = [m for m in getattr(f, "pytestmark", []) if m.name == "parametrize"]
        if f.__name__ == "test_train_step_fd":
            assert {e for e, _ in marks[0].args[1]} == set(ENGINES)
            continue
        if not marks:
            assert "run" not in inspect.signature(f).parameters, f.__name__
            continue
        assert set(map(tuple, marks[0].args[1])) == full, f"{f.__name__}: not parametrized over every engine and case"


def test_hand_resolver_matches_core_resolve():
    """The engine core's resolver (the one place shapes are computed) against an oracle
    written independently from docs/engine.md's table, on every case."""
    real = core_resolve()
    assert real is not None, "neuroflow._core.resolve is missing from this build"
    for case in CASES.values():
        spec = case.spec("f64")
        got, want = json.loads(real(json.dumps(spec))), hand_resolve(spec)
        for (name, g), (_, w) in zip(leaves(got["layers"]), leaves(want["layers"])):
            for key in ("dim_in", "dim_out", "params", "state"):
                assert g.get(key) == w[key], f"{case.name}: layer {name} {key}: resolve {g.get(key)} vs hand {w[key]}"

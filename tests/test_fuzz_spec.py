"""Fuzzing the layout/spec parser: ``neuroflow._core.resolve`` and ``resolve_layer`` (rust/layout.rs,
docs/engine.md) fed random and near-valid JSON specs.

Every call must either return a resolved spec that is consistent (each layer's dim_in the
previous layer's dim_out, parameter shapes as docs/engine.md's table says, and resolving
it again changes nothing) or raise ValueError with a message -- never RuntimeError
("neuroflow internal error"), never a Rust panic (PanicException), never a crash, never a
hang. The calls run in a worker process, each with a time limit, so that a hang or a crash
is reported as a failure with its input instead of stopping the test run.

CI runs a small, fixed set of examples (tests/fuzzing.py); the long run::

    NEUROFLOW_FUZZ_EXAMPLES=20000 python -m pytest tests/test_fuzz_readers.py tests/test_fuzz_spec.py -q -x -s
"""

from __future__ import annotations

import json
import math
import select
import subprocess
import sys
import textwrap
from typing import Any, Iterator

import pytest
from hypothesis import event, given, strategies as st

from fuzzing import fuzz
from hostile import ENV

# A call taking longer than this is a hang (resolve takes microseconds).
TIME_LIMIT = 10.0

_WORKER = textwrap.dedent("""
    import json, sys
    from neuroflow import _core
    for line in sys.stdin:
        call = json.loads(line)
        try:
            if call["fn"] == "resolve":
                out = {"ok": _core.resolve(call["spec"])}
            else:
                out = {"ok": _core.resolve_layer(call["layer"], call["dim_in"], call["what"])}
        except BaseException as e:  # a PanicException is a BaseException
            out = {"error": type(e).__name__, "message": str(e)}
        sys.stdout.write(json.dumps(out) + "\\n")
        sys.stdout.flush()
""")


class Worker:
    """A child interpreter that resolves specs, one JSON line in, one out."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True, env=ENV)
        return self.proc

    def call(self, limit: float = TIME_LIMIT, **call: Any) -> dict:
        proc = self.start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(call) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], limit)
        if not ready:
            self.stop()
            pytest.fail(f"{call['fn']} did not return within {limit} s (a hang) for {json.dumps(call)[:2000]}")
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            err = proc.stderr.read() if proc.stderr else ""
            self.proc = None
            pytest.fail(f"the worker died (exit {code}) on {call['fn']} of {json.dumps(call)[:2000]}: {err[-2000:]}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.stop()


# ---------------------------------------------------------------- strategies

# Mostly small values, sometimes the edges: zero, huge, negative, of another type.
# Strides stay under 2**24: see test_a_huge_conv_stride_does_not_hang below.
SMALL = st.integers(0, 9)
EDGE_INT = st.sampled_from([0, 1, 2**31, 2**32, 2**63 - 1, 2**64 - 1, 2**64, -1, 10**30])
EDGE_STRIDE = st.sampled_from([0, 1, 2**16, 2**24, -1, 2**64])
WRONG = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=5), st.just([]), st.just({}))


def num(ints: st.SearchStrategy = SMALL, edge: st.SearchStrategy = EDGE_INT) -> st.SearchStrategy:
    return st.one_of(ints, ints, ints, ints, ints, ints, edge, WRONG)


def pair(edge: st.SearchStrategy = EDGE_INT) -> st.SearchStrategy:
    return st.one_of(st.lists(num(SMALL, edge), min_size=2, max_size=2), st.lists(num(SMALL, edge), max_size=3), WRONG)


REAL = st.one_of(st.floats(0, 1), st.sampled_from([0.0, 1.0, 1e-5, -0.5, 1e308, 1.5]), WRONG)
ACTIVATOR = st.fixed_dictionaries(
    {"name": st.sampled_from(["relu", "leaky_relu", "sigmoid", "tanh", "linear", "softplus", "square", "gelu", "eval", ""])},
    optional={"alpha": REAL, "bias": REAL})
NAMES = st.sampled_from(["c0", "c1", "d", "bn", "mp", "r", "x", "", "a.b", "c0"])


def layers(depth: int = 2) -> st.SearchStrategy:
    kinds = [
        st.fixed_dictionaries({"kind": st.just("conv"), "name": NAMES, "padding": pair(), "field": pair(), "stride": pair(EDGE_STRIDE),
                               "filters": num(), "activator": ACTIVATOR},
                              optional={"bias": st.booleans(), "algorithm": st.sampled_from(["auto", "im2col", "winograd", "direct", "fft"])}),
        st.fixed_dictionaries({"kind": st.just("dense"), "name": NAMES, "neurons": num(), "activator": ACTIVATOR},
                              optional={"bias": st.booleans(), "lr_mult": st.dictionaries(st.sampled_from(["weight", "bias", "x"]), REAL, max_size=2)}),
        st.fixed_dictionaries({"kind": st.just("batchnorm"), "name": NAMES, "momentum": REAL, "eps": REAL},
                              optional={"scale": st.booleans(), "shift": st.booleans(), "activator": ACTIVATOR}),
        st.fixed_dictionaries({"kind": st.sampled_from(["maxpool", "avgpool"]), "name": NAMES, "field": pair(), "stride": pair(EDGE_STRIDE)},
                              optional={"padding": pair()}),
        st.fixed_dictionaries({"kind": st.just("global_avg_pool"), "name": NAMES}),
        st.fixed_dictionaries({"kind": st.just("dropout"), "name": NAMES, "rate": REAL}),
        st.fixed_dictionaries({"kind": st.sampled_from(["lstm", "", "Conv"]), "name": NAMES}),
    ]
    if depth > 0:
        kinds.append(st.fixed_dictionaries({"kind": st.just("residual"), "name": NAMES,
                                            "layers": st.lists(st.deferred(lambda: layers(depth - 1)), max_size=3)},
                                           optional={"activator": ACTIVATOR}))
    return st.one_of(*kinds)


SPECS = st.fixed_dictionaries(
    {"dtype": st.sampled_from(["f32", "f64", "f16", ""]),
     "input": st.one_of(st.lists(st.integers(1, 9), min_size=3, max_size=3), st.lists(st.integers(1, 40), min_size=1, max_size=1),
                        st.lists(num(), max_size=4)),
     "layers": st.lists(layers(), min_size=0, max_size=4),
     "loss": st.fixed_dictionaries({"name": st.sampled_from(["squared_error", "softmax_log_entropy", "softmax_log_mult_entropy",
                                                             "abs_cubic_error", "hinge"])},
                                   optional={"n": REAL, "label_smoothing": REAL}),
     "update": st.fixed_dictionaries({"name": st.sampled_from(["vanilla", "momentum", "nesterov", "adam", "adamw", "sgd"])},
                                     optional={"mu": REAL, "beta1": REAL, "beta2": REAL, "eps": REAL, "weight_decay": REAL}),
     "reduction": st.sampled_from(["sum", "mean", "max"])},
    optional={"version": st.sampled_from([2, 2, 1, 3]), "seed": num(), "input_norm": st.fixed_dictionaries(
        {"mean": st.lists(REAL, max_size=3), "std": st.lists(REAL, max_size=3)})})


def _valid_layer(i: int, depth: int = 1) -> st.SearchStrategy:
    """Layers that resolve on most inputs (stride 1, small fields, padding ≤ field / 2)."""
    act = st.fixed_dictionaries({"name": st.sampled_from(["relu", "tanh", "linear", "gelu"])})
    win = st.integers(1, 2).flatmap(lambda f: st.fixed_dictionaries(
        {"field": st.just([f, f]), "stride": st.sampled_from([[1, 1], [f, f]]), "padding": st.sampled_from([[0, 0], [f // 2, f // 2]])}))
    kinds = [
        win.map(lambda w: {**w, "stride": [1, 1]}).flatmap(lambda w: st.fixed_dictionaries(
            {"kind": st.just("conv"), "filters": st.integers(1, 3), "activator": act, "bias": st.booleans()}).map(lambda d: {**d, **w})),
        st.fixed_dictionaries({"kind": st.just("batchnorm"), "momentum": st.just(0.1), "eps": st.just(1e-5), "scale": st.booleans()}),
        win.flatmap(lambda w: st.sampled_from(["maxpool", "avgpool"]).map(lambda k: {"kind": k, **w})),
        st.fixed_dictionaries({"kind": st.just("dropout"), "rate": st.sampled_from([0.0, 0.5])}),
        st.fixed_dictionaries({"kind": st.just("dense"), "neurons": st.integers(1, 4), "activator": act, "bias": st.booleans()}),
        st.just({"kind": "global_avg_pool"}),
    ]
    if depth:
        kinds.append(st.lists(st.integers(0, 2).flatmap(lambda j: _valid_layer(j, 0)), min_size=1, max_size=2).map(
            lambda ls: {"kind": "residual", "layers": [{**l, "name": f"i{j}"} for j, l in enumerate(ls)]}))
    return st.one_of(*kinds).map(lambda d: {**d, "name": f"l{i}"})


VALID_SPECS = st.integers(1, 4).flatmap(lambda n: st.fixed_dictionaries({
    "dtype": st.sampled_from(["f32", "f64"]), "input": st.lists(st.integers(1, 6), min_size=3, max_size=3),
    "layers": st.tuples(*[_valid_layer(i) for i in range(n)]).map(list),
    "loss": st.just({"name": "squared_error"}), "update": st.just({"name": "momentum", "mu": 0.9}), "reduction": st.just("mean")}))


def _edit(data: st.DataObject, doc: Any) -> Any:
    """One value anywhere in ``doc`` replaced by an edge value or one of another type."""
    paths: list[tuple] = []

    def go(v: Any, p: tuple) -> None:
        paths.append(p)
        for k, c in (v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else []):
            go(c, p + (k,))

    go(doc, ())
    path = data.draw(st.sampled_from(paths[1:]), label="edited")
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = data.draw(st.one_of(EDGE_INT, WRONG, SMALL), label="value")
    return doc


# ---------------------------------------------------------------- checks


def _walk(layers: list) -> Iterator[dict]:
    for l in layers:
        yield l
        if l["kind"] == "residual":
            yield from _walk(l["layers"])


def check_resolved_layer(l: dict, dim_in: list[int]) -> None:
    """One resolved layer against docs/engine.md's table."""
    assert l["dim_in"] == dim_in, (l["name"], l["dim_in"], dim_in)
    shapes = [p["shape"] for p in l["params"]]
    kind, out = l["kind"], l["dim_out"]
    if kind == "conv":
        (X, Y, Z), (fx, fy), (sx, sy), (px, py) = dim_in, l["field"], l["stride"], l["padding"]
        assert (X + 2 * px - fx) % sx == 0 and (Y + 2 * py - fy) % sy == 0
        assert out == [(X + 2 * px - fx) // sx + 1, (Y + 2 * py - fy) // sy + 1, l["filters"]]
        assert shapes == [[fx, fy, Z, l["filters"]]] + ([[l["filters"]]] if l.get("bias") else [])
    elif kind == "dense":
        assert out == [l["neurons"]] and shapes == [[math.prod(dim_in), l["neurons"]]] + ([[l["neurons"]]] if l.get("bias") else [])
    elif kind == "batchnorm":
        assert out == dim_in and [s["name"] for s in l["state"]] == ["running_mean", "running_var"]
        assert shapes == [[dim_in[-1]]] * (int(l["scale"]) + int(l["shift"]))
    elif kind in ("maxpool", "avgpool"):
        (X, Y, Z), (fx, fy), (sx, sy), (px, py) = dim_in, l["field"], l["stride"], l["padding"]
        assert out == [(X + 2 * px - fx) // sx + 1, (Y + 2 * py - fy) // sy + 1, Z] and shapes == []
    elif kind == "global_avg_pool":
        assert out == [dim_in[2]] and shapes == []
    elif kind == "dropout":
        assert out == dim_in and 0 <= l["rate"] < 1
    elif kind == "residual":
        assert out == dim_in and shapes == []
        d = dim_in
        for inner in l["layers"]:
            check_resolved_layer(inner, d)
            d = inner["dim_out"]
        assert d == dim_in
    else:
        pytest.fail(f"unknown kind {kind!r} resolved")
    assert all(v >= 1 for v in out) and all(v >= 1 for s in shapes for v in s)


def outcome(result: dict, fn: str) -> str:
    if "error" in result:
        assert result["error"] == "ValueError", f"{fn} raised {result['error']}: {result['message'][:1000]}"
        assert result["message"] and "internal error" not in result["message"], result["message"]
        return "refused"
    return "resolved"


@fuzz()
@given(data=st.data(), near=st.booleans())
def test_resolve_random_specs(worker: Worker, data: st.DataObject, near: bool) -> None:
    """Specs drawn from a grammar of every field's plausible and hostile values, or valid
    specs with one or two values edited."""
    if near:
        spec = data.draw(VALID_SPECS, label="spec")
        for _ in range(data.draw(st.integers(0, 2), label="edits")):
            spec = _edit(data, spec)
    else:
        spec = data.draw(SPECS, label="spec")
    result = worker.call(fn="resolve", spec=json.dumps(spec))
    event(outcome(result, "resolve"))
    if "ok" not in result:
        return
    out = json.loads(result["ok"])
    d = out["input"]
    names = [l["name"] for l in out["layers"]]
    assert len(set(names)) == len(names) and all(n and "." not in n for n in names)
    for l in out["layers"]:
        check_resolved_layer(l, d)
        d = l["dim_out"]
    # resolving a resolved spec changes nothing
    again = worker.call(fn="resolve", spec=result["ok"])
    assert json.loads(again["ok"]) == out


@fuzz()
@given(layer=layers(), dim_in=st.one_of(st.lists(st.integers(1, 9), min_size=1, max_size=3),
                                        st.lists(st.one_of(st.integers(0, 9), st.sampled_from([2**32, 2**63, 2**64 - 1])), max_size=4)))
def test_resolve_layer_random_layers(worker: Worker, layer: dict, dim_in: list[int]) -> None:
    result = worker.call(fn="resolve_layer", layer=json.dumps(layer), dim_in=dim_in, what="layout[0] (fuzz)")
    event(outcome(result, "resolve_layer"))
    if "ok" in result:
        check_resolved_layer(json.loads(result["ok"]), dim_in)


@fuzz()
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.integers(1, 5000).map(lambda n: '{"layers": ' + "[" * n + "]" * n + "}"),
                      st.integers(1, 3000).map(lambda n: '{"kind": "residual", "name": "r", "layers": [' * n + "]}" * n)))
def test_resolve_random_text(worker: Worker, text: str) -> None:
    """Text that is not a spec, nesting deeper than any parser should recurse."""
    event(outcome(worker.call(fn="resolve", spec=text), "resolve"))
    event(outcome(worker.call(fn="resolve_layer", layer=text, dim_in=[4, 4, 2], what="x"), "resolve_layer"))


def test_a_huge_conv_stride_does_not_hang(worker: Worker) -> None:
    spec = {"dtype": "f64", "input": [6, 6, 1], "loss": {"name": "squared_error"}, "update": {"name": "vanilla"},
            "reduction": "sum", "layers": [{"kind": "conv", "name": "c", "padding": [0, 0], "field": [3, 3],
                                            "stride": [2**40, 1], "filters": 1, "activator": {"name": "linear"}}]}
    assert outcome(worker.call(limit=3.0, fn="resolve", spec=json.dumps(spec)), "resolve") == "refused"

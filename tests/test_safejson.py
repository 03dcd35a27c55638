"""neuroflow.io.safejson: JSON from untrusted files within limits, and canonical digests.

The property tests run a bounded number of examples (200 by default); a longer fuzzing run:

    NEUROFLOW_FUZZ_EXAMPLES=20000 python -m pytest -q tests/test_safejson.py
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hostile import ENV
from neuroflow.io import safejson
from neuroflow.io.safejson import JSONLimitError, canonical_digest, canonical_dumps, load, loads

EXAMPLES = int(os.environ.get("NEUROFLOW_FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text_no_surrogates = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text_no_surrogates
)
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(text_no_surrogates, kids, max_size=5),
    max_leaves=40,
)


def _same(a, b) -> bool:
    """Equality that tells 1 from 1.0 and True from 1, and -0.0 from 0.0 (JSON does)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


# ---------------------------------------------------------------- properties


@fuzz
@given(json_values, st.sampled_from([None, 0, 2]), st.booleans(), st.booleans())
def test_any_json_value_round_trips_with_one_digest(value, indent, sort_keys, ascii_only) -> None:
    text = json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=ascii_only)
    back = loads(text)
    assert _same(back, value)
    assert loads(text.encode("utf-8")) == back
    assert canonical_digest(back) == canonical_digest(value)
    assert canonical_dumps(loads(canonical_dumps(value))) == canonical_dumps(value)


@fuzz
@given(st.dictionaries(text_no_surrogates, scalars, min_size=2, max_size=8), st.randoms())
def test_the_digest_ignores_key_order(d, random) -> None:
    items = list(d.items())
    random.shuffle(items)
    assert canonical_dumps(dict(items)) == canonical_dumps(d)


@fuzz
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_arbitrary_input_is_parsed_or_refused_cleanly(data) -> None:
    try:
        loads(data, max_depth=8, max_number_chars=20)
    except JSONLimitError:
        pass


@fuzz
@given(json_values, st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list('[]{}",:\\0123456789e-.tnfu \x00'))),
                             min_size=1, max_size=6))
def test_mutated_documents_are_parsed_or_refused_cleanly(value, edits) -> None:
    text = json.dumps(value)
    for pos, ch in edits:
        pos %= len(text) + 1
        text = text[:pos] + ch + text[pos:]
    try:
        out = loads(text, max_depth=6, max_number_chars=30)
    except JSONLimitError:
        return
    canonical_dumps(out)  # whatever it accepted can be digested


# ---------------------------------------------------------------- limits, one by one


def test_nesting_is_refused_without_recursion_error() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(deep)  # what Python's own parser does
    with pytest.raises(JSONLimitError, match=r"model\.safetensors: metadata 'training': arrays and objects nested more than 64"):
        loads(deep, what="model.safetensors: metadata 'training'")
    with pytest.raises(JSONLimitError, match="nested more than 64"):
        loads('{"a":' * 65 + "1" + "}" * 65)
    assert loads("[" * 64 + "]" * 64) == loads("[" * 64 + "]" * 64)  # at the limit: fine
    assert loads('{"a":' * 64 + "1" + "}" * 64) is not None
    with pytest.raises(JSONLimitError, match="nested more than 3"):
        loads("[[{}, [[]]]]", max_depth=3)
    # brackets inside strings, escaped quotes included, are not nesting
    assert loads(json.dumps(["[[[[{{{{\\\"[[[[" * 50]), max_depth=1) == ["[[[[{{{{\\\"[[[[" * 50]
    with pytest.raises(JSONLimitError):
        loads("[" * 65 + '"]', max_depth=64)  # unterminated: refused either way


def test_huge_numbers_are_refused_before_conversion() -> None:
    digits = "7" * 5000
    with pytest.raises(ValueError, match="Exceeds the limit"):
        json.loads(digits)  # Python's own message, which names no file
    with pytest.raises(JSONLimitError, match=r"meta: a number of 5,000 characters \(777777777777…\), more than the limit of 100"):
        loads(f'{{"iteration": {digits}}}', what="meta")
    with pytest.raises(JSONLimitError, match="5,003 characters"):
        loads("-0." + digits)
    with pytest.raises(JSONLimitError, match="5,006 characters"):
        loads("1e" + "0" * 5000 + "1234")
    assert loads("9" * 100) == int("9" * 100)  # at the limit
    with pytest.raises(JSONLimitError, match="101 characters"):
        loads("9" * 101)
    state = 2**128 - 159  # a PCG64 state: 39 digits
    assert loads(json.dumps({"state": state})) == {"state": state}
    with pytest.raises(JSONLimitError, match="out of the range of a 64-bit float"):
        loads("[1e400]")
    assert loads("[1e-400]") == [0.0]  # underflow to zero is exact enough: a float, finite


def test_non_finite_values_only_when_allowed() -> None:
    for const in ("NaN", "Infinity", "-Infinity"):
        with pytest.raises(JSONLimitError, match=f"{const} is not a JSON number"):
            loads(f"[{const}]")
        (v,) = loads(f"[{const}]", allow_nan=True)
        assert not math.isfinite(v)
    with pytest.raises(JSONLimitError, match="out of the range"):
        loads("-1e999", allow_nan=True)


def test_duplicate_keys_are_refused() -> None:
    assert json.loads('{"lr": 0.1, "lr": 100}') == {"lr": 100}  # Python: the last one wins
    with pytest.raises(JSONLimitError, match="the key 'lr' appears twice in one object"):
        loads('{"lr": 0.1, "lr": 100}')
    with pytest.raises(JSONLimitError, match="appears twice"):
        loads('[{"a": {"b": 1, "b": 1}}]')
    assert loads('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]  # same key, other objects: fine
    with pytest.raises(JSONLimitError, match="'é' appears twice"):
        loads('{"é": 1, "\\u00e9": 2}')  # the same key spelt two ways


def test_size_is_counted_in_utf8_bytes() -> None:
    doc = json.dumps(["é" * 10], ensure_ascii=False)  # 10 characters of 2 bytes
    size = len(doc.encode())
    assert loads(doc, max_bytes=size) == ["é" * 10]
    with pytest.raises(JSONLimitError, match=f"{size:,} bytes, more than the limit of {size - 1:,}"):
        loads(doc, max_bytes=size - 1)
    with pytest.raises(JSONLimitError, match="more than the limit"):
        loads(doc.encode(), max_bytes=size - 1)
    with pytest.raises(JSONLimitError, match="more than 5 bytes"):
        loads("[" + " " * 10 + "]", max_bytes=5)


def test_bad_text_is_refused() -> None:
    with pytest.raises(JSONLimitError, match="not valid UTF-8 at byte 2"):
        loads(b'["\xff"]')
    with pytest.raises(JSONLimitError, match="not valid UTF-8"):
        loads(b'["\xed\xa0\x80"]')  # an encoded surrogate
    with pytest.raises(JSONLimitError, match="not valid JSON"):
        loads(b"\xef\xbb\xbf{}")  # a byte-order mark
    with pytest.raises(JSONLimitError, match=r"unpaired surrogate \\ud800"):
        loads('["\\ud800"]')
    with pytest.raises(JSONLimitError, match=r"unpaired surrogate \\udc00"):
        loads('{"\\udc00x": 1}')
    with pytest.raises(JSONLimitError, match=r"lone surrogate \\udfff"):
        loads('["\udfff"]')
    assert loads('["\\ud83d\\ude00", "\\\\ud800"]') == ["\U0001f600", "\\ud800"]  # a pair; an escaped backslash
    with pytest.raises(JSONLimitError, match=r"x: not valid JSON: Expecting value: line 1 column 2"):
        loads("[,]", what="x")
    with pytest.raises(TypeError, match="str or bytes"):
        loads(12)  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="max_depth"):
            loads("[]", max_depth=bad)  # type: ignore[arg-type]


def test_every_refusal_is_a_value_error() -> None:
    for doc in ["[" * 200, "1" * 300, "[NaN]", '{"a":1,"a":1}', '["\\udead"]', "{", b"\xff"]:
        with pytest.raises(ValueError):
            loads(doc)


def test_scans_stay_linear_on_hostile_text() -> None:
    # A quote followed by a million escaped quotes and nothing to close them: a string
    # pattern that could fail would be retried at every later quote (10^12 steps). Run in a
    # child, so that a regression fails on the timeout instead of hanging the suite.
    code = """if True:
        import time
        from neuroflow.io.safejson import JSONLimitError, loads
        for text in ['"' + '\\\\"' * 1_000_000, '"' + '\\\\"' * 1_000_000 + '\\\\', '"' * 2_000_001, '[' * 2_000_000]:
            t0 = time.perf_counter()
            try:
                loads(text)
            except JSONLimitError:
                pass
            else:
                raise SystemExit('accepted')
            print(round(time.perf_counter() - t0, 2))
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(float(t) < 10 for t in r.stdout.split()), r.stdout


def test_load_checks_the_file_size_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "meta.json"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB, sparse: nothing to read but zeros
    tracemalloc.start()
    try:
        with pytest.raises(JSONLimitError, match=r"meta\.json: 1,073,741,824 bytes, more than the limit of 16,777,216"):
            load(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    ok = tmp_path / "ok.json"
    ok.write_text('{"iteration": 12, "names": ["c0", "c1"]}')
    assert load(ok) == {"iteration": 12, "names": ["c0", "c1"]}
    n = ok.stat().st_size
    assert load(ok, max_bytes=n) is not None
    with pytest.raises(JSONLimitError, match=f"the metadata: {n} bytes, more than the limit of {n - 1}"):
        load(ok, max_bytes=n - 1, what="the metadata")
    with pytest.raises(JSONLimitError, match="nested more than 1"):
        load(ok, max_depth=1)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.json")


# ---------------------------------------------------------------- the canonical form


def test_canonical_form_is_fixed() -> None:
    value = {"b": 1, "a": [1.0, "é\n", None, True, -0.0, 1e-07, 12345678901234567890], "": {}}
    text = b'{"":{},"a":[1.0,"\\u00e9\\n",null,true,-0.0,1e-07,12345678901234567890],"b":1}'
    assert canonical_dumps(value) == text
    # pinned: a change of this digest breaks every file that carries one
    assert canonical_digest(value) == "467f52261b78ee50d0d4818cf45c26300159c8c673421f114aa131719ebb9e3d"
    assert canonical_digest(value) == __import__("hashlib").sha256(text).hexdigest()
    assert canonical_dumps((1, [2])) == canonical_dumps([1, [2]]) == b"[1,[2]]"
    assert canonical_dumps(loads("1e2")) == canonical_dumps(100.0) == b"100.0"  # spelling does not matter
    assert canonical_dumps(1) != canonical_dumps(1.0) and canonical_dumps(True) != canonical_dumps(1)


def test_canonical_form_refuses_what_json_cannot_say_once() -> None:
    with pytest.raises(TypeError, match="keys must be str, got int 1"):
        canonical_dumps({1: "a", "1": "b"})  # json.dumps would write the key "1" twice
    with pytest.raises(ValueError, match="nan is not a JSON number"):
        canonical_dumps([float("nan")])
    with pytest.raises(TypeError, match="cannot serialise a int64"):
        canonical_dumps([np.int64(3)])
    with pytest.raises(TypeError, match="cannot serialise a set"):
        canonical_dumps({"a": {1, 2}})
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="nested more than 64 deep"):
        canonical_dumps(cycle)
    with pytest.raises(ValueError, match="unpaired surrogate"):
        canonical_dumps(["\ud800"])
    with pytest.raises(ValueError, match="more than 100 characters"):
        canonical_dumps(10**150)
    shared = [1, 2]
    assert canonical_dumps([shared, shared]) == b"[[1,2],[1,2]]"  # shared, not cyclic: fine
    assert safejson.DEFAULT_MAX_DEPTH == 64

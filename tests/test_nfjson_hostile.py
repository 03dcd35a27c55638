"""NeuroFlow JSON weight files written by a hostile hand: refused with a ValueError naming the
file, never a RecursionError or Python's own number-conversion error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from neuroflow.nfjson import read_neuroflow_json


def test_deep_nesting_huge_numbers_and_duplicates(tmp_path: Path) -> None:
    p = tmp_path / "w.json"
    p.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ValueError, match=r"w\.json: not a NeuroFlow JSON weight file \(its JSON: arrays and objects nested more than 8"):
        read_neuroflow_json(p)  # was a bare RecursionError
    p.write_text(json.dumps([{"rows": 1, "cols": 1, "precision": "double", "data": [0]}]).replace("[0]", "[" + "9" * 5000 + "]"))
    with pytest.raises(ValueError, match=r"w\.json: .*a number of 5,000 characters"):
        read_neuroflow_json(p)  # was "Exceeds the limit (4300 digits) for integer string conversion", no file named
    p.write_text('[{"rows": 1, "cols": 1, "rows": 2, "precision": "double", "data": [0.5]}]')
    with pytest.raises(ValueError, match="the key 'rows' appears twice"):
        read_neuroflow_json(p)
    p.write_text(json.dumps([{"rows": 1, "cols": 2, "precision": "single", "data": [0.25, float("nan")]}]))
    with pytest.raises(ValueError, match="matrix 0: data must hold finite numbers only"):
        read_neuroflow_json(p)
    p.write_text(json.dumps([{"rows": 1, "cols": 2, "precision": "double", "data": [0.25, -1.5e-3]}]))
    (m,) = read_neuroflow_json(p)
    assert m.tolist() == [[0.25, -1.5e-3]]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused_with_a_value_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    p = tmp_path_factory.mktemp("fuzz") / "w.json"
    p.write_bytes(data)
    try:
        read_neuroflow_json(p)
    except ValueError as e:
        assert "w.json" in str(e)

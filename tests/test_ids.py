"""The names and ids shared by Python, Rust and WGSL come from ids.json: the Python classes
must name exactly its entries (Rust checks its enums in rust/ids.rs; the shaders in
tests/test_ids_gpu.py)."""

import json
from pathlib import Path

import neuroflow
from neuroflow.ids import names, table
from neuroflow.nn import activators, layers, losses, optim


def test_the_table_is_the_packaged_file():
    raw = json.loads((Path(neuroflow.__file__).parent / "ids.json").read_text())
    assert {k: v for k, v in raw.items() if isinstance(v, list)} == table()
    for kind, entries in table().items():
        assert len(entries) == len(set(entries)), f"{kind}: duplicate names"


def test_python_names_match_the_table():
    assert list(activators._DISPLAY) == names("activators")
    assert list(losses.LOSSES) == names("losses")
    assert list(optim.RULES) == names("updates")
    assert list(layers.KINDS) == names("layers")
    settings = neuroflow.Settings.__post_init__.__code__.co_consts
    assert all(r in str(settings) for r in names("reductions"))
    for name in names("activators"):  # every activator has a user-facing object
        assert any(isinstance(v, activators.Activator) and v.name == name for v in vars(activators).values()) \
            or name == "leaky_relu"


def test_every_layer_kind_round_trips_its_spec():
    for kind, cls in layers.KINDS.items():
        assert cls.kind == kind
        assert callable(getattr(cls, "from_spec"))

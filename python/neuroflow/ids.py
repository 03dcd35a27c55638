"""The names and ids Python, Rust and WGSL share, read from ``ids.json`` (the one table;
tests check every copy against it). An id is a name's position in its list."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def table() -> dict[str, list[str]]:
    data = json.loads(resources.files("neuroflow").joinpath("ids.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if isinstance(v, list)}


def names(kind: str) -> list[str]:
    """The names of one list: "activators", "losses", "updates", "layers", "reductions", "modes",
    "conv_algorithms"."""
    return list(table()[kind])


def id_of(kind: str, name: str) -> int:
    return table()[kind].index(name)

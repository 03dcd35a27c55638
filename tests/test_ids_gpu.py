"""The GPU engine takes every shared name and id from neuroflow/ids.json: the WGSL constants
are generated from it when a shader loads (kernels.id_prelude), no shader writes an id by
hand, and the Python side reads the same table. Fails if a shader defines an id itself,
uses an id constant the table does not have, compares an id with a bare number, or if an
activator, loss or update rule of the table has no case in the shaders."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from neuroflow.engines.gpu import kernels, spec
from neuroflow.engines.gpu.kernels import ID_PREFIXES, LAYOUTS, id_constants, id_prelude

IDS = json.loads((Path(spec.__file__).resolve().parents[2] / "ids.json").read_text())
SHADERS = sorted((Path(kernels.__file__).resolve().parents[2] / "shaders").glob("*.wgsl"))
ID_NAME = re.compile(r"\b(" + "|".join(ID_PREFIXES.values()) + r")_[A-Z0-9_]+\b")


def _code(path: Path) -> str:
    """The shader without its comments."""
    return re.sub(r"//[^\n]*", "", path.read_text(encoding="utf-8"))


def test_every_table_has_a_prefix_and_the_constants_are_the_positions():
    tables = [k for k, v in IDS.items() if isinstance(v, list)]
    assert sorted(tables) == sorted(ID_PREFIXES), "a table of ids.json without a WGSL prefix (or a prefix without a table)"
    consts = id_constants()
    for table, prefix in ID_PREFIXES.items():
        for i, name in enumerate(IDS[table]):
            assert consts[f"{prefix}_{name.upper()}"] == i
    assert len(consts) == sum(len(IDS[t]) for t in ID_PREFIXES), "two names map to one constant"
    for name, value in consts.items():
        assert f"const {name}: u32 = {value}u;" in id_prelude()


def test_python_side_reads_the_table():
    assert list(spec.ACTIVATORS) == IDS["activators"]
    assert list(spec.LOSSES) == IDS["losses"]
    assert list(spec.UPDATES) == IDS["updates"]
    assert list(spec.KINDS) == IDS["layers"]
    assert list(spec.REDUCTIONS) == IDS["reductions"]
    assert list(spec.MODES) == IDS["modes"]
    assert set(spec.SLOTS) == set(IDS["updates"])
    from neuroflow.engines.gpu.layers import _classes

    assert set(_classes()) == set(IDS["layers"]), "a layer kind without its GPU class"


@pytest.mark.parametrize("path", SHADERS, ids=lambda p: p.name)
def test_shader_defines_no_id_and_uses_only_table_ids(path):
    code = _code(path)
    consts = id_constants()
    for m in re.finditer(r"\b(?:const|override|let|var)\s+(\w+)", code):
        assert not ID_NAME.fullmatch(m.group(1)), f"{path.name} defines {m.group(1)} itself (ids come from ids.json)"
    unknown = {m.group(0) for m in ID_NAME.finditer(code)} - set(consts)
    assert not unknown, f"{path.name} uses ids that ids.json does not have: {sorted(unknown)}"
    bare_cases = re.findall(r"\bcase\s+\d", code)
    assert not bare_cases, f"{path.name}: a switch case written as a number (use the generated constant)"
    bare = re.findall(r"\.(id|rule|act|loss|kind|mode)\s*[!=<>]=?\s*\d", code)
    assert not bare, f"{path.name}: an id compared with a bare number: {bare}"


def test_every_activator_loss_and_rule_has_its_case():
    used = set()
    for path in SHADERS:
        used |= {m.group(0) for m in ID_NAME.finditer(path.read_text(encoding="utf-8"))}
    for table in ("activators", "losses", "updates"):
        for name in IDS[table]:
            const = f"{ID_PREFIXES[table]}_{name.upper()}"
            assert const in used, f"{table[:-1]} {name!r}: no shader handles {const}"


def test_every_kernel_compiles_with_the_generated_constants():
    from gpu_parity import require_gpu

    gpu = require_gpu()
    from neuroflow.engines.gpu.ops import TILES

    flags = dict(TRANS_A=False, TRANS_B=False, A_CONV=False, PHASED=False, B_WFLIP=False, VEC_C=False, EPI=0, WRITE_S=False)
    for shader, entry in LAYOUTS:
        defines = dict(TILES["32x32"].defines(), **flags) if shader == "gemm" else None
        kernels.kernel(gpu, shader, entry, defines)
    source = kernels.shader_source("act")
    assert source.startswith(id_prelude()) and "fn act_f" in source  # the prelude, then the include

"""The package as installed: its native core and its WGSL shaders come from the package
itself (the wheel), not from the source tree."""

import importlib.resources
import os
from pathlib import Path

import pytest

import neuroflow

REPO = Path(__file__).resolve().parent.parent


def test_shaders_ship_inside_the_package():
    shaders = importlib.resources.files("neuroflow") / "shaders"
    names = {p.name for p in shaders.iterdir()}
    for op in ("gemm", "im2col", "col2im", "act", "loss", "update", "reduce", "softmax"):
        assert f"{op}.wgsl" in names
    assert "@compute" in (shaders / "gemm.wgsl").read_text()


@pytest.mark.skipif(not os.environ.get("CI"), reason="in CI the tests run against the installed wheel")
def test_ci_tests_the_installed_wheel():
    here = Path(neuroflow.__file__).resolve()
    assert REPO / "python" not in here.parents, f"neuroflow was imported from the source tree: {here}"
    assert "site-packages" in here.parts

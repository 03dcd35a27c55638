"""Static types: mypy is clean on the whole package, the _core stub agrees with the
compiled module, and pyright accepts the README's Python examples as a user would type them."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
IN_CI = bool(os.environ.get("CI"))


def _need(module: str):
    try:
        __import__(module)
    except ImportError:
        if IN_CI:
            raise
        pytest.skip(f"{module} is not installed (pip install 'neuroflow[test]')")


def test_mypy_is_clean_on_the_package():
    _need("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"),
                        "--cache-dir=/dev/null", "-p", "neuroflow"],
                       capture_output=True, text=True, cwd=REPO / "python", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues found" in r.stdout, r.stdout


def test_the_core_stub_matches_the_compiled_module(tmp_path):
    """python/neuroflow/_core.pyi against neuroflow._core as built: names, signatures
    (parameter names, kinds and defaults), classes. No allowlist: the stub says exactly
    what the module has."""
    _need("mypy")
    r = subprocess.run([sys.executable, "-m", "mypy.stubtest", "neuroflow._core",
                        "--mypy-config-file", str(REPO / "pyproject.toml")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)  # its cache dir lands there
    assert r.returncode == 0, r.stdout + r.stderr


def _readme_examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)


def test_the_readme_has_python_examples():
    blocks = _readme_examples()
    assert len(blocks) >= 2 and any("WeightBreeder.normal({" in b for b in blocks)


@pytest.mark.parametrize("index", range(len(_readme_examples())))
def test_pyright_accepts_the_readme_examples(tmp_path, index):
    _need("pyright")
    if not shutil.which("node") and not IN_CI:
        pytest.skip("pyright needs Node.js")
    example = _readme_examples()[index]
    # the README's xs, ys (and held-out test_xs, test_ys) are the user's data
    data = ("import numpy as np\nxs = np.zeros((20, 400, 400, 3))\nys = np.zeros(20, int)\n"
            "test_xs, test_ys = xs, ys\n")
    (tmp_path / "example.py").write_text(data + example, encoding="utf-8")
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(
        {"extraPaths": [str(REPO / "python")], "pythonVersion": "3.11", "typeCheckingMode": "standard"}))
    r = subprocess.run([sys.executable, "-m", "pyright", "--pythonpath", sys.executable, "example.py"],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0 and "0 errors" in r.stdout, r.stdout + r.stderr

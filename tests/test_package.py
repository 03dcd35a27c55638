"""What a Python user expects of the package: every public submodule reachable from a plain
``import neuroflow`` (loaded on first use, so the import stays light), ``--version`` on the
command line and through ``python -m neuroflow``."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import neuroflow as nf
from neuroflow.apps.cli import main

# short name -> its real home
SHORT = {
    "gpu": "neuroflow.engines.gpu",
    "datasets": "neuroflow.io.datasets",
    "image": "neuroflow.io.image",
    "modelfile": "neuroflow.io.modelfile",
    "nfjson": "neuroflow.io.nfjson",
    "checkpoint": "neuroflow.io.checkpoint",
    "metrics": "neuroflow.nn.metrics",
    "plots": "neuroflow.apps.plots",
    "avatars": "neuroflow.apps.avatars",
    "cli": "neuroflow.apps.cli",
}


def _env() -> dict:
    # the neuroflow these tests import: the installed one, or a source tree on PYTHONPATH
    here = str(Path(nf.__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_every_public_submodule_is_an_attribute_of_the_package():
    assert set(SHORT) == set(nf.SUBMODULES)
    for short, real in SHORT.items():
        module = getattr(nf, short)
        assert module is importlib.import_module(real) is importlib.import_module(f"neuroflow.{short}")
        assert module.__name__ == real and module.__spec__.name == real
        assert short in dir(nf)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        nf.nosuch  # noqa: B018


def test_short_names_work_in_a_fresh_interpreter_without_importing_them():
    out = _python("import neuroflow as nf; print(nf.datasets.__name__, callable(nf.gpu.adapters), "
                  "callable(nf.image.contact_sheet), nf.modelfile.__name__)")
    assert out == "neuroflow.io.datasets True True neuroflow.io.modelfile"
    out = _python("from neuroflow.gpu import adapters; from neuroflow.datasets import cifar10; print(adapters.__module__)")
    assert out == "neuroflow.engines.gpu.device"


def test_import_neuroflow_stays_light():
    out = _python("import sys, neuroflow; print(' '.join(m for m in ('wgpu', 'PIL', 'matplotlib', 'tqdm', 'safetensors') "
                  "if m in sys.modules))")
    assert out == "", f"import neuroflow pulled in: {out}"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"neuroflow {nf.__version__}"


def test_python_dash_m_version():
    r = subprocess.run([sys.executable, "-m", "neuroflow", "--version"], capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"neuroflow {nf.__version__}", r.stderr

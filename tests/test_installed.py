"""The package as installed: its native core and its WGSL shaders come from the package
itself (the wheel), not from the source tree; the wheel that scripts/test.sh built
(NEUROFLOW_WHEEL) carries the right tags and metadata, and installs into a fresh virtual
environment, away from the source tree and with no Rust toolchain on PATH, where it trains."""

import email.parser
import importlib.metadata
import importlib.resources
import os
import platform
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import neuroflow

REPO = Path(__file__).resolve().parent.parent
SHADERS = ("gemm", "im2col", "col2im", "act", "loss", "update", "reduce", "softmax")
IN_CI = bool(os.environ.get("CI"))


def test_shaders_ship_inside_the_package():
    shaders = importlib.resources.files("neuroflow") / "shaders"
    names = {p.name for p in shaders.iterdir()}
    for op in SHADERS:
        assert f"{op}.wgsl" in names
    assert "@compute" in (shaders / "gemm.wgsl").read_text()


@pytest.mark.skipif(not IN_CI, reason="in CI the tests run against the installed wheel")
def test_ci_tests_the_installed_wheel():
    here = Path(neuroflow.__file__).resolve()
    assert REPO / "python" not in here.parents, f"neuroflow was imported from the source tree: {here}"
    assert "site-packages" in here.parts


def test_installed_metadata():
    try:
        meta = importlib.metadata.metadata("neuroflow")
    except importlib.metadata.PackageNotFoundError:
        if IN_CI:
            raise
        pytest.skip("neuroflow is not installed (imported from a source tree)")
    assert meta["Version"] == neuroflow.__version__
    assert meta["Requires-Python"] == ">=3.11"
    assert "MIT" in (meta.get("License-Expression") or meta.get("License") or "")
    requires = importlib.metadata.requires("neuroflow") or []
    # wgpu is a dependency on the platforms it has wheels for, not only an extra
    assert any(r.startswith("wgpu") and "extra ==" not in r for r in requires), requires


def _wheel() -> Path:
    path = os.environ.get("NEUROFLOW_WHEEL")
    if not path:
        if IN_CI:
            pytest.fail("CI tests the built wheel: scripts/test.sh sets NEUROFLOW_WHEEL")
        pytest.skip("NEUROFLOW_WHEEL is not set (scripts/test.sh sets it to the wheel it built)")
    wheel = Path(path).resolve()
    assert wheel.is_file(), wheel
    return wheel


def test_wheel_tags_files_and_metadata():
    wheel = _wheel()
    version, machine = neuroflow.__version__, platform.machine()
    tag = f"cp311-abi3-manylinux_2_28_{machine}"
    assert wheel.name == f"neuroflow-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = f"neuroflow-{version}.dist-info"
        wheel_file = email.parser.Parser().parsestr(z.read(f"{info}/WHEEL").decode())
        meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
        assert wheel_file.get_all("Tag") == [tag]
        assert wheel_file["Root-Is-Purelib"] == "false"
        # the abi3 core, the shaders, the type information, the licence
        assert "neuroflow/_core.abi3.so" in names
        for op in SHADERS:
            assert f"neuroflow/shaders/{op}.wgsl" in names
        assert {"neuroflow/py.typed", "neuroflow/_core.pyi", "neuroflow/ids.json"} <= names
        assert any(n.startswith(info) and n.endswith("/LICENSE") for n in names), sorted(names)
        assert not any(n.startswith(("tests/", "rust/", "scripts/")) for n in names)
    assert meta["Name"] == "neuroflow" and meta["Version"] == version
    assert meta["Requires-Python"] == ">=3.11"
    assert meta["License-Expression"] == "MIT" and meta["License-File"] == "LICENSE"
    assert meta["Author"] or meta["Author-email"]
    assert meta.get_all("Project-URL")
    classifiers = meta.get_all("Classifier")
    for v in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {v}" in classifiers
    requires = meta.get_all("Requires-Dist")
    wgpu = [r for r in requires if r.startswith("wgpu")]
    assert any("extra ==" not in r and "sys_platform == 'linux'" in r for r in wgpu), wgpu
    assert any("extra == 'gpu'" in r for r in wgpu), wgpu


def _without_rust(env: dict) -> dict:
    """The environment with every PATH entry that holds cargo, rustc or rustup removed."""
    tools = ("cargo", "rustc", "rustup")
    path = [d for d in env.get("PATH", "").split(os.pathsep)
            if d and not any(os.path.exists(os.path.join(d, t)) for t in tools)]
    env = {k: v for k, v in env.items()
           if k not in ("PYTHONPATH", "CARGO_HOME", "RUSTUP_HOME", "CARGO_TARGET_DIR", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(path)
    for t in tools:
        assert shutil.which(t, path=env["PATH"]) is None, f"{t} is still on PATH"
    return env


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory):
    """A new virtual environment, outside the source tree, with only the wheel installed
    (and its dependencies, as wheels), made and used with no Rust toolchain on PATH."""
    wheel = _wheel()
    root = tmp_path_factory.mktemp("fresh")
    env = _without_rust(dict(os.environ))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=root, env=env, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--only-binary=:all:",
                          str(wheel)], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return root, venv, env


def test_fresh_venv_version_commands(fresh_venv):
    root, venv, env = fresh_venv
    want = f"neuroflow {neuroflow.__version__}"
    for argv in ([str(venv / "bin" / "neuroflow"), "--version"], [str(venv / "bin" / "python"), "-m", "neuroflow", "--version"]):
        r = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0 and r.stdout.strip() == want, (argv, r.stdout, r.stderr)


TRAIN = textwrap.dedent("""
    import importlib.resources, json, os, sys
    from pathlib import Path
    import numpy as np
    import neuroflow as nf
    from neuroflow import Convolution, Dense, Network, ReLU, Settings, SoftmaxLogEntropy, WeightBreeder

    out = {"file": nf.__file__, "version": nf.__version__}
    shaders = importlib.resources.files("neuroflow") / "shaders"
    out["shaders"] = sorted(p.name for p in shaders.iterdir() if p.name.endswith(".wgsl"))
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, (24, 10, 8, 3))
    ys = (xs[:, :5].mean(axis=(1, 2, 3)) > xs[:, 5:].mean(axis=(1, 2, 3))).astype(np.int64)

    def train(backend):
        c0 = Convolution((10, 8, 3), padding=1, field=3, stride=1, filters=2, activator=ReLU)
        net = Network([c0, Dense(2, ReLU), SoftmaxLogEntropy()],
                      Settings(learning_rate=0.01, batch_size=8, iterations=30, verbose=False),
                      weights=WeightBreeder.normal(0.05, 0.2, seed=3), backend=backend)
        before = net.loss(xs, ys)
        net.train(xs, ys)
        return {"before": float(before), "after": float(net.loss(xs, ys)), "probs": net(xs[:2]).tolist()}

    out["cpu"] = train("cpu")
    import wgpu  # a dependency of the wheel, not an extra
    out["adapters"] = [a.get("name") for a in nf.gpu.adapters()]
    if out["adapters"]:
        out["gpu"] = train("gpu")
    print(json.dumps(out))
""")


def test_fresh_venv_trains_a_small_net(fresh_venv):
    import json

    root, venv, env = fresh_venv
    env = {**env, "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", str(root))}
    r = subprocess.run([str(venv / "bin" / "python"), "-c", TRAIN], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    here = Path(out["file"]).resolve()
    assert venv.resolve() in here.parents and REPO not in here.parents, here
    assert out["version"] == neuroflow.__version__
    assert {f"{op}.wgsl" for op in SHADERS} <= set(out["shaders"])
    assert out["cpu"]["after"] < out["cpu"]["before"], out["cpu"]
    if IN_CI:  # scripts/test.sh installs lavapipe, a software Vulkan GPU
        assert out["adapters"], "no GPU adapter in the fresh environment"
    if out["adapters"]:
        assert out["gpu"]["after"] < out["gpu"]["before"], out["gpu"]

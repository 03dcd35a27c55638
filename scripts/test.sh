#!/usr/bin/env bash
# Everything the tests need on a fresh Debian/Ubuntu machine, then the tests:
# - lavapipe (Mesa's software Vulkan GPU) so that the GPU tests run without a GPU;
# - MPI for the distributed tests: mpi4py and MPICH from PyPI (the `distributed` extra),
#   Debian's MPICH where PyPI has no MPICH wheel;
# - the release artifacts as scripts/wheels.sh makes them (the sdist, and this machine's
#   manylinux abi3 wheel built from it), the wheel installed into a fresh virtual
#   environment, .venv-test/, so the tests exercise the installed package (shaders
#   included), not the source tree; tests/test_installed.py also installs that wheel into
#   another new environment with no Rust on PATH and trains there.
# The Python is $PYTHON, else python3 (3.11 or newer): the system Python, pyenv's or conda's.
#   bash scripts/test.sh [pytest options, e.g. -k gpu -x]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

ldconfig=$(command -v ldconfig || echo /sbin/ldconfig)  # /sbin is not on every user's PATH
if [ ! -e "/usr/share/vulkan/icd.d/lvp_icd.$(uname -m).json" ] || ! "$ldconfig" -p | grep -q 'libvulkan.so.1 '; then
  nf_sudo apt-get update -qq
  nf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi

nf_pick_python
rm -rf dist
bash scripts/wheels.sh native
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
wheel="$(pwd)/dist/neuroflow-$version-cp311-abi3-manylinux_2_28_$(uname -m).whl"

nf_venv .venv-test
.venv-test/bin/python -m pip install -q --disable-pip-version-check "${wheel}[test,distributed]"
if ! .venv-test/bin/python -c "import mpi4py.MPI" >/dev/null 2>&1; then  # no MPICH wheel here: Debian's
  nf_sudo apt-get update -qq
  nf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mpich >/dev/null
fi
export NEUROFLOW_WHEEL="$wheel"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" MESA_SHADER_CACHE_DISABLE=true
.venv-test/bin/python -m pytest -q -p no:cacheprovider tests "$@"

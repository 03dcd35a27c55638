#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, then the tests.
# - lavapipe (Mesa's software Vulkan GPU) so that the GPU tests run without a GPU;
# - MPI for the distributed tests: mpi4py and MPICH from PyPI (the `distributed` extra);
# - one release build of the wheel, installed into a fresh virtual environment, so the
#   tests exercise the installed package (shaders included), not the source tree.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
rm -rf .venv-test dist
python3 -m venv .venv-test
.venv-test/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv-test/bin/python -m pip wheel -q --no-deps -w dist .
wheel=$(ls dist/neuroflow-*.whl)
.venv-test/bin/python -m pip install -q --disable-pip-version-check "${wheel}[test,distributed]"
if ! .venv-test/bin/python -c "import mpi4py.MPI" >/dev/null 2>&1; then  # no MPICH wheel here: Debian's
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mpich >/dev/null
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}" MESA_SHADER_CACHE_DISABLE=true
.venv-test/bin/python -m pytest -q -p no:cacheprovider tests

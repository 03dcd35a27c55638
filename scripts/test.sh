#!/usr/bin/env bash
# Everything the tests need on a fresh Debian machine, then the tests.
# The software Vulkan GPU (lavapipe) lets the GPU tests run on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
if [ ! -e /usr/share/vulkan/icd.d/lvp_icd.x86_64.json ] || ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mesa-vulkan-drivers libvulkan1 >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check ".[test]"
python3 -m pytest -q -p no:cacheprovider tests

#!/usr/bin/env bash
# aarch64 checks on an x86_64 Debian/Ubuntu machine, under qemu-user; not run by CI (about
# 10 minutes, and Debian packages CI does not need):
#  1. the Rust core's tests, cross-compiled for aarch64-unknown-linux-gnu, run by qemu-aarch64;
#  2. the aarch64 wheel from dist/ (bash scripts/wheels.sh aarch64) with its aarch64
#     dependencies (pip --platform) in build/aarch64/site, imported and trained by Debian's
#     arm64 Python 3.11 (unpacked by debootstrap into build/aarch64/root) under qemu-aarch64.
# On aarch64 the hand-written vector kernels run in their NEON version (rust/lanes.rs), the
# Rust tests check them against im2col and their scalar meaning.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
triple=aarch64-unknown-linux-gnu

need=()
for p in qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross debootstrap; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  nf_sudo apt-get update -qq
  nf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"

echo "aarch64-check: 1. cargo test --release for $triple under qemu-aarch64"
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
  cargo test --release -q --target "$triple"

echo "aarch64-check: 2. the aarch64 wheel, installed and trained under qemu-aarch64"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
wheel="dist/neuroflow-$version-cp311-abi3-manylinux_2_28_aarch64.whl"
[ -f "$wheel" ] || { echo "aarch64-check: no $wheel: run bash scripts/wheels.sh aarch64 first" >&2; exit 1; }
root=build/aarch64/root
if [ ! -x "$root/usr/bin/python3.11" ]; then
  rm -rf "$root" && mkdir -p "$root"
  nf_sudo debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$root" http://deb.debian.org/debian
  for d in "$root"/var/cache/apt/archives/*.deb; do nf_sudo dpkg-deb -x "$d" "$root"; done
fi
nf_pick_python
rm -rf build/aarch64/site
"$NF_PY" -m pip install -q --disable-pip-version-check --target build/aarch64/site --python-version 3.11 \
  --implementation cp --only-binary=:all: --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux2014_aarch64 --platform any "$wheel"
site=$(cd build/aarch64/site && pwd)
(cd "$root" && PYTHONPATH="$site" qemu-aarch64 -L . usr/bin/python3.11 -m neuroflow --version)
(cd "$root" && PYTHONPATH="$site" qemu-aarch64 -L . usr/bin/python3.11 "$OLDPWD/scripts/_smoke_train.py")
echo "aarch64-check: ok"

#!/usr/bin/env bash
# Release artifacts into dist/: the sdist, then one manylinux_2_28 abi3 wheel per target
# (one wheel for CPython 3.11 and newer), each built FROM that sdist, so a file missing from
# the sdist fails here and not on a user's machine. maturin builds, zig (the ziglang package
# from PyPI) links against glibc 2.28 for any target, and auditwheel checks each wheel's tag.
#
#   bash scripts/wheels.sh                # x86_64 and aarch64 (cross-compiled)
#   bash scripts/wheels.sh native         # this machine's architecture (what scripts/test.sh uses)
#   bash scripts/wheels.sh aarch64        # one target
#
# Needs a Rust toolchain; for a target other than this machine's, its standard library
# (`rustup target add aarch64-unknown-linux-gnu`, tried here when it is missing), and PyPI
# for maturin, ziglang and auditwheel (into .venv-build/). Exits non-zero if any wheel asked
# for could not be built, after building the others. manylinux_2_28 because wgpu-py, a
# dependency, ships manylinux_2_28 wheels only. No musllinux wheels: wgpu-py has none, so
# such a wheel could not be installed with its dependencies. macOS and Windows wheels:
# .github/workflows/release.yml (not runnable on these machines).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
repo=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
compat=manylinux_2_28

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64 aarch64)

nf_pick_python
venv=.venv-build
nf_venv "$venv" reuse
tools=("maturin>=1.9.4,<2" "ziglang>=0.13" "auditwheel>=6")
"$venv/bin/python" -m pip install -q --disable-pip-version-check "${tools[@]}"
export PATH="$repo/$venv/bin:$PATH"

version=$("$venv/bin/python" -c 'import tomllib; print(tomllib.load(open("Cargo.toml", "rb"))["package"]["version"])')
mkdir -p dist
rm -f "dist/neuroflow-$version.tar.gz"
maturin sdist --out dist
sdist="dist/neuroflow-$version.tar.gz"
[ -f "$sdist" ] || { echo "wheels.sh: maturin did not write $sdist" >&2; exit 1; }
# The sdist's files all carry one fixed date (a reproducible archive), so cargo could not see
# an edit by their dates: unpack it beside the last tree and copy over only the files whose
# bytes changed (they get today's date), so a rebuild compiles what changed and no less.
rm -rf build/sdist-new && mkdir -p build/sdist-new build/sdist
tar -xzf "$sdist" -C build/sdist-new
"$venv/bin/python" - "build/sdist-new/neuroflow-$version" "build/sdist/neuroflow-$version" <<'PY'
import filecmp, os, shutil, sys
new, old = sys.argv[1:]
keep = set()
for root, _, files in os.walk(new):
    for f in files:
        rel = os.path.relpath(os.path.join(root, f), new)
        keep.add(rel)
        dst = os.path.join(old, rel)
        if not (os.path.isfile(dst) and filecmp.cmp(os.path.join(new, rel), dst, shallow=False)):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(os.path.join(new, rel), dst)
            shutil.copymode(os.path.join(new, rel), dst)
for root, _, files in os.walk(old):
    for f in files:
        if os.path.relpath(os.path.join(root, f), old) not in keep:
            os.remove(os.path.join(root, f))
PY
rm -rf build/sdist-new
src="build/sdist/neuroflow-$version"

failed=()
for t in "${targets[@]}"; do
  [ "$t" = native ] && t=$(uname -m)
  case "$t" in
    x86_64|aarch64) triple="$t-unknown-linux-gnu" ;;
    *) echo "wheels.sh: unknown target $t (x86_64, aarch64 or native)" >&2; failed+=("$t"); continue ;;
  esac
  args=(--release --zig --compatibility "$compat" --out "$repo/dist")
  if [ "$t" != "$(uname -m)" ]; then
    # A cross build needs the target's Rust standard library.
    if ! rustup target list --installed 2>/dev/null | grep -qx "$triple"; then
      echo "wheels.sh: adding the Rust standard library for $triple (rustup target add)"
      if ! timeout 600 rustup target add "$triple"; then
        echo "wheels.sh: SKIPPED $t: no Rust standard library for $triple (rustup target add failed: offline, or no rustup)" >&2
        failed+=("$t"); continue
      fi
    fi
    args+=(--target "$triple")
  fi
  rm -f "dist/neuroflow-$version-"*"$t.whl"
  echo "wheels.sh: building the $t wheel from $sdist"
  if ! (cd "$src" && maturin build "${args[@]}"); then
    echo "wheels.sh: FAILED to build the $t wheel" >&2; failed+=("$t"); continue
  fi
  wheel="dist/neuroflow-$version-cp311-abi3-${compat}_$t.whl"
  if [ ! -f "$wheel" ]; then
    echo "wheels.sh: expected $wheel; maturin wrote:" dist/neuroflow-"$version"-*"$t".whl >&2; failed+=("$t"); continue
  fi
  # auditwheel reads the binary's glibc symbol versions and libraries: the manylinux tag it
  # finds the wheel consistent with must be no newer than the one the wheel carries.
  if ! auditwheel show "$wheel" | "$venv/bin/python" scripts/_check_tag.py "${compat}_$t"; then
    echo "wheels.sh: $wheel fails auditwheel's check for ${compat}_$t" >&2; failed+=("$t"); continue
  fi
done

echo "wheels.sh: in dist/:"
ls -l dist/ | sed 1d
if [ ${#failed[@]} -gt 0 ]; then
  echo "wheels.sh: not built: ${failed[*]}" >&2
  exit 1
fi

#!/usr/bin/env bash
# The main job: install neuroflow from this checkout into a virtual environment, then run
# the article's glasses experiment on avatars it draws itself (offline, CPU).
#
#   bash scripts/demo.sh [neuroflow demo options, e.g. --iterations 100 --out DIR]
#
# The virtual environment is .venv/ in the repository (NEUROFLOW_VENV=DIR for another
# place); one that is already there, made by the same Python, is reused. The Python is
# $PYTHON, else python3 (or the newest python3.1x) if it is 3.11 or newer: the system
# Python of Debian/Ubuntu (python3-venv is installed with apt if missing), pyenv's or
# conda's. Building needs a Rust toolchain (rustup) and PyPI; the demo itself is offline.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

nf_pick_python
venv=${NEUROFLOW_VENV:-.venv}
nf_venv "$venv" reuse
py="$venv/bin/python"

if ! command -v cargo >/dev/null 2>&1; then
  echo "neuroflow: no cargo on PATH: maturin will try to fetch a Rust toolchain for the build;" >&2
  echo "  if that fails, install one from https://rustup.rs and run this again" >&2
fi
echo "neuroflow: building and installing into $venv/ with $("$py" -c 'import sys; print("Python %d.%d.%d" % sys.version_info[:3])') (a few minutes the first time: the Rust core compiles)"
"$py" -m pip install -q --disable-pip-version-check .
"$venv/bin/neuroflow" demo "$@"

version=$("$venv/bin/neuroflow" --version)
cat <<EOF

$version is installed in $(cd "$venv" && pwd)/ (made with $("$NF_PY" -c 'import sys; print(sys.executable)')). To use it:
  source $venv/bin/activate     # then: neuroflow --help, neuroflow info, python -c 'import neuroflow'
  $py -c 'import neuroflow; print(neuroflow.__version__)'   # or without activating
EOF

# Sourced by scripts/demo.sh, test.sh and wheels.sh: pick a Python and make virtual
# environments with it, so that nothing is ever pip-installed into the interpreter itself
# (PEP 668: Debian's and Ubuntu's system Python refuse that).
#
#   PYTHON=/usr/bin/python3 bash scripts/demo.sh    # choose the interpreter (default below)

NF_MIN_PYTHON="3.11"

# NF_PY := $PYTHON, else the first of python3, python3.13, python3.12, python3.11 on PATH
# that is at least $NF_MIN_PYTHON (pyenv, conda and the system Python all work).
nf_pick_python() {
  local candidates c
  if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else candidates=(python3 python3.13 python3.12 python3.11); fi
  for c in "${candidates[@]}"; do
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      NF_PY=$(command -v "$c")
      return 0
    fi
  done
  if [ -n "${PYTHON:-}" ]; then
    echo "neuroflow: PYTHON=$PYTHON is not a Python $NF_MIN_PYTHON or newer" >&2
  else
    echo "neuroflow: needs Python $NF_MIN_PYTHON or newer; found none of python3, python3.13, python3.12, python3.11 that is." >&2
    echo "  Install one (Debian/Ubuntu: apt install python3.11, or pyenv, or conda) and/or set PYTHON=/path/to/python3.11" >&2
  fi
  return 1
}

# The Python's version as X.Y and its base prefix (the same for a venv and the Python that made it).
nf_py_id() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2], sys.base_prefix)'; }

nf_sudo() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "neuroflow: need root for: $* (no sudo here)" >&2; return 1
  fi
}

# Debian and Ubuntu ship the venv module and ensurepip's wheels apart from python3
# (python3.X-venv): install it when the system Python lacks it.
nf_apt_venv() {
  local ver pkg
  ver=$("$NF_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  case "$(readlink -f "$NF_PY")" in
    /usr/bin/*|/bin/*) ;;
    *) return 1 ;;  # pyenv, conda, a build of one's own: apt cannot fix those
  esac
  command -v apt-get >/dev/null 2>&1 || return 1
  pkg="python${ver}-venv"
  echo "neuroflow: $NF_PY cannot make a virtual environment (no venv/ensurepip); installing $pkg with apt" >&2
  nf_sudo apt-get update -qq || return 1
  nf_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null || return 1
}

# nf_venv DIR [reuse]: a virtual environment at DIR made by $NF_PY. With "reuse", one that
# is already there and made by the same Python is kept (packages and all); otherwise DIR is
# made afresh.
nf_venv() {
  local dir=$1 mode=${2:-fresh} err
  if [ "$mode" = reuse ] && [ -x "$dir/bin/python" ] \
     && [ "$(nf_py_id "$dir/bin/python" 2>/dev/null)" = "$(nf_py_id "$NF_PY")" ]; then
    return 0
  fi
  rm -rf "$dir"
  err=$(mktemp)
  if ! "$NF_PY" -m venv "$dir" >/dev/null 2>"$err"; then
    rm -rf "$dir"
    if nf_apt_venv && "$NF_PY" -m venv "$dir" >/dev/null 2>"$err"; then
      :
    else
      cat "$err" >&2
      rm -f "$err"
      echo "neuroflow: could not make a virtual environment at $dir with $NF_PY." >&2
      echo "  Debian/Ubuntu: sudo apt install python3-venv; or choose another Python with PYTHON=..." >&2
      return 1
    fi
  fi
  rm -f "$err"
}

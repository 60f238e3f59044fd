# Sourced by scripts/run.sh and scripts/test.sh (from the repository root): `use_venv [EXTRA]` makes the
# project's virtual environment once, installs graphexec (editable) with the optional dependencies EXTRA
# (e.g. test) into it when pyproject.toml changed since the last install, and puts it first on PATH.
# PYTHON picks the interpreter (default: python3; 3.10 or newer); GRAPHEXEC_VENV the folder (default: .venv).
# Nothing is installed outside the venv, so a distribution's own python3 (PEP 668, "externally managed")
# works as it is.

MIN_PYTHON=3.10

say() { echo "graphexec setup: $*"; }

use_venv() {
  local extra=${1:-} python=${PYTHON:-python3} venv=${GRAPHEXEC_VENV:-$PWD/.venv}
  if ! command -v "$python" >/dev/null 2>&1; then
    say "no $python found: install Python $MIN_PYTHON or newer (Debian/Ubuntu: apt-get install python3 python3-venv), or set PYTHON=/path/to/python3"
    return 1
  fi
  if ! "$python" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON/./, }))"; then
    say "graphexec needs Python $MIN_PYTHON or newer; $python is $("$python" -c 'import platform; print(platform.python_version())'): set PYTHON=/path/to/python3.X"
    return 1
  fi
  local minor='import sys; print("%d.%d" % sys.version_info[:2])'
  if ! "$venv/bin/python" -c "" >/dev/null 2>&1; then
    _make_venv "$python" "$venv" || return 1
  elif [ "$("$venv/bin/python" -c "$minor")" != "$("$python" -c "$minor")" ]; then
    say "${venv#"$PWD/"} has Python $("$venv/bin/python" -c "$minor"), $python is $("$python" -c "$minor"): making it anew"
    _make_venv "$python" "$venv" || return 1
  fi

  # One line per installed extra ("" for none), each with the hash of the pyproject.toml it came from.
  local stamp="$venv/.graphexec-installed" key
  key="$("$venv/bin/python" -c 'import hashlib, sys; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest()[:16], sys.version.split()[0])') ${extra:-none}"
  if grep -qxF "$key" "$stamp" 2>/dev/null; then
    say "using ${venv#"$PWD/"} (up to date with pyproject.toml)"
  else
    say "installing graphexec${extra:+[$extra]} and its dependencies into ${venv#"$PWD/"} (about a minute the first time)"
    # compat: the repository's root goes on sys.path (a .pth file), so `python -m graphexec` finds the real
    # package from any folder, even one holding a clone named graphexec; the default editable finder
    # would let that folder win. setuptools calls compat transitional: should it go, the default serves.
    local install=("$venv/bin/python" -m pip install -qq --disable-pip-version-check -e ".${extra:+[$extra]}")
    "${install[@]}" --config-settings editable_mode=compat || "${install[@]}" || return 1
    { grep -vx ".* ${extra:-none}" "$stamp" 2>/dev/null || true; echo "$key"; } >"$stamp.new" && mv "$stamp.new" "$stamp"
  fi
  export VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH"
  hash -r
}

_make_venv() {
  local python=$1 venv=$2
  say "making a virtual environment in ${venv#"$PWD/"} with $(command -v "$python") ($("$python" -c 'import platform; print(platform.python_version())'))"
  rm -rf "$venv"
  if "$python" -c "import ensurepip" >/dev/null 2>&1; then
    "$python" -m venv "$venv" && return 0
  elif "$python" -m pip --version >/dev/null 2>&1; then
    # Debian/Ubuntu without python3-venv: no ensurepip, but the system's pip can put pip into the venv.
    "$python" -m venv --without-pip "$venv" &&
      "$python" -m pip --python "$venv/bin/python" install -q --disable-pip-version-check pip && return 0
  fi
  rm -rf "$venv"
  local minor
  minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  say "$python cannot make a virtual environment (no ensurepip, no pip): on Debian/Ubuntu apt-get install python3-venv (or python$minor-venv)"
  return 1
}

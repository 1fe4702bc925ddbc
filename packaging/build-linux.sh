#!/usr/bin/env bash
# Build Confidant's Linux installers from one frozen bundle, into dist/:
#   dist/confidant/                       the PyInstaller one-folder bundle
#   dist/confidant_<version>_amd64.deb    /opt/confidant + /usr/bin/confidant + .desktop + icon
#   dist/confidant-<version>-linux-x86_64.tar.gz   the bundle alone (unpack anywhere, run ./confidant/confidant)
#
# Quiet and idempotent: one line per step on stdout, everything else in dist/build.log; every run
# starts from a clean build/ and replaces the outputs.
#
# Environment:
#   PYTHON=.venv/bin/python   the build environment (must hold the app's dependencies)
#   CONFIDANT_CUDA=1          first rebuild llama-cpp-python with CUDA (-DGGML_CUDA=on) in that
#                             environment, bundle the CUDA runtime it links (libcudart, libcublas,
#                             libcublasLt) and make the .deb depend on the NVIDIA driver. Needs the
#                             CUDA toolkit (nvcc) on the build machine. See packaging/README.md.
#   SKIP_PYINSTALLER=1        reuse dist/confidant/ (repackaging only)
#   DEB_COMPRESS=gzip|xz      .deb compression (default gzip: fast; xz: smaller, slower)
#
# Options:
#   --model PATH.gguf         ship this chat model: the .deb installs it in /usr/share/confidant/models
#                             and writes /etc/confidant/settings.toml with llm_path set to it (a
#                             conffile: IT's later edits survive upgrades). The file is checked as
#                             Confidant checks models (header, size). The tarball stays the bundle alone.
set -euo pipefail

MODEL=
while [ $# -gt 0 ]; do
    case "$1" in
        --model) [ $# -ge 2 ] || { echo "[build-linux] --model needs a .gguf path" >&2; exit 2; }; MODEL=$2; shift 2 ;;
        --model=*) MODEL=${1#--model=}; shift ;;
        *) echo "[build-linux] unknown option: $1 (usage: build-linux.sh [--model PATH.gguf])" >&2; exit 2 ;;
    esac
done
if [ -n "$MODEL" ]; then  # resolved from where the script was called
    [ -f "$MODEL" ] || { echo "[build-linux] --model: no file at $MODEL" >&2; exit 1; }
    MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")
fi

cd "$(dirname "$0")/.."
REPO=$PWD
PY=${PYTHON:-$REPO/.venv/bin/python}
CUDA=${CONFIDANT_CUDA:-0}
LOG=$REPO/dist/build.log
started=$(date +%s)

step() { echo "[build-linux] $*"; echo "=== $* ($(date +%T))" >>"$LOG"; }
run() {
    if ! "$@" >>"$LOG" 2>&1; then
        echo "[build-linux] FAILED: $*" >&2
        echo "[build-linux] last lines of $LOG:" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}
layout() { "$PY" packaging/layout.py "$@"; }

[ -x "$PY" ] || { echo "[build-linux] no Python at $PY (set PYTHON=...)" >&2; exit 1; }
if [ -n "$MODEL" ]; then
    MODEL_TARGET=$(layout model-target "$MODEL") || { echo "[build-linux] --model: $MODEL is not a .gguf file" >&2; exit 1; }
    "$PY" -c 'import sys; from app.core.gguf_check import inspect_gguf, ModelFileError
try: inspect_gguf(sys.argv[1])
except ModelFileError as e: sys.exit(f"[build-linux] --model: {e}")' "$MODEL"
fi
mkdir -p dist
: >"$LOG"
VERSION=$(layout version)
BUNDLE=$(layout bundle-name)
PREFIX=$(layout prefix)
EXE=$(layout exe)

# ---------------------------------------------------------------- build environment
"$PY" -c "import PyInstaller" 2>/dev/null || { step "installing PyInstaller"; run "$PY" -m pip install -q "pyinstaller>=6.5"; }
"$PY" -c "import llama_cpp" 2>/dev/null || { echo "[build-linux] llama_cpp is not importable in $PY" >&2; exit 1; }

if [ "$CUDA" = 1 ]; then
    command -v nvcc >/dev/null || { echo "[build-linux] CONFIDANT_CUDA=1 needs the CUDA toolkit (nvcc)" >&2; exit 1; }
    LLAMA_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')
    step "rebuilding llama-cpp-python $LLAMA_VERSION with CUDA (GGML_CUDA=on, portable CPU code)"
    CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=off ${CMAKE_ARGS:-}" FORCE_CMAKE=1 \
        run "$PY" -m pip install --no-deps --force-reinstall --no-cache-dir \
        "llama-cpp-python==$LLAMA_VERSION"
    SUFFIX=-cuda
else
    SUFFIX=
fi

# ---------------------------------------------------------------- the bundle
if [ "${SKIP_PYINSTALLER:-0}" != 1 ] || [ ! -x "dist/$BUNDLE/$EXE" ]; then
    step "freezing with PyInstaller (one folder, several minutes)"
    rm -rf "build/pyinstaller" "dist/$BUNDLE"
    CONFIDANT_CUDA=$CUDA run "$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath dist --workpath build/pyinstaller packaging/confidant.spec
fi
while read -r required; do
    [ -e "dist/$BUNDLE/$required" ] || { echo "[build-linux] the bundle lacks $required" >&2; exit 1; }
done < <(layout required)
step "bundle: dist/$BUNDLE ($(du -sh "dist/$BUNDLE" | cut -f1))"

# ---------------------------------------------------------------- .deb
DEB=dist/${BUNDLE}${SUFFIX}_${VERSION}_amd64.deb
ROOT=build/deb-root
step "packaging $DEB"
rm -rf "$ROOT"
mkdir -p "$ROOT/DEBIAN"
while IFS=$'\t' read -r target kind; do
    mkdir -p "$ROOT$(dirname "$target")"
    case "$kind" in
        bundle) cp -a "dist/$BUNDLE" "$ROOT$target" ;;
        symlink:*) ln -s "${kind#symlink:}" "$ROOT$target" ;;
        repo:*) install -m 0644 "${kind#repo:}" "$ROOT$target" ;;
        *) echo "[build-linux] unknown layout entry: $target $kind" >&2; exit 1 ;;
    esac
done < <(layout deb-files)
if [ -n "$MODEL" ]; then
    step "shipping the model $(basename "$MODEL") ($(du -h "$MODEL" | cut -f1)) as $MODEL_TARGET"
    mkdir -p "$ROOT$(dirname "$MODEL_TARGET")"
    cp "$MODEL" "$ROOT$MODEL_TARGET"
    SETTINGS=$(layout machine-settings-path)
    mkdir -p "$ROOT$(dirname "$SETTINGS")"
    layout machine-settings "$MODEL_TARGET" >"$ROOT$SETTINGS"
    echo "$SETTINGS" >"$ROOT/DEBIAN/conffiles"
fi
chmod -R u+rwX,go+rX,go-w "$ROOT"
DEPENDS=$(layout deb-depends)
[ "$CUDA" = 1 ] && DEPENDS="$DEPENDS, $(layout deb-cuda-depends)"
SIZE_KB=$(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
cat >"$ROOT/DEBIAN/control" <<EOF
Package: confidant
Version: $VERSION
Architecture: amd64
Maintainer: Confidant maintainers <confidant@example.org>
Installed-Size: $SIZE_KB
Depends: $DEPENDS
Section: utils
Priority: optional
Homepage: https://example.org/confidant
Description: private chat with your documents
 Confidant answers questions about your own files (PDF, Word, text, web pages)
 entirely on this computer: local text extraction, embeddings, an embedded
 vector store and a quantized GGUF Llama model on the GPU or the CPU.
 No document leaves the machine. Machine-wide settings: /etc/confidant/settings.toml.
EOF
# GUI menus pick up the new .desktop entry and icon (both tools are optional on the target).
cat >"$ROOT/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t /usr/share/icons/hicolor || true
exit 0
EOF
cp "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/postrm"
chmod 0755 "$ROOT/DEBIAN/postinst" "$ROOT/DEBIAN/postrm"
rm -f "dist/${BUNDLE}${SUFFIX}_"*.deb
# gzip by default: fast on 2 cores and readable by every dpkg; DEB_COMPRESS=xz for a smaller
# release .deb (several times slower).
run dpkg-deb --build --root-owner-group -Z"${DEB_COMPRESS:-gzip}" -z"${DEB_LEVEL:-6}" "$ROOT" "$DEB"
step "deb: $DEB ($(du -h "$DEB" | cut -f1))"

# ---------------------------------------------------------------- tarball
TAR=dist/${BUNDLE}${SUFFIX}-${VERSION}-linux-x86_64.tar.gz
step "packaging $TAR"
rm -f "dist/${BUNDLE}${SUFFIX}-"*-linux-x86_64.tar.gz
run tar -C dist --owner=0 --group=0 -czf "$TAR" "$BUNDLE"
step "tarball: $TAR ($(du -h "$TAR" | cut -f1))"
rm -rf "$ROOT"

step "done in $(( $(date +%s) - started )) s (log: $LOG)"

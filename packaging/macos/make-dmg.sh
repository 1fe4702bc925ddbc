#!/usr/bin/env bash
# Build dist/Confidant-<version>.dmg on macOS from the PyInstaller bundle:
#   pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/confidant.spec
#   bash packaging/macos/make-dmg.sh
# The spec's BUNDLE step (macOS only) wraps the one-folder bundle in dist/Confidant.app with the
# Info.plist template next to this script. Signing/notarizing: set CODESIGN_IDENTITY (and run
# `xcrun notarytool submit ... --wait` on the .dmg afterwards; not automated here).
#
#   bash packaging/macos/make-dmg.sh --model PATH.gguf
# ships a chat model (as build-linux.sh --model): it goes inside the app
# (Confidant.app/Contents/Resources/models/, signed with it), and the dmg carries
# "settings.toml for IT" with llm_path set to it. A dmg cannot write machine settings itself: IT
# installs that file as /Library/Application Support/Confidant/settings.toml (MDM or a script).
set -euo pipefail
MODEL=
while [ $# -gt 0 ]; do
    case "$1" in
        --model) [ $# -ge 2 ] || { echo "make-dmg.sh: --model needs a .gguf path" >&2; exit 2; }; MODEL=$2; shift 2 ;;
        --model=*) MODEL=${1#--model=}; shift ;;
        *) echo "make-dmg.sh: unknown option: $1 (usage: make-dmg.sh [--model PATH.gguf])" >&2; exit 2 ;;
    esac
done
[ -z "$MODEL" ] || [ -f "$MODEL" ] || { echo "make-dmg.sh: --model: no file at $MODEL" >&2; exit 1; }
[ -z "$MODEL" ] || MODEL=$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")
cd "$(dirname "$0")/../.."
[ "$(uname)" = Darwin ] || { echo "make-dmg.sh: runs on macOS only (needs hdiutil)" >&2; exit 1; }
PY=${PYTHON:-.venv/bin/python}
VERSION=$("$PY" packaging/layout.py version)
APP=dist/Confidant.app
EXE=$APP/Contents/MacOS/confidant
PLIST=$APP/Contents/Info.plist
[ -x "$EXE" ] || { echo "make-dmg.sh: $EXE missing: run PyInstaller with packaging/confidant.spec first" >&2; exit 1; }
[ -f "$PLIST" ] || { echo "make-dmg.sh: $PLIST missing" >&2; exit 1; }
if [ -n "$MODEL" ]; then
    "$PY" -c 'import sys; from app.core.gguf_check import inspect_gguf, ModelFileError
try: inspect_gguf(sys.argv[1])
except ModelFileError as e: sys.exit(f"make-dmg.sh: --model: {e}")' "$MODEL"
    mkdir -p "$APP/Contents/Resources/models"
    cp "$MODEL" "$APP/Contents/Resources/models/"
    MODEL_TARGET="/Applications/Confidant.app/Contents/Resources/models/$(basename "$MODEL")"
fi
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --force --deep --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$APP"
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
if [ -n "$MODEL" ]; then
    "$PY" packaging/layout.py machine-settings "$MODEL_TARGET" >"$STAGE/settings.toml for IT"
fi
DMG=dist/Confidant-$VERSION.dmg
rm -f "$DMG"
hdiutil create -volname "Confidant" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
echo "make-dmg.sh: $DMG ($(du -h "$DMG" | cut -f1))"

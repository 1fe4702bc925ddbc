#!/usr/bin/env bash
# Build dist/Confidant-<version>.dmg on macOS from the PyInstaller bundle:
#   pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/confidant.spec
#   bash packaging/macos/make-dmg.sh
# The spec's BUNDLE step (macOS only) wraps the one-folder bundle in dist/Confidant.app with the
# Info.plist template next to this script. Signing/notarizing: set CODESIGN_IDENTITY (and run
# `xcrun notarytool submit ... --wait` on the .dmg afterwards; not automated here).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname)" = Darwin ] || { echo "make-dmg.sh: runs on macOS only (needs hdiutil)" >&2; exit 1; }
PY=${PYTHON:-.venv/bin/python}
VERSION=$("$PY" packaging/layout.py version)
APP=dist/Confidant.app
EXE=$APP/Contents/MacOS/confidant
PLIST=$APP/Contents/Info.plist
[ -x "$EXE" ] || { echo "make-dmg.sh: $EXE missing: run PyInstaller with packaging/confidant.spec first" >&2; exit 1; }
[ -f "$PLIST" ] || { echo "make-dmg.sh: $PLIST missing" >&2; exit 1; }
if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    codesign --force --deep --options runtime --timestamp --sign "$CODESIGN_IDENTITY" "$APP"
fi
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG=dist/Confidant-$VERSION.dmg
rm -f "$DMG"
hdiutil create -volname "Confidant" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
echo "make-dmg.sh: $DMG ($(du -h "$DMG" | cut -f1))"

#!/usr/bin/env bash
# Smoke-test the built .deb as a workstation would run it:
#   - unpacked into a temporary root (dpkg -x), nothing from the repository or the venv used;
#   - no network (unshare -rn: a fresh network namespace with only a down loopback), or, where
#     unprivileged namespaces are not allowed, the offline environment variables alone;
#   - env -i: no PYTHONPATH/PYTHONHOME/VIRTUAL_ENV, PATH=/usr/bin:/bin, a temporary HOME and
#     CONFIDANT_HOME, QT_QPA_PLATFORM=offscreen;
#   - runs `confidant doctor`, `confidant --self-test`, and ingests and searches a PDF (made by
#     the test helper with the venv's Python) from /opt/confidant inside that root.
# Exits non-zero on any failure. Usage: bash packaging/ci-smoke.sh [path/to/confidant_*.deb]
set -euo pipefail

cd "$(dirname "$0")/.."
DEB=${1:-$(ls -t dist/confidant*_amd64.deb 2>/dev/null | head -n 1 || true)}
[ -n "$DEB" ] && [ -f "$DEB" ] || { echo "[ci-smoke] no .deb in dist/ (run packaging/build-linux.sh)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/confidant-smoke.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$ROOT" "$WORK/home" "$WORK/data"
started=$(date +%s)

echo "[ci-smoke] installing $DEB into $ROOT"
dpkg -x "$DEB" "$ROOT"
APP=$ROOT/opt/confidant/confidant
[ -x "$APP" ] || { echo "[ci-smoke] $APP missing or not executable" >&2; exit 1; }
[ "$(readlink "$ROOT/usr/bin/confidant")" = /opt/confidant/confidant ] || { echo "[ci-smoke] /usr/bin/confidant link is wrong" >&2; exit 1; }
for f in usr/share/applications/confidant.desktop usr/share/icons/hicolor/scalable/apps/confidant.svg; do
    [ -s "$ROOT/$f" ] || { echo "[ci-smoke] $f missing from the .deb" >&2; exit 1; }
done
if command -v desktop-file-validate >/dev/null; then
    desktop-file-validate "$ROOT/usr/share/applications/confidant.desktop"
fi

# No network: a private network namespace when the kernel allows it.
if unshare -rn true 2>/dev/null; then
    NONET=(unshare -rn)
    echo "[ci-smoke] network: none (unshare -rn)"
else
    NONET=()
    echo "[ci-smoke] network: unshare -rn unavailable; relying on the offline environment only"
fi
CLEAN_ENV=(env -i PATH=/usr/bin:/bin HOME="$WORK/home" LANG=C.UTF-8
           CONFIDANT_HOME="$WORK/data" CONFIDANT_MACHINE_SETTINGS="$WORK/no-machine-settings.toml"
           QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1)

check() {
    local name=$1; shift
    local t0=$SECONDS
    echo "[ci-smoke] \$ confidant $*"
    if ! "${NONET[@]}" "${CLEAN_ENV[@]}" "$APP" "$@" 2>&1 | sed 's/^/    /'; then
        echo "[ci-smoke] FAILED: confidant $* (${name})" >&2
        exit 1
    fi
    echo "[ci-smoke] ok: $name ($((SECONDS - t0)) s)"
}
check doctor doctor
# PDFs must be read by PDFium inside the bundle, not by the slow fallback.
if ! "${NONET[@]}" "${CLEAN_ENV[@]}" "$APP" doctor 2>&1 | grep -q "^PDF reader *PDFium"; then
    echo "[ci-smoke] FAILED: the bundle reads PDFs without PDFium (see 'PDF reader' above)" >&2
    exit 1
fi
echo "[ci-smoke] ok: PDFium in the bundle"
check self-test --self-test

# A PDF through the bundle: its pages are read and chunked in the PDF worker process, which the
# frozen app must be able to start (the self-test's sample is Markdown, read in-process).
mkdir -p "$WORK/docs"
PY=${CONFIDANT_VENV:-.venv}/bin/python
"$PY" -c "import sys; from tests.pdfmaker import make_pdf; make_pdf(sys.argv[1], [
    'Opening hours of the harbour office are nine to five.',
    'Mooring permits are renewed every April at the harbour office.',
    'The lighthouse keeper logs every passing vessel.'], [(0, 'Harbour rules', 2)])" \
    "$WORK/docs/harbour.pdf"
check ingest-pdf ingest "$WORK/docs/harbour.pdf"
found=$("${NONET[@]}" "${CLEAN_ENV[@]}" "$APP" search "When are mooring permits renewed?" -k 1 --json)
echo "    $found"
if ! printf '%s' "$found" | grep -q '"page": 2'; then
    echo "[ci-smoke] FAILED: the PDF's page 2 was not found first" >&2
    exit 1
fi
echo "[ci-smoke] ok: a PDF read, chunked and found by page in the bundle"

echo "[ci-smoke] passed in $(( $(date +%s) - started )) s"

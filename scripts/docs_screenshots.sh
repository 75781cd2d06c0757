#!/usr/bin/env bash
# Screenshots of the built documentation site, as a person would see it (issue 24): the home page, an
# attack page with equations, the performance page with its plots and one API page, taken with headless
# Chromium (Debian's /usr/bin/chromium; `apt-get install chromium`) from the site served on localhost.
#   bash scripts/docs_screenshots.sh [OUT_DIR]      (after `make docs`)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/assets/screenshots}
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROMIUM" ] || { echo "docs_screenshots: no chromium on PATH (apt-get install chromium)" >&2; exit 2; }
[ -f site/index.html ] || { echo "docs_screenshots: build the site first (make docs)" >&2; exit 2; }
mkdir -p "$OUT"
PORT=${PORT:-8765}
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory site >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER' EXIT
sleep 1
shoot() {  # name, path, height
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --virtual-time-budget=8000 --window-size=1280,"$3" --screenshot="$OUT/$1.png" "http://127.0.0.1:$PORT/$2" \
    >/dev/null 2>&1
  echo "wrote $OUT/$1.png"
}
shoot home "" 1100
shoot attack_sea "attacks/apgd-sea/" 1400
shoot performance "performance/" 2000
shoot api_models "api/models/" 1400

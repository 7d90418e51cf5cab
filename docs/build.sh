#!/usr/bin/env bash
# Regenerates the pictures in docs/ from the shipped examples, never by hand:
# docs/img/report.png is the HTML report of examples/cohort.strat as headless
# Chromium draws it (Chromium comes with tests/engines/setup.sh). Run it after
# a change to the HTML report (crates/strat-render/src/report_html.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "docs/build.sh: Chromium is missing: bash tests/engines/setup.sh installs it" >&2
  exit 1
fi
cargo build -q -p strat-cli
mkdir -p out/docs docs/img
target/debug/strat run examples/cohort.strat --emit cohort --quiet \
  -o out/docs/cohort.parquet --report out/docs/cohort.html
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir="$profile" \
  --window-size=1100,1900 --screenshot="$PWD/docs/img/report.png" \
  "file://$PWD/out/docs/cohort.html"
echo "wrote docs/img/report.png"

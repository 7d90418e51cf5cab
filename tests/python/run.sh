#!/usr/bin/env bash
# The Python package's tests (part of the README's test command, after the
# Rust tests, whose debug build it reuses: nothing is compiled twice).
#   1. target/python-venv, the project's virtual environment (never the
#      system Python): maturin, pytest and the libraries the tests hand
#      tables over from (pyarrow, pandas, Polars, DuckDB, DataFusion), pinned;
#   2. `maturin develop --profile dev`: the package from this checkout;
#   3. pytest tests/python (against target/debug/strat, the command line);
#   4. the wheel alone in target/python-min-venv, without pyarrow, pandas
#      or Polars (tests/python/minimal.py).
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=target/python-venv
PY=$VENV/bin/python
PINS=(maturin==1.16.0 pytest==8.4.2 pyarrow==22.0.0 pandas==2.3.3 polars==1.35.2 duckdb==2.0.1
  datafusion==55.0.0)

[ -x "$PY" ] || python3 -m venv "$VENV"
if ! "$PY" -m pip freeze 2>/dev/null | grep -qx "datafusion==55.0.0"; then
  "$PY" -m pip install --quiet --disable-pip-version-check "${PINS[@]}"
fi

export VIRTUAL_ENV=$PWD/$VENV
"$VENV/bin/maturin" develop --profile dev --manifest-path crates/strat-python/Cargo.toml 2>&1 \
  | grep -E "^(💥|error|warning: unused)|Installed" || true
"$PY" -c "import strat" # the build above succeeded
cargo build --quiet -p strat-cli # the command line the tests compare with
"$PY" -m pytest tests/python -q -p no:cacheprovider

MIN=target/python-min-venv
rm -rf "$MIN" target/python-wheels
"$VENV/bin/maturin" build --profile dev --manifest-path crates/strat-python/Cargo.toml \
  --out target/python-wheels --quiet
python3 -m venv "$MIN"
"$MIN/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps target/python-wheels/strat-*.whl
(cd target && "../$MIN/bin/python" ../tests/python/minimal.py ..)

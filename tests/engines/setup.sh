#!/usr/bin/env bash
# Installs the SQL engines the conformance suite (tests/integration/sql.rs)
# runs `strat sql` output on. Idempotent: installs only what is missing.
#   Python      — a project virtual environment, target/engines-venv (never the
#                 system Python: Debian and Ubuntu refuse pip there, PEP 668);
#                 the tests run tests/engines/run_sql.py with its python.
#   DuckDB      — the Python package, pinned.
#   PostgreSQL  — the Debian server; tests/engines/run_sql.py starts a
#                 throw-away cluster on a socket in a temporary folder.
#   Spark       — PySpark from PyPI, pinned, in local mode; needs Java 17
#                 (Debian's openjdk-17-jre-headless when java is missing).
#   DataFusion  — in-process in the test binary, nothing to install.
#   Chromium    — Debian's, headless, for the HTML report's browser test.
set -euo pipefail

DUCKDB_VERSION=2.0.1
PYSPARK_VERSION=3.5.7

cd "$(dirname "$0")/../.."
VENV=target/engines-venv
PY=$VENV/bin/python

if [ ! -x "$PY" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" 2>/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup.sh: Python's venv module is missing and installing it needs root (apt-get install python3-venv)" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  mkdir -p target
  python3 -m venv "$VENV"
fi

pip_install() {
  "$PY" -m pip install --quiet --disable-pip-version-check "$1"
}

if ! "$PY" -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  pip_install "duckdb==$DUCKDB_VERSION"
fi

if ! "$PY" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  pip_install "pyspark==$PYSPARK_VERSION"
fi

if ! command -v java >/dev/null 2>&1 && [ -z "${JAVA_HOME:-}" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: Java 17 is missing and installing it needs root (apt-get install openjdk-17-jre-headless)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: PostgreSQL is missing and installing it needs root (apt-get install postgresql)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# Debian's Chromium, headless, for the HTML report's browser test
# (tests/integration/browser.rs).
if ! [ -x /usr/bin/chromium ] && ! [ -x /usr/bin/chromium-browser ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: Chromium is missing and installing it needs root (apt-get install chromium)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

echo "python $PY"
"$PY" -c "import duckdb; print('duckdb', duckdb.__version__)"
"$PY" -c "import pyspark; print('pyspark', pyspark.__version__)"
java -version 2>&1 | head -1
ls -d /usr/lib/postgresql/*/bin | sed 's/^/postgresql /'
(/usr/bin/chromium --version || /usr/bin/chromium-browser --version) 2>/dev/null | head -1

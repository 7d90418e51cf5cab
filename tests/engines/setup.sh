#!/usr/bin/env bash
# Installs the SQL engines the conformance suite (tests/integration/sql.rs)
# runs `strat sql` output on. Idempotent: installs only what is missing.
#   DuckDB      — the Python package, pinned.
#   PostgreSQL  — the Debian server; tests/engines/run_sql.py starts a
#                 throw-away cluster on a socket in a temporary folder.
#   Spark       — PySpark from PyPI, pinned, in local mode; needs Java 17
#                 (Debian's openjdk-17-jre-headless when java is missing).
#   DataFusion  — in-process in the test binary, nothing to install.
set -euo pipefail

DUCKDB_VERSION=2.0.1
PYSPARK_VERSION=3.5.7

if ! python3 -c "import duckdb, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION"
fi

if ! python3 -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$PYSPARK_VERSION')" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check "pyspark==$PYSPARK_VERSION"
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

python3 -c "import duckdb; print('duckdb', duckdb.__version__)"
python3 -c "import pyspark; print('pyspark', pyspark.__version__)"
java -version 2>&1 | head -1
ls -d /usr/lib/postgresql/*/bin | sed 's/^/postgresql /'

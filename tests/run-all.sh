#!/usr/bin/env bash
# The whole test suite, set-up included: installs the SQL engines the
# conformance suite needs (tests/engines/setup.sh), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/engines/setup.sh
cargo test --workspace --locked

#!/usr/bin/env bash
# The whole test suite, set-up included (the README's test command; CI runs it
# through .ci/run): the formatting and lint gates first (they are fast), then
# the SQL engines the conformance suite needs (tests/engines/setup.sh), then
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash tests/engines/setup.sh
cargo test --workspace --locked

#!/usr/bin/env bash
# The whole test suite, set-up included (the README's test command; CI runs it
# through .ci/run): the formatting and lint gates first (they are fast), then
# the SQL engines the conformance suite needs (tests/engines/setup.sh), then
# every Rust test, then the Python package's (tests/python/run.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
bash tests/engines/setup.sh
# The Python package's native module is tested from Python (below), where
# maturin builds it; cargo would link it a second way for nothing.
cargo test --workspace --locked --exclude strat-python
bash tests/python/run.sh

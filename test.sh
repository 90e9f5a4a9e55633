#!/usr/bin/env bash
# Runs the whole test suite: formatting, every unit, property, conformance and end-to-end test
# (the real server driven by aws-cli and boto3), then clippy. Installs what it needs first.
# One cargo profile (dev, dependencies optimised) in a persistent target directory outside the
# clone, so a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/setup.sh --tests
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build"
cargo build --locked --workspace --bins --tests

echo "== tests"
cargo test --locked --workspace --no-fail-fast

echo "== clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== all checks passed"

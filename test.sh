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

# The target directory outlives the clone and may be shared by several checkouts. Cargo judges
# a workspace crate fresh when its sources are older than its artefacts, with paths relative to
# the workspace, so a checkout whose files are older than another checkout's build would test
# that build's binaries. When the checkout changes, make this one's files newer than any
# artefact (dependencies are unaffected; the workspace crates rebuild once).
mkdir -p "$CARGO_TARGET_DIR"
checkout_marker="$CARGO_TARGET_DIR/.cairn-checkout"
if [ "$(cat "$checkout_marker" 2>/dev/null)" != "$PWD" ]; then
  echo "== new checkout for this target directory: rebuilding the workspace crates"
  git ls-files -z 2>/dev/null | xargs -0 -r touch -c
  echo "$PWD" > "$checkout_marker"
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== build"
cargo build --locked --workspace --bins --tests

echo "== tests"
cargo test --locked --workspace --no-fail-fast

echo "== clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
echo "== all checks passed"

#!/usr/bin/env bash
# Builds Cairn (release) and starts a single-node server: S3 on 127.0.0.1:9000, admin API on
# 127.0.0.1:9001, data in ./cairn-data. Extra arguments go to `cairn server` (see --help).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
exec cargo run --release --locked --bin cairn -- server "$@"

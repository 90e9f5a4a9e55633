#!/usr/bin/env bash
# Reproduces docs/PERFORMANCE.md: release server on a fresh data dir, then the load generator.
set -euo pipefail
# Build first: cargo build --release --bin cairn --bin cairn-load (the release profile).
BIN=${BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}/release}
DISKS=${DISKS:-1}
DATA=$(mktemp -d /tmp/cairn-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
$BIN/cairn server --data $DATA/data --disks $DISKS --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/out.txt 2> $DATA/err.txt &
PID=$!
until grep -q Ready. $DATA/out.txt; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/out.txt | sed 's/S3 API: //')
export AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY
for spec in "64MiB 4" "1MiB 16" "4KiB 32"; do
  set -- $spec
  echo "## size=$1 concurrency=$2 disks=$DISKS"
  $BIN/cairn-load --endpoint $EP --size $1 --concurrency $2 --duration ${DURATION:-20} --server-pid $PID
done
kill -TERM $PID; wait $PID || true
rm -rf $DATA

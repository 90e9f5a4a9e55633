#!/bin/bash
# One cairn-load run (PUT then GET, both lines printed) against a fresh release server on a fresh
# data directory: for interleaved A/B comparisons of builds (docs/PERFORMANCE.md).
# usage: [DISKS=N] benches/one-load.sh BINDIR SIZE CONCURRENCY SECONDS [CAIRN_*=value ...]
BIN=$1; SIZE=$2; CONC=$3; DUR=$4; shift 4
DATA=$(mktemp -d /tmp/cairn-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
env "$@" $BIN/cairn server --data $DATA/data --disks ${DISKS:-1} --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/out.txt 2> $DATA/err.txt &
PID=$!
until grep -q Ready. $DATA/out.txt; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/out.txt | sed 's/S3 API: //')
AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR --server-pid $PID | grep -E "PUT|GET" | sed 's/latency.*(/(/'
kill -TERM $PID; wait $PID; rm -rf $DATA

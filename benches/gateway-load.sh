#!/bin/bash
# One cairn-load run (PUT then GET) against a gateway whose metadata is a group of MEMBERS
# separate meta-node processes (default 1; gRPC on 127.0.0.1), all fresh release processes:
# compare with benches/one-load.sh (everything in one process) to see what the metadata round
# trips and replication cost (docs/PERFORMANCE.md).
# usage: [DISKS=N] benches/gateway-load.sh BINDIR SIZE CONCURRENCY SECONDS [MEMBERS]  (the gateway's own disks, default 1)
set -e
BIN=$1; SIZE=$2; CONC=$3; DUR=$4; MEMBERS=${5:-1}
DATA=$(mktemp -d /tmp/cairn-gw-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000
. "$(dirname "$0")/meta-group.sh"
meta_group $BIN $MEMBERS $DATA
$BIN/cairn gateway --meta $MA --data $DATA/gw --disks ${DISKS:-1} --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/gw.out 2> $DATA/gw.err &
GPID=$!
trap 'kill -TERM $GPID ${MPIDS[@]}; wait $GPID ${MPIDS[@]}; rm -rf $DATA' EXIT
until grep -q Ready. $DATA/gw.out; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/gw.out | sed 's/S3 API: //')
AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR | grep -E "PUT|GET"
# How the gateway batched its chunk lookups (sum / count = chunks per metadata call).
ADM=$(grep "Admin API" $DATA/gw.out | sed 's/Admin API: //')
curl -s $ADM/metrics | grep -E "^cairn_chunk_lookup_batch_(sum|count) " | tr '\n' ' '; echo

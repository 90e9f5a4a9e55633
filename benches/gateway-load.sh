#!/bin/bash
# One cairn-load run (PUT then GET) against a gateway whose metadata is a separate meta-node
# process (gRPC on 127.0.0.1), both fresh release processes: compare with benches/one-load.sh
# (everything in one process) to see what the metadata round trips cost (docs/PERFORMANCE.md).
# usage: benches/gateway-load.sh BINDIR SIZE CONCURRENCY SECONDS
set -e
BIN=$1; SIZE=$2; CONC=$3; DUR=$4
DATA=$(mktemp -d /tmp/cairn-gw-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000
$BIN/cairn meta-node --data $DATA/meta --listen 127.0.0.1:0 > $DATA/meta.out 2> $DATA/meta.err &
MPID=$!
until grep -q Ready. $DATA/meta.out; do sleep 0.2; done
MA=$(grep "Metadata API" $DATA/meta.out | sed 's/Metadata API: //')
$BIN/cairn gateway --meta $MA --data $DATA/gw --disks 1 --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/gw.out 2> $DATA/gw.err &
GPID=$!
trap 'kill -TERM $GPID $MPID; wait $GPID $MPID; rm -rf $DATA' EXIT
until grep -q Ready. $DATA/gw.out; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/gw.out | sed 's/S3 API: //')
AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR | grep -E "PUT|GET"

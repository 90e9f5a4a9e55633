#!/bin/bash
# One cairn-load run (PUT then GET) against a gateway whose shards are on NODES separate
# storage-node processes (DISKS disks each; default 1 node of 3 disks) and whose metadata is one
# meta-node, all fresh release processes on 127.0.0.1: compare with benches/one-load.sh BINDIR
# SIZE CONC SECONDS NODES*DISKS (the same disks in one process) to see what the shard API costs
# (docs/PERFORMANCE.md).
# usage: benches/storage-load.sh BINDIR SIZE CONCURRENCY SECONDS [NODES] [DISKS]
set -e
BIN=$1; SIZE=$2; CONC=$3; DUR=$4; NODES=${5:-1}; DISKS=${6:-3}
DATA=$(mktemp -d /tmp/cairn-sn-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000
. "$(dirname "$0")/meta-group.sh"
meta_group $BIN 1 $DATA
SPIDS=(); SA=""
for i in $(seq 1 $NODES); do
  $BIN/cairn storage-node --data $DATA/sn$i --disks $DISKS --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 > $DATA/sn$i.out 2> $DATA/sn$i.err &
  SPIDS+=($!)
done
for i in $(seq 1 $NODES); do
  until grep -q Ready. $DATA/sn$i.out; do sleep 0.2; done
  SA="$SA${SA:+,}$(grep "Shard API" $DATA/sn$i.out | sed 's/Shard API: //')"
done
$BIN/cairn gateway --meta $MA --storage $SA --data $DATA/gw --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/gw.out 2> $DATA/gw.err &
GPID=$!
trap 'kill -TERM $GPID ${SPIDS[@]} ${MPIDS[@]}; wait $GPID ${SPIDS[@]} ${MPIDS[@]}; rm -rf $DATA' EXIT
until grep -q Ready. $DATA/gw.out; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/gw.out | sed 's/S3 API: //')
AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR | grep -E "PUT|GET"

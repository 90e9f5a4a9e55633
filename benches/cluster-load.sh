#!/bin/bash
# One cairn-load run (PUT then GET) against a gateway placing shards by the cluster map
# (`--cluster`, RS 4+2) over NODES storage-node processes in three zones (one disk each) and one
# meta-node, all fresh release processes on 127.0.0.1. With DOWN=N, N storage nodes are killed
# (-9) between the PUT and the GET phase: the GET figure is then a degraded read. With REPAIR=1
# they are killed before the PUT phase instead (degraded writes: their shards go to spare
# disks), started again after the GET phase, and the time repair takes to bring every chunk
# home is reported (repair unthrottled). Compare with benches/one-load.sh
# BINDIR SIZE CONC SECONDS 6 (`cairn server --disks 6`: the same scheme, one process)
# (docs/PERFORMANCE.md).
# usage: [DOWN=N] [REPAIR=1] benches/cluster-load.sh BINDIR SIZE CONCURRENCY SECONDS [NODES]
set -e
BIN=$1; SIZE=$2; CONC=$3; DUR=$4; NODES=${5:-6}; DOWN=${DOWN:-0}
DATA=$(mktemp -d /tmp/cairn-cl-bench.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000 CAIRN_REPAIR_MAX_BYTES_PER_SEC=0
. "$(dirname "$0")/meta-group.sh"
meta_group $BIN 1 $DATA
SPIDS=(); SADDR=()
start_node() {
  $BIN/cairn storage-node --data $DATA/sn$1 --disks 1 --listen ${2:-127.0.0.1:0} --metrics-listen 127.0.0.1:0 \
    --meta $MA --zone zone-$(( $1 % 3 )) > $DATA/sn$1.out 2>> $DATA/sn$1.err &
  SPIDS[$1]=$!
  until grep -q Ready. $DATA/sn$1.out; do sleep 0.2; done
  SADDR[$1]=$(grep "Shard API" $DATA/sn$1.out | sed 's/Shard API: //')
}
for i in $(seq 0 $((NODES - 1))); do start_node $i; done
$BIN/cairn gateway --meta $MA --cluster --data $DATA/gw --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 > $DATA/gw.out 2> $DATA/gw.err &
GPID=$!
trap 'kill -TERM $GPID ${SPIDS[@]} ${MPIDS[@]} 2>/dev/null; wait $GPID ${SPIDS[@]} ${MPIDS[@]}; rm -rf $DATA' EXIT
until grep -q Ready. $DATA/gw.out; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/gw.out | sed 's/S3 API: //')
ADMIN=$(grep "Admin API" $DATA/gw.out | sed 's/Admin API: //')
KILL=""
for i in $(seq 1 $DOWN); do KILL="$KILL ${SPIDS[$((i * 2 - 1))]}"; done
if [ -n "$REPAIR" ] && [ -n "$KILL" ]; then
  kill -9 $KILL
  AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY \
    $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR | grep -E "PUT|GET"
else
  AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY \
    $BIN/cairn-load --endpoint $EP --size $SIZE --concurrency $CONC --duration $DUR ${KILL:+--before-get "kill -9 $KILL"} | grep -E "PUT|GET"
fi
if [ -n "$REPAIR" ] && [ -n "$KILL" ]; then
  repair() { curl -s -u $CAIRN_ROOT_ACCESS_KEY:$CAIRN_ROOT_SECRET_KEY $ADMIN/admin/v1/repair; }
  # Every chunk written with its nodes down is queued (the worker counts it within 5 s).
  until [ "$(repair | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])')" != 0 ]; do sleep 1; done
  for i in $(seq 1 $DOWN); do n=$((i * 2 - 1)); start_node $n ${SADDR[$n]}; done
  T0=$(date +%s.%N)
  until [ "$(repair | python3 -c 'import json,sys; print(json.load(sys.stdin)["queued"])')" = 0 ]; do sleep 0.2; done
  T1=$(date +%s.%N)
  repair | python3 -c "
import json,sys
s=json.load(sys.stdin); w=s['worker']
print(f'REPAIR {w[\"total_items\"]} chunks, {w[\"total_bytes\"]/2**20:.1f} MiB of shards written home in {$T1-$T0:.1f} s: {w[\"total_bytes\"]/2**20/($T1-$T0):.1f} MiB/s')"
fi

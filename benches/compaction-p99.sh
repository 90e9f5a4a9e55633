#!/bin/bash
# PUT latency (1 MiB objects, 8 clients) on an idle server, then while compaction rewrites the
# segments a mass delete left half dead (docs/PERFORMANCE.md, "Space reclamation").
# usage: benches/compaction-p99.sh BINDIR [COMPACTION_BYTES_PER_SEC]
set -e
BIN=$1; RATE=${2:-33554432}
DATA=$(mktemp -d /tmp/cairn-compact.XXXX)
export CAIRN_ROOT_ACCESS_KEY=CKBENCH0000000000001 CAIRN_ROOT_SECRET_KEY=bench-secret-0000000000000000
export AWS_ACCESS_KEY_ID=$CAIRN_ROOT_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CAIRN_ROOT_SECRET_KEY
CAIRN_GC_GRACE=1s CAIRN_SEGMENT_BYTES=$((64 << 20)) CAIRN_COMPACTION_DEAD_RATIO=0.4 \
  CAIRN_COMPACTION_MAX_BYTES_PER_SEC=$RATE \
  $BIN/cairn server --data $DATA/data --disks 1 --s3-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  > $DATA/out.txt 2> $DATA/err.txt &
PID=$!
trap 'kill -TERM $PID; wait $PID; rm -rf $DATA' EXIT
until grep -q Ready. $DATA/out.txt; do sleep 0.2; done
EP=$(grep "S3 API" $DATA/out.txt | sed 's/S3 API: //')
ADMIN=$(grep "Admin API" $DATA/out.txt | sed 's/Admin API: //')
gc() { curl -s -u "$CAIRN_ROOT_ACCESS_KEY:$CAIRN_ROOT_SECRET_KEY" $ADMIN/admin/v1/gc; }
compaction() { gc | python3 -c 'import json,sys; w=[w for w in json.load(sys.stdin)["workers"] if w["name"]=="compaction"][0]; print(w["state"], w["total_bytes"], w["progress_done"], w["progress_total"])'; }
load() { $BIN/cairn-load --endpoint $EP --size 1MiB --concurrency 8 --duration 20 --bucket $1 | grep PUT; }
echo "idle:       $(load idle)"
# Every other object deleted: its segments become half dead.
python3 - "$EP" <<'PY'
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
keys = [o["Key"] for p in s3.get_paginator("list_objects_v2").paginate(Bucket="idle") for o in p.get("Contents", [])]
doomed = keys[::2]
for i in range(0, len(doomed), 1000):
    s3.delete_objects(Bucket="idle", Delete={"Objects": [{"Key": k} for k in doomed[i:i + 1000]], "Quiet": True})
print(f"deleted {len(doomed)} of {len(keys)} objects", file=sys.stderr)
PY
until [ "$(compaction | cut -d' ' -f1)" = running ]; do sleep 0.2; done
echo "compacting: $(load busy)"
echo "compaction after the run: $(compaction) (state, bytes reclaimed so far, segments done/total)"
while [ "$(compaction | cut -d' ' -f1)" = running ]; do sleep 0.5; done
gc | python3 -c '
import json, sys
w = [w for w in json.load(sys.stdin)["workers"] if w["name"] == "compaction"][0]
print("compaction finished: %.0f MiB reclaimed in %d segments, last pass %.1f s" % (w["total_bytes"] / 2**20, w["total_items"], w["last_pass_secs"]))'
echo "after:      $(load after)"

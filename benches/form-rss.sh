#!/bin/bash
# Peak RSS of a fresh `cairn server` (1 disk) while it takes one browser-form upload of SIZE
# bytes: a signed form (streamed into the store) and an unsigned one (refused before its file
# is read), each on its own server, and a plain PUT of the same size for comparison.
# Builds nothing: run `cargo build --workspace --bins` first. Scratch data under /tmp/formrss.
# usage: benches/form-rss.sh [SIZE]   (default 536870912)
set -e
SIZE=${SIZE:-${1:-536870912}}
BIN=${BIN:-$HOME/.cache/cairn/target/debug}
DIR=${DIR:-/tmp/formrss}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$DIR"; mkdir -p "$DIR"
export AWS_ACCESS_KEY_ID=AKIAPROBE0000000 AWS_SECRET_ACCESS_KEY=probesecretprobesecretprobesecret01
export CAIRN_ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID CAIRN_ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY
export AWS_CONFIG_FILE=/nonexistent AWS_DEFAULT_REGION=us-east-1
head -c "$SIZE" /dev/urandom > "$DIR/file"
kib() { grep "$1" /proc/$2/status | awk '{print int($2/1024)}'; }
run() {  # LABEL PORT COMMAND...
  local label=$1 port=$2; shift 2
  "$BIN/cairn" server --data "$DIR/d$port" --s3-addr 127.0.0.1:$port --admin-addr 127.0.0.1:$((port+1)) > "$DIR/log$port" 2>&1 &
  local pid=$!
  until grep -q Ready "$DIR/log$port" 2>/dev/null; do sleep 0.1; done
  export CAIRN_S3=http://127.0.0.1:$port
  aws --endpoint-url "$CAIRN_S3" s3 mb s3://bkt > /dev/null
  local idle; idle=$(kib VmRSS $pid)
  local t0; t0=$(date +%s.%N)
  "$@" > "$DIR/out$port" 2>&1 || true
  local t1; t1=$(date +%s.%N)
  echo "$label: idle ${idle} MiB, peak $(kib VmHWM $pid) MiB, $(echo "$t1 - $t0" | bc) s: $(head -c 120 "$DIR/out$port" | tr '\n' ' ')"
  kill $pid; wait $pid 2>/dev/null || true
}
run "signed form, streamed" 19600 python3 "$HERE/../cluster-tests/py/post_forms.py" stream "$SIZE"
run "unsigned form, refused" 19610 curl -s -o - -F key=k -F "file=@$DIR/file" http://127.0.0.1:19610/bkt
run "PUT, same size" 19620 aws --endpoint-url http://127.0.0.1:19620 s3api put-object --bucket bkt --key put --body "$DIR/file"

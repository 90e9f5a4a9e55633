# Sourced by the metadata benchmarks: starts a group of $2 meta-nodes from $1/cairn in
# directory $3 (fresh release processes, OS-chosen ports), forms it, and sets MA (their
# addresses, comma-separated), MPIDS and MADDRS (arrays). CAIRN_CLUSTER_SECRET must be set.
# METRICS_FLAG: the metrics listener on an OS-chosen port (empty for builds without one).
METRICS_FLAG=""
meta_group() {
  local BIN=$1 N=$2 DIR=$3 members="" i
  MPIDS=(); MADDRS=()
  if $BIN/cairn meta-node --help | grep -q metrics-listen; then METRICS_FLAG="--metrics-listen 127.0.0.1:0"; fi
  for i in $(seq 1 $N); do
    $BIN/cairn meta-node --id $i --data $DIR/meta$i --listen 127.0.0.1:0 $METRICS_FLAG \
      > $DIR/meta$i.out 2> $DIR/meta$i.err &
    MPIDS+=($!)
  done
  for i in $(seq 1 $N); do
    until grep -q Ready. $DIR/meta$i.out; do sleep 0.2; done
    MADDRS+=($(grep "Metadata API" $DIR/meta$i.out | sed 's/Metadata API: //'))
    members="$members${members:+,}$i=${MADDRS[$((i-1))]}"
  done
  $BIN/cairn meta init --meta ${MADDRS[0]} $members > /dev/null
  until $BIN/cairn meta status --meta ${MADDRS[0]} | head -1 | grep -q "leader [0-9]"; do sleep 0.2; done
  MA=$(IFS=,; echo "${MADDRS[*]}")
}

#!/bin/bash
# Peak memory of building, sending and installing a metadata snapshot of OBJECTS objects
# (docs/PERFORMANCE.md): one release meta-node is filled through the gRPC client
# (cairn-meta-load, 256 writers; it snapshots every 20,000 entries meanwhile), then a second,
# empty meta-node is added: the leader's log is purged, so it catches up by a snapshot.
# Prints each process's resident memory (VmRSS) and peak (VmHWM) from /proc, the snapshot's
# size, and how long building and installing it took.
# usage: benches/meta-snapshot.sh BINDIR OBJECTS   (LOAD_BIN=DIR: cairn-meta-load from there,
#        to measure a build that has none)
set -e
BIN=$1; N=$2
DIR=$(mktemp -d /tmp/cairn-snap-bench.XXXX)
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000
. "$(dirname "$0")/meta-group.sh"
meta_group $BIN 1 $DIR
mem() { grep -E "^$2:" /proc/$1/status | awk '{printf "%.0f MiB", $2/1024}'; }
metric() { grep -q "Metrics:" $1 && curl -s $(grep "Metrics:" $1 | sed 's/Metrics: //') | grep -E "^$2 " | awk '{print $2}' || echo "?"; }
echo "empty meta-node: VmRSS $(mem ${MPIDS[0]} VmRSS)"
${LOAD_BIN:-$BIN}/cairn-meta-load --meta $MA --writers 256 --objects $N
echo "leader after $N objects: VmRSS $(mem ${MPIDS[0]} VmRSS), VmHWM $(mem ${MPIDS[0]} VmHWM) (fill and $(metric $DIR/meta1.out cairn_raft_snapshots_built_total) snapshot builds)"
echo "last snapshot: $(du -m $DIR/meta1/meta/snapshots/*.snap 2>/dev/null | cut -f1) MiB, built in $(metric $DIR/meta1.out cairn_raft_snapshot_build_seconds) s; state in RocksDB: $(du -sm $DIR/meta1/meta | cut -f1) MiB"
$BIN/cairn meta-node --id 2 --data $DIR/meta2 --listen 127.0.0.1:0 $METRICS_FLAG > $DIR/meta2.out 2> $DIR/meta2.err &
P2=$!
trap 'kill -TERM ${MPIDS[@]} $P2; wait ${MPIDS[@]} $P2; rm -rf $DIR' EXIT
until grep -q Ready. $DIR/meta2.out; do sleep 0.2; done
A2=$(grep "Metadata API" $DIR/meta2.out | sed 's/Metadata API: //')
echo "new member before: VmRSS $(mem $P2 VmRSS)"
start=$(date +%s.%N)
$BIN/cairn meta add --meta ${MADDRS[0]} 2=$A2 > /dev/null
end=$(date +%s.%N)
echo "new member added (snapshot sent and installed) in $(echo "$end - $start" | bc) s; install took $(metric $DIR/meta2.out cairn_raft_snapshot_install_seconds) s"
echo "new member after: VmRSS $(mem $P2 VmRSS) (anonymous $(mem $P2 RssAnon), files $(mem $P2 RssFile)), VmHWM $(mem $P2 VmHWM)"
echo "leader after sending: VmRSS $(mem ${MPIDS[0]} VmRSS), VmHWM $(mem ${MPIDS[0]} VmHWM)"

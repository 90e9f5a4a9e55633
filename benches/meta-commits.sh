#!/bin/bash
# Metadata commits/s of a 3-member group (three fresh release meta-nodes on 127.0.0.1) through
# the gRPC client a gateway uses, at 1, 16 and 256 concurrent writers (docs/PERFORMANCE.md).
# usage: benches/meta-commits.sh BINDIR
set -e
BIN=$1
DIR=$(mktemp -d /tmp/cairn-meta-bench.XXXX)
export CAIRN_CLUSTER_SECRET=bench-cluster-secret-000000
. "$(dirname "$0")/meta-group.sh"
meta_group $BIN 3 $DIR
trap 'kill -TERM ${MPIDS[@]}; wait ${MPIDS[@]}; rm -rf $DIR' EXIT
for w in 1 16 256; do
  n=$((w == 1 ? 3000 : w == 16 ? 30000 : 100000))
  $BIN/cairn-meta-load --meta $MA --writers $w --objects $n --prefix "w$w-"
done

#!/bin/bash
# Peak RSS of a `cairn server` under N concurrent 1 MiB PUTs, then GETs (cairn-load), split by phase.
# Builds nothing: run `cargo build --workspace --bins` first. Scratch data under /tmp/probe.
mkdir -p "${PROBE:-/tmp/probe}"
# usage: benches/peak-rss.sh LABEL PORT CONCURRENCY [CAIRN_*=value ...]   (DUR=seconds per phase, default 10)
LABEL=$1; PORT=$2; CONC=$3; shift 3
rm -rf ${PROBE:-/tmp/probe}/m$PORT
export CAIRN_ROOT_ACCESS_KEY=AKIAPROBE0000000 CAIRN_ROOT_SECRET_KEY=probesecretprobesecretprobesecret01
env "$@" ${BIN:-$HOME/.cache/cairn/target/debug}/cairn server --data ${PROBE:-/tmp/probe}/m$PORT --s3-addr 127.0.0.1:$PORT --admin-addr 127.0.0.1:$((PORT+1)) > ${PROBE:-/tmp/probe}/mlog$PORT 2>&1 &
P=$!
sleep 3
IDLE=$(( $(grep VmRSS /proc/$P/status | awk '{print $2}') / 1024 ))
( while kill -0 $P 2>/dev/null; do echo "$(date +%s%N) $(grep VmRSS /proc/$P/status | awk '{print $2}') $(ss -Htn state established "( sport = :$PORT )" | wc -l)"; sleep 0.2; done > ${PROBE:-/tmp/probe}/mrss$PORT.txt ) &
AWS_ACCESS_KEY_ID=AKIAPROBE0000000 AWS_SECRET_ACCESS_KEY=probesecretprobesecretprobesecret01 stdbuf -oL ${BIN:-$HOME/.cache/cairn/target/debug}/cairn-load --endpoint http://127.0.0.1:$PORT --bucket membench --size 1MiB --concurrency $CONC --duration ${DUR:-10} | while read l; do echo "$(date +%s%N) $l"; done > ${PROBE:-/tmp/probe}/mout$PORT.txt
T=$(grep " PUT:" ${PROBE:-/tmp/probe}/mout$PORT.txt | awk '{print $1}')
PUTPEAK=$(awk -v t=$T '$1<=t {if ($2>m) m=$2} END {print int(m/1024)}' ${PROBE:-/tmp/probe}/mrss$PORT.txt)
GETPEAK=$(awk -v t=$T '$1>t {if ($2>m) m=$2} END {print int(m/1024)}' ${PROBE:-/tmp/probe}/mrss$PORT.txt)
MAXCONN=$(awk '{if ($3>m) m=$3} END {print m}' ${PROBE:-/tmp/probe}/mrss$PORT.txt)
echo "$LABEL conc=$CONC max_conns=$MAXCONN idle=${IDLE}MiB put_peak=${PUTPEAK}MiB get_peak=${GETPEAK}MiB hwm=$(( $(grep VmHWM /proc/$P/status | awk '{print $2}') / 1024 ))MiB"
cut -d' ' -f2- ${PROBE:-/tmp/probe}/mout$PORT.txt
kill $P; sleep 1

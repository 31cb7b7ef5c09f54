#!/bin/bash
# FD-infinity pilot: point estimates only (B = 0), 100 repeats per setting.
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
run() { /tmp/covenv/bin/python worker.py $1 5000 5100 pilot/$1.npz --B 0 --stats fd --cf --gboot "" > logs/pilot_$1.log 2>&1; }
( for s in gauss2_2000v2000 gauss64_2000v2000 digits64_2000v2000 features128_2000v2000 gauss128_2000v2000; do run $s; done ) &
( for s in gauss2_500v1297 gauss64_500v1297 digits64_500v1297 features128_500v1297 gauss128_500v1297; do run $s; done ) &
wait

#!/bin/bash
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
while pgrep -f "run_linvar.sh" > /dev/null; do sleep 20; done
nice -n 5 /tmp/covenv/bin/python q4_blocks.py 150 q4.npz > logs/q4.log 2>&1

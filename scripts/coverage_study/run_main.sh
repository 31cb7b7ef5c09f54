#!/bin/bash
# Main coverage run: jobs.txt, two single-threaded workers at a time.
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
xargs -P 2 -L 1 bash -c '/tmp/covenv/bin/python worker.py "$0" "$@" > logs/main_$0_$1.log 2>&1' < jobs.txt

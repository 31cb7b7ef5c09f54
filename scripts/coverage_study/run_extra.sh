#!/bin/bash
# Second pass: jobs first skipped for time (jobs_extra.txt).
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
xargs -P 1 -L 1 bash -c '/tmp/covenv/bin/python worker.py "$0" "$@" > logs/main_$0_$1.log 2>&1' < jobs_extra.txt

#!/bin/bash
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
for s in digits64_500v1297 features128_500v1297; do
  nice -n 5 /tmp/covenv/bin/python linvar.py $s 300 lv/$s.npz > logs/lv_$s.log 2>&1
done

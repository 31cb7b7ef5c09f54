#!/bin/bash
# Rebuild every table from the stored outputs.
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1
P=/tmp/covenv/bin/python
$P analyze.py > /dev/null
$P analyze_lv.py > /dev/null
$P fdinf_table.py pilot > fdinf_pilot.txt
$P fdinf_table.py out > fdinf_main.txt
$P q3_table.py digits64_500v1297 > /dev/null
for s in gauss64_500v1297 features128_500v1297 gauss128_500v1297 gauss2_500v1297; do $P q3_table.py $s append > /dev/null; done
$P q4_table.py > /dev/null

#!/usr/bin/env bash
# `make sweep`: train where needed, run each experiment's sweep and report, then print
# the time every part took. Usage: CARGO_TARGET_DIR=... scripts/sweep.sh CARGO EXPERIMENT.yaml...
set -euo pipefail
cargo=$1
shift
bin=${CARGO_TARGET_DIR:-target}/release/ddimlab
parts=()
dirs=()
timed() { # label, command...
  local label=$1 start
  shift
  start=$(date +%s%N)
  "$@"
  local ms=$((($(date +%s%N) - start) / 1000000))
  parts+=("$(printf '%-40s %6d.%d s' "$label" $((ms / 1000)) $((ms % 1000 / 100)))")
}
timed "build (release)" "$cargo" build --release
for exp in "$@"; do
  name=$(basename "$exp" .yaml)
  if grep -qE '^\s+train:' "$exp"; then
    timed "$name: train (reused when finished)" "$bin" train "$exp"
  fi
  timed "$name: sweep + report" "$bin" sweep "$exp"
  dirs+=("results/$(sed -n 's/^name: *\([A-Za-z0-9_-]*\).*/\1/p' "$exp" | head -1)")
done
# The cross-model table, and the README's results section generated from the reports.
timed "compare + README results" "$bin" compare "${dirs[@]}" --out results/compare.md --readme README.md
echo
echo "make sweep: time per part"
printf '  %s\n' "${parts[@]}"

#!/usr/bin/env bash
# `make bench`: PyTorch and ddimlab on the same workloads, back to back, same thread count.
#
#     scripts/bench/run.sh CARGO VENV_DIR
#
# 1. scripts/bench/torch_env.sh creates (once) a venv with PyTorch + diffusers from PyPI;
# 2. scripts/bench/torch_bench.py times the PyTorch side and writes JSON;
# 3. `cargo bench --bench throughput` times ddimlab, reads that JSON and writes
#    results/benchmarks.md with both columns and their ratio.
# Where step 1 or 2 fails, the ddimlab half still runs and the table says why.
# BENCH_THREADS (default: the number of CPUs) sets both sides' thread count.
set -u -o pipefail
cargo=${1:?usage: run.sh CARGO VENV_DIR}
venv=${2:?usage: run.sh CARGO VENV_DIR}
cd "$(dirname "$0")/../.."
threads=${BENCH_THREADS:-$(nproc)}
work=${CARGO_TARGET_DIR:-target}/bench
mkdir -p "$work"
json=$work/torch_bench.json
rm -f "$json"
unset DDIMLAB_TORCH_JSON DDIMLAB_TORCH_NOTE

# Build first, so that compiling does not overlap the PyTorch timings.
"$cargo" bench --bench throughput --no-run || exit 1

if py=$(scripts/bench/torch_env.sh "$venv" 2>"$work/torch_env.err"); then
  echo "bench: PyTorch side ($threads threads) ..." >&2
  if "$py" scripts/bench/torch_bench.py --threads "$threads" >"$json.tmp" 2>"$work/torch_bench.err"; then
    mv "$json.tmp" "$json"
    export DDIMLAB_TORCH_JSON=$json
  else
    export DDIMLAB_TORCH_NOTE="scripts/bench/torch_bench.py failed: $(tail -n 1 "$work/torch_bench.err")"
  fi
else
  export DDIMLAB_TORCH_NOTE="no PyTorch environment: $(tail -n 1 "$work/torch_env.err")"
fi
[ -n "${DDIMLAB_TORCH_NOTE:-}" ] && echo "bench: $DDIMLAB_TORCH_NOTE" >&2
echo "bench: ddimlab side ($threads threads) ..." >&2
RAYON_NUM_THREADS=$threads "$cargo" bench --bench throughput

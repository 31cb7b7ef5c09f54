#!/usr/bin/env bash
# Creates (once) the Python virtual environment that scripts/bench/torch_bench.py runs in:
# PyTorch + diffusers + numpy from PyPI, used on the CPU only.
#
#     scripts/bench/torch_env.sh VENV_DIR      # e.g. ~/.cache/ddimlab-bench-venv
#
# Prints the venv's python (VENV_DIR/bin/python) on stdout and nothing else; pip's
# output goes to VENV_DIR.install.log, progress to stderr. Exits non-zero, with the
# reason as the last line on stderr (one line, prefixed "torch_env.sh: "), when it
# cannot (no python3/venv, no network, pip failure, too little disk). Idempotent: a finished environment is marked with
# VENV_DIR/.ddimlab-bench-complete and later calls only check that it still imports.
#
# Why the full torch install: only PyPI is reachable, and PyPI's Linux x86_64 torch wheel
# is the CUDA build. Installing it with --no-deps (plus its pure-Python dependencies)
# does not import: torch/__init__.py dlopens libtorch_global_deps.so, which needs
# libcudart, and libtorch_cuda.so is a DT_NEEDED of libtorch.so (with cuDNN, cuBLAS,
# cuFile, ...). So the nvidia-*/cuda-* wheels are installed too (several GB, once);
# they are only loaded, never used.
#
# Environment overrides: PYTHON (interpreter that creates the venv, default python3),
# DDIMLAB_TORCH_SPEC (default torch==2.15.0), DDIMLAB_DIFFUSERS_SPEC
# (default diffusers==0.42.1), DDIMLAB_NUMPY_SPEC (default numpy).
set -u -o pipefail

say() { echo "torch_env.sh: $*" >&2; }
fail() { say "$*"; exit 1; }

[ $# -eq 1 ] && [ -n "$1" ] || fail "usage: torch_env.sh VENV_DIR"
venv=$1
case $venv in /*) ;; *) venv=$PWD/$venv ;; esac
py=$venv/bin/python
marker=$venv/.ddimlab-bench-complete
log=$venv.install.log
torch_spec=${DDIMLAB_TORCH_SPEC:-torch==2.15.0}
diffusers_spec=${DDIMLAB_DIFFUSERS_SPEC:-diffusers==0.42.1}
numpy_spec=${DDIMLAB_NUMPY_SPEC:-numpy}
check='import torch, diffusers, numpy; torch.manual_seed(0); a = torch.randn(64, 64); assert torch.isfinite(a @ a).all(); print(torch.__version__, diffusers.__version__, numpy.__version__)'

ready() { [ -f "$marker" ] && [ -x "$py" ] && "$py" -c "$check" >/dev/null 2>&1; }

if ready; then
  echo "$py"
  exit 0
fi

mkdir -p "$(dirname "$venv")" || fail "cannot create $(dirname "$venv")"
# One installer at a time (two `make bench` at once would race on the same venv).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$venv.lock" || fail "cannot write $venv.lock"
  flock 9 || fail "cannot lock $venv.lock"
  if ready; then # another process finished it while this one waited
    echo "$py"
    exit 0
  fi
fi
rm -f "$marker"

python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || fail "no $python on PATH (set PYTHON=/path/to/python3.10+)"
ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
  || fail "'$python' does not run (set PYTHON=/path/to/python3.10+)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
  || fail "$python is Python $ver; torch needs Python >= 3.10 (set PYTHON=/path/to/python3.10+)"

# The CUDA build of torch and its nvidia-* wheels take about 6 GB installed (pip
# unpacks them under TMPDIR first, which wants as much again while it installs).
need_kb=$((12 * 1024 * 1024))
for dir in "$(dirname "$venv")" "${TMPDIR:-/tmp}"; do
  free_kb=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -n "$free_kb" ] && [ "$free_kb" -lt "$need_kb" ]; then
    fail "only $((free_kb / 1024)) MiB free in $dir; installing torch needs about $((need_kb / 1024)) MiB"
  fi
done

: >"$log" || fail "cannot write $log"
if [ ! -x "$py" ]; then
  say "creating $venv"
  "$python" -m venv "$venv" >>"$log" 2>&1 || fail "'$python -m venv $venv' failed (Debian: apt-get install python3-venv); see $log"
fi

pip_install() {
  # --no-cache-dir: the wheels are GBs and are needed once; keep ~/.cache/pip small.
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 "$py" -m pip install --no-cache-dir --progress-bar off "$@" >>"$log" 2>&1
}
last_error() {
  grep -E 'ERROR|Error|error:' "$log" | tail -n 1 | cut -c1-200
}

say "installing $torch_spec (CPU use; PyPI's wheel pulls CUDA libraries, a few GB, once), $diffusers_spec, $numpy_spec; log: $log"
start=$(date +%s)
if ! pip_install "$torch_spec" "$diffusers_spec" "$numpy_spec"; then
  reason=$(last_error)
  fail "pip install failed${reason:+: $reason} (no network to PyPI?); see $log"
fi
out=$("$py" -c "$check" 2>>"$log") || fail "installed, but 'import torch, diffusers, numpy' fails; see $log"
size=$(du -sh "$venv" 2>/dev/null | cut -f1)
say "ready in $(($(date +%s) - start)) s: torch/diffusers/numpy $out, venv ${size:-?}"
echo "$out" >"$marker" || fail "cannot write $marker"
echo "$py"

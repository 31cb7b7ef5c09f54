# ddimlab — build, test and run experiments.
# The target directory lives outside the clone so rebuilds reuse it (a clean release
# build takes minutes, mostly polars).
CARGO_TARGET_DIR ?= $(HOME)/.cache/ddimlab-target
export CARGO_TARGET_DIR
CARGO ?= cargo

# Debian packages the crate links against (hdf5-metno needs the system HDF5).
APT_PACKAGES := libhdf5-dev pkg-config

.PHONY: setup build test fmt clippy bench sweep cuda-check

# The experiments `make sweep` runs (override: make sweep EXP=experiments/other.yaml).
EXP ?= experiments/gauss2d.yaml experiments/gmm2d.yaml experiments/digits_oracle.yaml experiments/digits.yaml experiments/digits_unet.yaml

## setup: install the missing apt packages (idempotent; nothing happens when all are present)
setup:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "setup: all of $(APT_PACKAGES) present"; \
	else \
	  echo "setup: installing$$missing"; \
	  if [ "$$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

## build: release build of the library and the `ddimlab` binary
build: setup
	$(CARGO) build --release

## test: format check, clippy with warnings as errors, the whole test suite (release mode)
test: setup
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings
	$(CARGO) test --release

fmt:
	$(CARGO) fmt

clippy:
	$(CARGO) clippy --release --all-targets -- -D warnings

# Where `make bench` keeps its PyTorch environment (created once, several GB: PyPI's torch
# wheel is the CUDA build; only its CPU side is used).
BENCH_VENV ?= $(HOME)/.cache/ddimlab-bench-venv

## bench: ddimlab next to PyTorch on the same workloads, as ratios -> results/benchmarks.md
bench: setup
	@scripts/bench/run.sh "$(CARGO)" "$(BENCH_VENV)"

## sweep: build, train where needed, run the sweeps of $(EXP) and write their reports under results/
sweep: setup
	@scripts/sweep.sh "$(CARGO)" $(EXP)

# Where `make cuda-check` keeps NVIDIA's CUDA toolkit wheels (created once, about 1.2 GB),
# and its own target folder, so that the CPU build is not rebuilt after it.
CUDA_VENV ?= $(HOME)/.cache/ddimlab-cuda-venv
CUDA_TARGET_DIR ?= $(CARGO_TARGET_DIR)-cuda
export CUDA_TARGET_DIR

## cuda-check: build --features cuda with CUDA 13 from PyPI (no GPU needed; CUDA_COMPUTE_CAP, default 90); on a GPU also the fixture tests on CUDA and a short bench
cuda-check: setup
	@scripts/cuda_check.sh "$(CARGO)" "$(CUDA_VENV)"

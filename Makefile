# `make train` and `make test` are the README's quick start: each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# This workplace's copy of MNIST, when there is one; elsewhere the user cache or a download.
ifneq ($(wildcard ../shared/datasets/mnist),)
export FASTSCRATCH_MNIST_DIR ?= $(abspath ../shared/datasets/mnist)
endif

.PHONY: install train test bench bench-full peers clean

$(BIN)/fastscratch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/fastscratch

train: install
	$(BIN)/fastscratch train

test: install
	$(BIN)/pytest

# Benchmarks (benchmarks/): the full-run group is opt-in; peer groups are skipped unless `make peers` ran.
RENDER := $(BIN)/python benchmarks/render.py .benchmarks --markdown benchmarks/RESULTS.md --png benchmarks/results.png

bench: install
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-save=bench
	$(RENDER) --pattern '*_bench.json' --pattern '*_full.json'

bench-full: install
	FASTSCRATCH_BENCH_FULL=1 $(BIN)/pytest benchmarks/test_full_run.py --benchmark-enable --benchmark-save=full
	$(RENDER) --pattern '*_bench.json' --pattern '*_full.json'

# PyTorch's CPU build the way PyTorch documents it, from its CPU wheel index; where that index is out
# of reach (this workplace reaches only PyPI), the same version from PyPI. JAX comes from PyPI.
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PIP_PEERS ?= --quiet
peers: install
	$(BIN)/pip install $(PIP_PEERS) --retries 1 --index-url $(TORCH_CPU_INDEX) torch==2.13.0 \
	  || $(BIN)/pip install $(PIP_PEERS) torch==2.13.0
	$(BIN)/pip install $(PIP_PEERS) jax

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis

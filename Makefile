# `make train` and `make test` are the README's quick start: each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# This workplace's copy of MNIST, when there is one; elsewhere the user cache or a download.
ifneq ($(wildcard ../shared/datasets/mnist),)
export FASTSCRATCH_MNIST_DIR ?= $(abspath ../shared/datasets/mnist)
endif

.PHONY: install train test bench bench-full bench-publish peers clean

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
# `make bench` and `make bench-full` leave the git tree as it was: their JSON and the rendered table and
# chart go to .benchmarks/ (ignored). `make bench-publish` renders the newest results into the tracked
# benchmarks/RESULTS.md and results.png, for a commit that quotes them.
RENDER := $(BIN)/python benchmarks/render.py .benchmarks --pattern '*_bench.json' --pattern '*_full.json'
PEERS_NOTE := $(BIN)/python -c "import torch, jax" 2>/dev/null \
	|| echo "note: PyTorch or JAX is not installed, so the peers group is skipped (make peers installs both)"

bench: install
	@$(PEERS_NOTE)
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-save=bench
	$(RENDER) --markdown .benchmarks/RESULTS.md --png .benchmarks/results.png

bench-full: install
	FASTSCRATCH_BENCH_FULL=1 $(BIN)/pytest benchmarks/test_full_run.py --benchmark-enable --benchmark-save=full
	$(RENDER) --markdown .benchmarks/RESULTS.md --png .benchmarks/results.png

bench-publish: install
	$(RENDER) --markdown benchmarks/RESULTS.md --png benchmarks/results.png

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

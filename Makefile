# `make train` and `make test` are the README's quick start: each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FASTSCRATCH_MNIST_DIR ?= ../shared/datasets/mnist

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

bench: install
	$(BIN)/pytest benchmarks --benchmark-enable --benchmark-save=bench
	$(BIN)/python -m fastscratch.benchreport .benchmarks --markdown benchmarks/RESULTS.md --png benchmarks/results.png

bench-full: install
	FASTSCRATCH_BENCH_FULL=1 $(BIN)/pytest benchmarks -k full_run --benchmark-enable --benchmark-save=full

peers: install
	$(BIN)/pip install --quiet torch==2.13.0 jax

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks .hypothesis

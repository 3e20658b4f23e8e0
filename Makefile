# One command installs, one command checks everything; CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test ci test-all lint typecheck pytest pytest-all check-install completions bench model

# Tests run in parallel (pytest-xdist): one worker per core. Each test has its own home, server and ports.
PYTEST_WORKERS ?= auto

install: $(BIN)/aicache

$(BIN)/aicache: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# PyTorch first: its CPU build unless a CUDA GPU is present; otherwise the dependencies below would pull
	# the registry's CUDA build (several GB). tools/install_torch.py says which build it chose and why.
	$(BIN)/python tools/install_torch.py
	# compat editable mode puts the checkout on sys.path with a .pth line; the default mode installs an import
	# finder that costs every run ~15 ms, which the exact-hit path cannot spare.
	$(BIN)/pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	touch $(BIN)/aicache

# The everyday check: everything but the tests marked slow (the embedding model, the warm helper, crash loops).
test: lint typecheck pytest

# Everything, as CI runs it (.ci/run): all tests, and what a clean machine's `make install` would get.
ci: lint typecheck pytest-all check-install
test-all: ci

lint:
	$(BIN)/ruff check aicache tests benchmarks tools
	$(BIN)/ruff format --check aicache tests benchmarks tools

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) -m "not slow"

pytest-all:
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

# What a clean machine's `make install` would get: pip ignoring this machine's config files.
check-install:
	$(BIN)/python tools/install_torch.py --check

completions:
	$(BIN)/python -m aicache.completions completions

bench:
	$(BIN)/python benchmarks/bench_exact_hit.py
	$(BIN)/python benchmarks/bench_miss_overhead.py

# The semantic hit decision (training/README.md): generate the near-misses, train, calibrate, write
# aicache/data/decision/ and, for the model that also reads the cached answer, aicache/data/decision/answer/
# (its interaction heads are the first model's, trained alike; learn refits only the first, so it needs no rows).
# CPU only, fixed seeds, about 20 minutes on 2 cores. Needs the train extra.
model:
	$(BIN)/python -m training.generate
	$(BIN)/python -m training.train
	$(BIN)/python -m training.compare
	$(BIN)/python -m training.train --answers --out aicache/data/decision/answer --work training/work/answer
	rm -f aicache/data/decision/answer/interaction.npz aicache/data/decision/answer/rows.npz

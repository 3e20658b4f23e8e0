# One command installs, one command checks everything; CI (.ci/run) calls the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install test lint typecheck pytest completions bench model

install: $(BIN)/aicache

$(BIN)/aicache: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU build of PyTorch first: otherwise pip resolves the newest CUDA build (several GB).
	$(BIN)/pip install --quiet "torch==2.13.0"
	# compat editable mode puts the checkout on sys.path with a .pth line; the default mode installs an import
	# finder that costs every run ~15 ms, which the exact-hit path cannot spare.
	$(BIN)/pip install --quiet -e ".[dev]" --config-settings editable_mode=compat
	touch $(BIN)/aicache

test: lint typecheck pytest

lint:
	$(BIN)/ruff check aicache tests benchmarks
	$(BIN)/ruff format --check aicache tests benchmarks

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q

completions:
	$(BIN)/python -m aicache.completions completions

bench:
	$(BIN)/python benchmarks/bench_exact_hit.py
	$(BIN)/python benchmarks/bench_miss_overhead.py

# The semantic hit decision (training/README.md): generate the near-misses, train, calibrate, write
# aicache/data/decision/. CPU only, fixed seeds, a few minutes on 2 cores. Needs the train extra.
model:
	$(BIN)/python -m training.generate
	$(BIN)/python -m training.train
	$(BIN)/python -m training.compare

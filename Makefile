# Set-up on a fresh machine is part of every target: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job, offline: train the textbook's BatchNorm LeNet on scikit-learn's bundled handwritten digits (under a
# minute on the CPU), print the book's summary line, evaluate on the test split and print the next commands.
demo: $(STAMP)
	$(BIN)/moderncnn demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

# The suite CI runs (about 6 minutes on 2 cores). `make test-slow` adds the long checks: every registered network
# exported to every format (about 14 minutes here).
test: lint
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

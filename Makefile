# Set-up on a fresh machine is part of every target: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint format clean docs docs-execute

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	touch $(STAMP)

# The main job, offline: train the textbook's BatchNorm LeNet on scikit-learn's bundled handwritten digits (under a
# minute on the CPU), print the book's summary line, evaluate on the test split and print the next commands.
demo: $(STAMP)
	$(BIN)/moderncnn demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks docs/tools docs/tutorials
	$(BIN)/ruff format --check src tests benchmarks docs/tools docs/tutorials
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks docs/tools docs/tutorials
	$(BIN)/ruff check --fix src tests benchmarks docs/tools docs/tutorials

# The suite CI runs; how long it takes is stated once, in docs/architecture.md ("Tests"). Test files run in parallel
# (pytest-xdist, one process per core, at most 4, a file's tests together in one process), each process and the
# commands it starts with one intra-op thread: more threads than cores would make every process wait on the others.
# `make test-slow` adds the long checks: every registered network exported to every format, the chapter pages.
test: lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -m "not slow" -n auto --maxprocesses 4 --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# The documentation site, offline (no CDN, fonts and search served from the site itself): open site/index.html.
# Tutorials render with the outputs `make docs-execute` stored (docs/tutorials/*.ipynb), or unexecuted until then.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# Executes every tutorial at full size (the `fast` budgets; tens of minutes each on a laptop CPU) in the background
# and stores each executed notebook beside its source. Log: docs/tutorials/execute.log. MODERNCNN_DOCS_RUNS=DIR
# loads finished run directories instead of training again; TUTORIALS="resnet alexnet" executes only those.
docs-execute: $(STAMP)
	nohup $(BIN)/python docs/tools/execute.py $(TUTORIALS) > docs/tutorials/execute.log 2>&1 &
	@echo "executing the tutorials in the background; follow docs/tutorials/execute.log"

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .ruff_cache

# Set-up on a fresh machine is part of every target: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint format clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The main job. Until training lands (issue 4), the demo shows the model zoo: the registry and the
# textbook's layer-by-layer printouts.
demo: $(STAMP)
	$(BIN)/moderncnn models
	$(BIN)/moderncnn summary alexnet_d2l --input 1x1x224x224
	$(BIN)/moderncnn summary resnet18_d2l --input 1x1x96x96

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache

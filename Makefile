# gpupool: `make up` runs the platform, `make test` runs every test. Both create the environment first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install up test reliability lint demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

up: install
	$(BIN)/gpupool up

test: install
	$(BIN)/ruff check src tests
	$(BIN)/mypy src
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --ignore=tests/reliability
	$(BIN)/python -m pytest -s tests/reliability

# Only the crash and restart tests of the real `gpupool up` with its own Ray cluster (a few minutes).
reliability: install
	$(BIN)/python -m pytest -s tests/reliability

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The two set-up commands: `make demo` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit system-deps venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	@scripts/install-system-deps.sh

# Runs the gateway on its embedded defaults (SQLite, local recordings).
demo: system-deps venv
	$(BIN)/orbit-gateway serve --config config/gateway.example.yaml

# Lint, types, and the whole test suite (unit, component, real peers).
test: system-deps venv lint typecheck
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache data

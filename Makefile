# The two set-up commands: `make demo` and `make test`. Both create .venv and install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo serve test lint typecheck unit system-deps venv clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	@scripts/install-system-deps.sh

# One real call end to end: a SIPp carrier, the echo agent and the gateway on its embedded
# defaults (SQLite, local recordings); places a call, hangs it up, plays back the recording.
demo: system-deps venv
	$(BIN)/python scripts/demo.py

# Runs the gateway on its embedded defaults (SQLite, local recordings) until Ctrl-C.
serve: venv
	$(BIN)/orbit-gateway serve --config config/gateway.example.yaml

# Lint, types, and the whole test suite (unit, component, real peers).
test: system-deps venv lint typecheck
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache data

# Load benchmark (about 25 minutes on 2 cores): the gateway (orbit-gateway serve), SIPp as the
# carrier, the load agent and an RTP relay, all on loopback. Results: bench/results/<timestamp>.json;
# method and numbers: BENCHMARKS.md. Other options: make bench BENCH_ARGS="--steps 50,100 --soak-minutes 0"
.PHONY: bench
bench: system-deps venv
	@test -x $(BIN)/py-spy || $(BIN)/pip install --quiet py-spy || echo "py-spy not installed: no profiles"
	$(BIN)/python -m bench.run --wait-quiet 120 $(BENCH_ARGS)

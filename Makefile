# fairledger: `make run` serves the demo site on 127.0.0.1:8000; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DB ?= demo.duckdb
STAMP := $(VENV)/.installed

.PHONY: install run check test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fairledger --db $(DB) demo
	$(BIN)/fairledger --db $(DB) serve --host 127.0.0.1 --port 8000

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: check
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/bench_ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(DB)

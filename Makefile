# fairledger: `make run` serves the demo site on 127.0.0.1:8000; `make test` runs every test.
# Installs come from uv.lock (every package, with hashes), so a fresh machine gets what was
# tested; `make upgrade` is the one deliberate way to move to newer releases (docs/dependencies.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
DB ?= demo.duckdb
STAMP := $(VENV)/.installed

# uv installs into .venv, with the interpreter $(PYTHON) made it from, never a downloaded one,
# and trusts the machine's certificate store as pip does.
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_SYSTEM_CERTS := 1

.PHONY: install run check test upgrade bench clean

# uv itself, pinned with hashes; it then installs everything else from the lock.
$(UV): requirements-uv.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-uv.txt
	touch $(UV)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --extra dev --quiet
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/fairledger --db $(DB) demo
	$(BIN)/fairledger --db $(DB) serve --host 127.0.0.1 --port 8000

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: check
	$(BIN)/python -m pytest

# Re-resolve every package to its newest release within pyproject's ranges, rewrite the lock
# (and uv's own bootstrap pin to the uv the lock now holds), install it and run every test.
upgrade: $(UV)
	$(UV) lock --upgrade
	$(BIN)/python -c "import tomllib; print('uv==' + next(p['version'] for p in \
		tomllib.load(open('uv.lock', 'rb'))['package'] if p['name'] == 'uv'))" \
		| $(UV) pip compile - --generate-hashes --universal --no-header --quiet \
		-o requirements-uv.txt
	$(MAKE) test

bench: install
	$(BIN)/python bench/bench_ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache $(DB)

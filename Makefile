# lendsafe: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
export LENDSAFE_DATA_DIR ?= var

.PHONY: demo test lint typecheck contracts install serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev,ml]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	rm -f $(LENDSAFE_DATA_DIR)/lendsafe.sqlite $(LENDSAFE_DATA_DIR)/lendsafe.sqlite-*
	$(BIN)/lendsafe demo --loans 3000 --days 120 --seed 7
	@echo "The database is left at $(LENDSAFE_DATA_DIR)/lendsafe.sqlite: try '$(BIN)/lendsafe serve'."

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

test: lint typecheck contracts
	$(BIN)/pytest -q -m "not slow" -n 2 --dist loadgroup

test-all: install
	$(BIN)/pytest -q -n 2 --dist loadgroup

serve: install
	$(BIN)/lendsafe serve

bench: install
	$(BIN)/python bench/eod_bench.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

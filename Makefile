# Two commands on a fresh clone, with only python3 and make: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-py lint layers typecheck pytest bench install clean

# Reinstall whenever the declared dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/coordination demo

test: lint layers typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples tools
	$(BIN)/ruff format --check src tests bench examples tools

# The import layers declared in pyproject.toml ([tool.importlinter]).
layers: $(STAMP)
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# pytest exits 5 when it collected no test: make fails on it like on any other failure.
pytest: $(STAMP)
	$(BIN)/pytest

# The suite on another interpreter, in a venv of its own (lint and mypy run once, in test):
#   make test-py PYTHON=$(pyenv prefix 3.13.0)/bin/python3 VENV=.venv-3.13
test-py: pytest

# Benchmarks compare this library with its peers in one run; see bench/README.md.
bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache build dist

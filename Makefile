# Two commands: `make up` runs the whole embedded stack, `make test` passes the tests.
# Both create the virtual environment and install everything first (PyPI only).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up demo test lint setup system-deps clean

$(BIN)/orderflow: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/orderflow

up: setup
	$(BIN)/orderflow up

demo: setup
	$(BIN)/orderflow up --demo

# Debian packages the browser test drives (headless Chromium); installed only when missing.
system-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium chromium-driver >/dev/null; fi; }

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: setup system-deps lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .orderflow

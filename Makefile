# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-containers up down status lint format typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# Builds the images and drives `docker compose` (needs a running Docker engine and root for
# debootstrap; .ci/run sets both up).
test-containers: $(STAMP)
	$(BIN)/pip install --quiet -e '.[containers]'
	$(BIN)/python -m pytest -q -m containers tests/containers

up: $(STAMP)
	$(BIN)/cauce up

down: $(STAMP)
	$(BIN)/cauce down

status: $(STAMP)
	$(BIN)/cauce status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.loop

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

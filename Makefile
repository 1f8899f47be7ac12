# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-containers up down status lint format typecheck bench bench-tuning bench-serving clean

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

bench-tuning: $(STAMP)
	$(BIN)/python -m bench.tuning

# The prediction service against `mlflow models serve` on the same model (docs/benchmarks.md).
# Needs wrk (apt-get install wrk); MLflow goes into its own venv under .cache/ on first run.
bench-serving: $(STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk >/dev/null 2>&1 || \
		{ echo "bench-serving needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.serving

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

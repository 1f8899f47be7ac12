# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test browser screenshots up down status lint format typecheck bench bench-tuning \
	bench-serving bench-prediction-log bench-console bench-stalled bench-scale bench-scale-default bench-quality test-containers test-hosts faketime clean

# apt-get needs root; as another user, go through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# Two pytest-xdist workers, each with servers of its own (tests/conftest.py); a file's tests stay
# on one worker, as its module fixtures expect. `make test TEST_PARALLEL=` runs them in one process.
TEST_PARALLEL ?= -n 2 --dist loadfile

test: $(STAMP) browser faketime
	$(BIN)/python -m pytest -q --durations=30 $(TEST_PARALLEL) tests

# The console's browser tests drive Debian's headless Chromium; install it once when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing Debian's chromium and chromium-driver for the browser tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

# The README's pictures of the console, taken by its browser test.
screenshots: $(STAMP) browser
	CAUCE_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/e2e/test_console_browser.py \
		tests/e2e/test_monitoring.py

# Builds the images and drives `docker compose` (needs a running Docker engine and root for
# debootstrap; .ci/run sets both up).
test-containers: $(STAMP)
	$(BIN)/pip install --quiet -e '.[containers]'
	$(BIN)/python -m pytest -q -m containers tests/containers

# The stack over several hosts: network namespaces on this machine (needs root), one of them with
# its clock set back by Debian's faketime, installed once when missing.
test-hosts: $(STAMP) faketime
	$(BIN)/python -m pytest -q -m hosts tests/hosts

# Tests that run a process with its clock shifted (heartbeats judged by the store's clock, and
# the host tests) use Debian's faketime; install it once when missing.
faketime:
	@if ! command -v faketime >/dev/null; then \
		echo "installing Debian's faketime for the clock tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime; \
	fi

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
	@command -v wrk >/dev/null || $(SUDO) apt-get install -y wrk >/dev/null 2>&1 || \
		{ echo "bench-serving needs wrk: apt-get install wrk"; exit 1; }
	@command -v cc >/dev/null || $(SUDO) apt-get install -y gcc libc6-dev >/dev/null 2>&1 || \
		{ echo "bench-serving compiles bench/openloop.c: apt-get install gcc"; exit 1; }
	$(BIN)/python -m bench.serving

# What the prediction log costs: the same model served with it off, at the default rate and for
# every request (docs/benchmarks.md, "The prediction log").
bench-prediction-log: $(STAMP)
	@command -v wrk >/dev/null || $(SUDO) apt-get install -y wrk >/dev/null 2>&1 || \
		{ echo "bench-prediction-log needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python -m bench.serving_log

bench-console: $(STAMP)
	$(BIN)/python -m bench.console

# Valid requests beside stalled bodies and idle connections (docs/reliability.md).
bench-stalled: $(STAMP)
	$(BIN)/python -m bench.stalled

# cauce against a plain pandas + scikit-learn script on 20k, 1M and 5M rows (docs/benchmarks.md);
# other sizes with `make bench-scale ROWS=20000,1000000,10000000`.
# PARTS=8 submits each table a second time as 8 Parquet parts of one dataset.
ROWS ?= 20000,1000000,5000000
PARTS ?= 0
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale --rows $(ROWS) --parquet-parts $(PARTS)

# cauce's default spec (every candidate, the default budget, halving) on bench-scale's tables:
# ROWS=1000000 by default, BUDGET= to give the search a budget (docs/benchmarks.md).
bench-scale-default: $(STAMP)
	$(BIN)/python -m bench.scale --default-spec --rows $(if $(filter command line,$(origin ROWS)),$(ROWS),1000000) $(if $(BUDGET),--budget $(BUDGET))

# The served model against FLAML (in its own venv under .cache/, made on first run) and a default
# HistGradientBoosting on six tables (docs/benchmarks.md); BUDGET=30 for a quicker run.
BUDGET ?=
bench-quality: $(STAMP)
	$(BIN)/python -m bench.quality $(if $(BUDGET),--budget $(BUDGET)) $(if $(TUNING),--tuning "$(TUNING)") $(if $(ESTIMATORS),--estimators "$(ESTIMATORS)")

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

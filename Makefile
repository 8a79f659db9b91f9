# seedance-relay — the two commands a fresh machine needs: `make run` and `make test`.
#   make run   installs the runtime dependencies only, then serves the relay on embedded defaults.
#   make test  installs the dev extras and headless Chromium (for the dashboard's browser tests),
#              then runs ruff, mypy (strict), the import-layer contracts (lint-imports) and pytest, in two
#              processes (TEST_PROCESSES).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUM    := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
RUNTIME_STAMP := $(VENV)/.runtime-$(SUM)
DEV_STAMP     := $(VENV)/.dev-$(SUM)
CHROMIUM      ?= /usr/bin/chromium
# pytest-xdist workers for `make test`; each file's tests stay in one worker (--dist loadfile). The API fuzz
# (schemathesis) gives its 29 operations one node id, which xdist's file scheduling would run once: it runs
# after, in one process.
TEST_PROCESSES ?= 2
FUZZ := tests/reliability/test_fuzz.py

.PHONY: install install-dev browser run demo test lint typecheck soak bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	@rm -f $(VENV)/.runtime-* && touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.dev-* $(VENV)/.runtime-* && touch $@ $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP)       ## runtime dependencies only (what `make run` needs)

install-dev: $(DEV_STAMP)       ## runtime + test and lint tools

# Debian's headless Chromium drives the dashboard and API reference browser tests. It comes from
# the system's package manager: a browser build downloaded by a Python package is not used.
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing headless Chromium for the browser tests (apt-get)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-liberation fonts-dejavu-core >/dev/null; }

run: $(RUNTIME_STAMP)  ## the relay on embedded defaults (SQLite, a folder, the built-in sandbox)
	$(BIN)/seedance-relay serve

demo: $(RUNTIME_STAMP)  ## one three-modality job through the sandbox, end to end
	$(BIN)/seedance-relay demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check handlers tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint typecheck browser  ## the whole suite: ruff, mypy (strict), lint-imports, pytest
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile --ignore=$(FUZZ)
	$(BIN)/pytest $(FUZZ)

bench: $(DEV_STAMP)  ## all benchmarks, full mode; writes bench/results.json
	$(BIN)/python bench/run_all.py

# The soak: 10,000 jobs over 31 minutes on embedded defaults (a SIGKILL every 10, 10% storage and
# provider faults, short retention), then 2,000 jobs over 40 minutes on AWS over moto (a SIGKILL every
# 10); each writes figures.json and soak.png to bench/soak-out/BACKEND. Then the reliability scenarios
# at 5x their job counts. Every step runs even if one before it fails.
soak: $(DEV_STAMP)  ## the long soak, local then AWS, then the reliability scenarios at 5x (about two hours)
	@status=0; \
	$(BIN)/python bench/soak.py --backend local --out bench/soak-out/local || status=1; \
	$(BIN)/python bench/soak.py --backend aws --out bench/soak-out/aws || status=1; \
	RELIABILITY_SCALE=5 $(BIN)/pytest tests/reliability || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) .relay .pytest_cache .mypy_cache .ruff_cache

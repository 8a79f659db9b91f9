# seedance-relay — the two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run demo test lint typecheck unit soak bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)  ## the relay on embedded defaults (SQLite, a folder, the built-in sandbox)
	$(BIN)/seedance-relay serve

demo: $(STAMP)  ## one three-modality job through the sandbox, end to end
	$(BIN)/seedance-relay demo

lint: $(STAMP)
	$(BIN)/ruff check handlers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck  ## the whole suite: ruff, mypy (strict), pytest
	$(BIN)/pytest

bench: $(STAMP)  ## all benchmarks, full mode; writes bench/results.json
	$(BIN)/python bench/run_all.py

soak: $(STAMP)  ## the reliability scenarios at 5x their job counts
	RELIABILITY_SCALE=5 $(BIN)/pytest tests/reliability

clean:
	rm -rf $(VENV) .relay .pytest_cache .mypy_cache .ruff_cache

# TradeML — make demo | make test | make dev | make bench
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: a looser spec resolves to a multi-GB CUDA build. A GPU host overrides it,
# e.g. make install TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
PIP := $(BIN)/python -m pip --disable-pip-version-check
export TRADEML_HOME ?= $(CURDIR)/.trademl
export TRADEML_ENV ?= local
export DAGSTER_HOME ?= $(TRADEML_HOME)/dagster
# a range run stores its asset events as one batch and plans one event per asset, not per
# session (trademl_jobs/event_log.py); the webserver and daemon create runs, so they need it too
export DAGSTER_EVENT_BATCH_SIZE ?= 10000
export DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS ?= 1

.PHONY: install install-dev demo test lint format dev bench mlflow serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q $(TORCH_SPEC)
	$(PIP) install -q -e .
	$(PIP) install -q -e '.[rl]'
	$(BIN)/python -m trademl_jobs.lake duckdb
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/python -m trademl_jobs.demo $(if $(AS_OF),--as-of $(AS_OF))

test: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: install-dev
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format: install-dev
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

dev: install
	$(BIN)/python -m trademl_jobs.instance
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

bench: install-dev
	$(BIN)/python -m benchmarks.run

# the training service on 127.0.0.1:8000 (needs TRADEML_API_TOKEN, and `make dev` running)
serve: install
	$(BIN)/python -m trademl_service

mlflow: install
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(TRADEML_HOME)/mlflow.db \
		--host 127.0.0.1 --port 5000

clean:
	rm -rf $(TRADEML_HOME)

# Two commands matter: `make run` and `make test`. Both set everything up from a bare Python 3.11 + make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PATH := $(CURDIR)/.venv/bin:$(PATH)
# The embedded warehouse file (DUCKDB_PATH, relative to this folder, as the pipeline resolves it).
DUCKDB_FILE := $(or $(DUCKDB_PATH),data/warehouse.duckdb)
# Test processes `make test` runs side by side (pytest-xdist; a module's tests stay in one process).
PYTEST_WORKERS ?= auto

.PHONY: help install prepare sample-data run dev test bench bench-quick chaos lint format clean clean-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet uv

.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --quiet
	@touch $@

install: .venv/.installed ## Install the locked environment (bootstraps uv if missing)

$(DAGSTER_HOME)/dagster.yaml: instance/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp instance/dagster.yaml $@

prepare: install $(DAGSTER_HOME)/dagster.yaml ## Parse the dbt project into its manifest (once, not at every load)
	cd dbt_project && $(RUN) dbt parse --quiet --profiles-dir .

sample-data: install ## Fill what is empty (raw tables, landing folders) with deterministic sample data
	$(RUN) python -m marketing_pipelines.sample_data --if-empty

run: prepare sample-data ## Set up, materialize every asset once on the embedded DuckDB, summarize (log in data/logs/)
	@$(RUN) python -m marketing_pipelines.run_health
	@$(RUN) python -m marketing_pipelines.run_daily

# `dg dev` finds the code location from [tool.dg] in pyproject.toml. --no-check-yaml: the project has no YAML
# components, and checking them imports every installed Dagster plugin first (seconds, and their import warnings).
dev: prepare sample-data ## The Dagster UI on http://127.0.0.1:3000
	$(RUN) dg dev --no-check-yaml -h 127.0.0.1 -p 3000

test: prepare ## Install and run the whole test suite (in parallel: PYTEST_WORKERS=auto, one worker a core)
	$(RUN) pytest -n $(PYTEST_WORKERS) --dist loadfile

bench: prepare ## Performance figures at 1M contacts + chaos run -> bench/results.{json,md} (BENCH_ARGS=...)
	$(RUN) python -m devtools.bench --with-chaos $(BENCH_ARGS)

bench-quick: prepare ## The bench at 50,000 contacts, no chaos (minutes), written to bench/quick.{json,md}
	$(RUN) python -m devtools.bench --quick --out bench/quick.json $(BENCH_ARGS)

chaos: prepare ## 100,000 users through 20% 429 / 5% 500 / 2% slow, SIGKILL, rerun -> bench/chaos.{json,md}
	$(RUN) python -m devtools.bench --chaos $(BENCH_ARGS)

lint: install ## ruff lint and format check; sqlfluff on the dbt project's SQL (style in .sqlfluff)
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) sqlfluff lint dbt_project

format: install ## Apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

clean-data: ## Remove the DuckDB warehouse file (a damaged one too); keeps landing files. `make run` rebuilds it
	rm -f $(DUCKDB_FILE) $(DUCKDB_FILE).wal

clean: ## Remove generated data, the dbt target and the local Dagster instance
	rm -rf data dbt_project/target $(DAGSTER_HOME)

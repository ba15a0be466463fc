# pq — run `make help` for the commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml shared/pqcore/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e shared/pqcore -e '.[dev,consoles,postgresql,notify,bench]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install pq with its development tools

run: setup ## run the system on SQLite (no Docker): producer, consumers, manager, consoles
	mkdir -p var/jobs logs
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/supervisord -c deploy/supervisord.conf

test: setup ## run every test tier (installs what the tiers need)
	bash deploy/scripts/ensure-system.sh
	$(MAKE) --no-print-directory lint
	$(VENV)/bin/pytest

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check shared services tests bench grafana examples
	$(VENV)/bin/mypy

console-admin: setup ## the admin console on http://127.0.0.1:8501 (login required)
	$(VENV)/bin/pq console admin

console-ops: setup ## the ops console on http://127.0.0.1:8502 (login required)
	$(VENV)/bin/pq console ops

stack-local: setup ## the Docker stack with 5 consumers, images built from a local base (no registry)
	@docker compose version >/dev/null 2>&1 || { echo "stack-local: no Compose v2 CLI" \
		"(\`docker compose\`); on Debian 12: sudo deploy/scripts/install-compose-v2.sh" >&2; exit 1; }
	bash deploy/scripts/docker-up.sh >/dev/null
	bash deploy/scripts/wheelhouse.sh
	bash deploy/scripts/make-secrets.sh
	BASE_IMAGE=pq-ci-base:bookworm PIP_NO_INDEX=1 PROMETHEUS_IMAGE=pq-ci-prometheus:local \
		POSTGRES_IMAGE=$${POSTGRES_IMAGE:-pq-ci-postgres:local} \
		docker compose up -d --build --scale consumer=5 producer consumer manager admin ops prometheus

dashboards: setup ## regenerate grafana/dashboards/*.json from grafana/generate.py
	$(PY) -m grafana.generate

bench: setup ## benchmarks against peers, measured in the same run
	$(PY) -m bench

bench-pg: setup ## pq on PostgreSQL vs pgqueuer, procrastinate, Oban (throwaway cluster, peers' own venvs)
	$(PY) -m bench.pg_peers

clean: ## remove the virtual environment and local state
	rm -rf $(VENV) var logs .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help setup run test lint bench bench-pg clean stack-local console-admin console-ops dashboards

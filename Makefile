# pq — run `make help` for the commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PQ_DB ?= var/queue.db

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
	$(VENV)/bin/ruff format --check shared services tests bench
	$(VENV)/bin/mypy

bench: setup ## benchmarks against peers, measured in the same run
	$(PY) -m bench

clean: ## remove the virtual environment and local state
	rm -rf $(VENV) var logs .pytest_cache .mypy_cache .ruff_cache .hypothesis

.PHONY: help setup run test lint bench clean

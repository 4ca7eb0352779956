# make run: start the gateway · make test: the whole suite · make bench: the benchmark · make lint
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench bench-ops lint clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m router_lib.tokens.vocab
	$(PY) -m router_plugins.scorer.distill
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/llm-router serve --config plugins.toml

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) bench/run.py

bench-ops: $(STAMP)
	$(PY) bench/run.py --ops redis

lint: $(STAMP)
	$(VENV)/bin/ruff check router_core router_lib router_plugins tests bench
	$(VENV)/bin/ruff format --check router_core router_lib router_plugins tests bench

clean:
	rm -rf $(VENV) build *.egg-info

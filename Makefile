# Everything installs itself into .venv on first use; nothing else is needed on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-quick torture clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: the main job on the embedded default (SQLite), no server to install
demo: $(STAMP)
	$(PY) RestPusher.py demo

## test: the whole suite (needs MariaDB and PostgreSQL on 127.0.0.1; skipped locally if absent, fatal under CI=true)
test: $(STAMP) lint
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(PY) -m bench --quick $(BENCH_ARGS)

## torture: the long reliability runs (~35 min; stops and restarts the local MariaDB), then their figures
torture: $(STAMP)
	$(PY) -m pytest tests -m torture $(PYTEST_ARGS)
	$(PY) -m tests.reliability.figures

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache

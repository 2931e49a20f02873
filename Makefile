# Everything installs itself into .venv on first use; nothing else is needed on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test check lint bench bench-quick torture clean test-tools

# The base station itself needs only `pip install -e .`; the demo and the tests also run the
# server, so they install its extra too ([test] includes [server]).
$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Under CI the tools some tests need are installed first; locally those tests skip without them.
ifneq ($(filter 1 true yes,$(CI)),)
TEST_TOOLS := test-tools
endif

## demo: the main job on the embedded default (SQLite), no server to install
demo: $(STAMP)
	$(PY) RestPusher.py demo

# Test processes at once (pytest-xdist): most tests wait on servers and databases, so three
# keep two cores busy. JOBS=0 runs them in one process.
JOBS ?= 3

## test: the whole suite (needs MariaDB and PostgreSQL on 127.0.0.1; skipped locally if absent, fatal under CI=true)
test: $(STAMP) lint $(TEST_TOOLS)
	$(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

## check: the fast lane: lint, then the tests that start no server and no subprocess (SQLite)
check: $(STAMP) lint
	COGENT_FAST_LANE=1 $(PY) -m pytest -q -m "not slow and not mysql and not postgresql" $(PYTEST_ARGS)

## test-tools: Debian's chromium + chromium-driver (the offline /docs page test) and systemd's
## systemd-analyze (the deployment test), from apt when missing; needs root
test-tools:
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	if [ -n "$$missing" ]; then \
		echo "make test-tools: installing$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

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

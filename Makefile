# Two entry points for a fresh Debian/Ubuntu machine with Python 3.11+:
#   make demo   - set up and run the main job on the embedded DuckDB
#   make test   - set up and run the whole test suite (with ruff and mypy)
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup system-deps prometheus-deb demo test test-dates lint

# The service and its runtime dependencies only (what `make demo` needs), with pip's progress shown.
$(VENV)/.runtime: pyproject.toml
	@echo "== installing finops and its runtime dependencies into $(VENV)"
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $@

# Everything the tests, linters, notebooks and Spark need on top.
$(VENV)/.dev: $(VENV)/.runtime
	@echo "== installing the test, lint, notebook and Spark extras"
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.dev

# A real Prometheus and promtool (Debian's package), installed when run as root.
prometheus-deb:
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; \
	  else echo "install Debian's prometheus package (apt-get install prometheus) for the Prometheus tests"; fi; \
	fi

# Debian packages the tests need: Prometheus, and Java for the Spark (local mode) tests of the lake export.
system-deps: prometheus-deb
	@if ! command -v java >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless; \
	  else echo "install a Java 17 runtime for the Spark tests"; fi; \
	fi

# The demo sends its most recent days through a real Prometheus when one is installed.
demo: $(VENV)/.runtime prometheus-deb
	$(BIN)/finops demo

lint: setup
	$(BIN)/ruff check finops tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# The date-sensitive tests (marker `clock`) again with the suite's clock at a month start, a month
# end, a year end and a leap day: nothing may depend on the day the suite happens to run.
DATES ?= 2027-03-01T00:20:00 2027-04-30T23:40:00 2026-12-31T23:30:00 2028-02-29T12:00:00
# Only the files that mark tests `clock` are collected: collecting the whole suite costs each run ~15 s.
CLOCK_TESTS = $(shell grep -rl --include='*.py' 'mark\.clock' tests)
test-dates: setup system-deps
	@for d in $(DATES); do echo "== FINOPS_TEST_NOW=$$d"; \
	  FINOPS_TEST_NOW=$$d PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n 2 -m clock $(CLOCK_TESTS) || exit 1; done

# Two workers (the machine's two cores); a test file stays on one worker, so its fixtures are shared.
# Bytecode is written even where the environment says not to: each worker and each later run then
# loads the test modules pytest has rewritten (~10 s of collection) instead of rewriting them again.
test: setup system-deps lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -q -n 2 --dist loadfile
	$(MAKE) --no-print-directory test-dates

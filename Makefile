# The two commands a newcomer needs: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TOOLS := $(VENV)/tools
PROMTOOL := $(TOOLS)/usr/bin/promtool

.PHONY: run test mutate lint format bench redis-server chromium promtool clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c "import sys; sys.exit(0 if sys.version_info >= (3, 11) else 'Python 3.11 or newer is needed')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Start the API on its embedded defaults (in-memory MongoDB, in-process Redis and gateway).
run: $(STAMP)
	$(BIN)/payments-api serve

## Run the whole test suite against a throwaway redis-server the tests start themselves.
test: $(STAMP) redis-server chromium promtool
	$(BIN)/python -m pytest

## The mutation check of the money rules (slow, not part of `test`): see tests/mutation.
mutate: $(STAMP) redis-server
	$(BIN)/python -m tests.mutation

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy src

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

## Benchmark the service (and the Express peer when node is here) with wrk; see bench/run.sh.
bench: $(STAMP)
	bash bench/run.sh

# The tests need the redis-server and redis-cli binaries (not a running server; redis-cli joins
# the cluster tier's nodes): install them when missing.
redis-server:
	@{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "redis-server or redis-cli is missing: installing the Debian packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  else \
	    echo "The tests need redis-server and redis-cli on PATH: install them (Debian/Ubuntu: sudo apt-get install redis-server redis-tools; macOS: brew install redis) and run make test again."; \
	    exit 1; \
	  fi; }

# The browser tier (tests/browser) drives Debian's headless Chromium at /usr/bin/chromium (never a
# browser build of Playwright's own, which cannot be downloaded here): install it when missing.
CHROMIUM := /usr/bin/chromium
chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "$(CHROMIUM) is missing: installing the Debian package chromium"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "The browser tests need Chromium at $(CHROMIUM): install it (Debian/Ubuntu: sudo apt-get install chromium) and run make test again."; \
	    exit 1; \
	  fi; }

# tests/deploy checks and unit-tests deploy/prometheus's alert rules with promtool: on PATH, or
# else extracted into $(TOOLS) from Debian's `prometheus` package (downloaded, not installed:
# installing it would start a Prometheus daemon on :9090; only the one binary is unpacked).
promtool:
	@command -v promtool >/dev/null 2>&1 || [ -x $(PROMTOOL) ] || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "promtool is missing: unpacking it from Debian's prometheus package into $(TOOLS)"; \
	    tmp=$$(mktemp -d) && chmod 755 "$$tmp" && \
	    { (cd "$$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null 2>&1) || \
	      { apt-get update -qq && (cd "$$tmp" && apt-get download -qq -o APT::Sandbox::User=root prometheus >/dev/null); }; } && \
	    mkdir -p $(TOOLS) && \
	    dpkg-deb --fsys-tarfile "$$tmp"/prometheus_*.deb | tar -x -C $(TOOLS) ./usr/bin/promtool; \
	    status=$$?; rm -rf "$$tmp"; \
	    [ $$status = 0 ] && [ -x $(PROMTOOL) ] || { echo "could not unpack promtool from Debian's prometheus package"; exit 1; }; \
	  else \
	    echo "The tests need promtool (Prometheus's rule checker) on PATH or at $(PROMTOOL): install it (Debian/Ubuntu: run make promtool as root, or apt-get download prometheus and unpack usr/bin/promtool; macOS: brew install prometheus) and run make test again."; \
	    exit 1; \
	  fi; }

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The README's two commands are `make demo` and `make test`; everything they need is set up here.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DELTAOMEGA := $(BIN)/deltaomega
# Downloads are cached outside the clone so repeat runs are fast.
export PIP_CACHE_DIR ?= $(HOME)/.cache/deltaomega/pip
export DELTAOMEGA_CACHE_DIR ?= $(HOME)/.cache/deltaomega
export npm_config_cache ?= $(HOME)/.cache/deltaomega/npm
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-train train kafka-resolve system-packages demo test test-fast lint format clean kafka-stop \
	bench bench-quick bench-soak dashboards console

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --progress-bar on -c constraints.txt -e ".[dev]"
	@touch $@

install: $(VENV)/.installed ## Create the virtualenv and install the package (pinned by constraints.txt)

# torch (the `train` extra) is for training and the ONNX parity tests; serving needs only
# onnxruntime, so `make demo` does not pull it. pip's cache keeps repeat installs cheap.
$(VENV)/.installed-train: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet --progress-bar on -c constraints.txt -e ".[dev,train]"
	@touch $@

install-train: $(VENV)/.installed-train ## Also install torch for `deltaomega train` (large download, cached)

train: install-train ## Train the four models (seed 7) into the registry and activate them
	$(DELTAOMEGA) train --seed 7 --activate

# The web console (console/: TypeScript, React, Vite) built into the package, which the API
# serves at /console; npm's cache is outside the clone.
CONSOLE_BUILD := deltaomega/console/static/index.html
console/node_modules/.package-lock.json: console/package.json console/package-lock.json
	@command -v npm >/dev/null || { echo "need node and npm (to build the console)"; exit 1; }
	cd console && npm ci --no-audit --no-fund
$(CONSOLE_BUILD): console/node_modules/.package-lock.json console/index.html console/vite.config.ts \
		console/tsconfig.json $(shell find console/src console/public -type f 2>/dev/null)
	cd console && npm run build

console: $(CONSOLE_BUILD) ## Build the web console into the package (npm ci, tsc, vite)

kafka-resolve: install ## Resolve the Kafka broker jars with Maven (cached)
	$(DELTAOMEGA) kafka resolve

demo: kafka-resolve $(CONSOLE_BUILD) ## Start Kafka and run the pipeline with the simulator (Ctrl-C to stop)
	$(DELTAOMEGA) kafka start
	DELTAOMEGA_ENV=$${DELTAOMEGA_ENV:-development} \
	DELTAOMEGA_POLICIES_FILE=$${DELTAOMEGA_POLICIES_FILE:-deltaomega/control/policies.example.yaml} \
	$(DELTAOMEGA) run --simulate --demo-keys

kafka-stop: install ## Stop the local Kafka started by `make demo`
	$(DELTAOMEGA) kafka stop

# Debian packages the tests use: a real redis-server (shared rate limits), promtool (the
# Prometheus rules and their unit tests) and Chromium (the console's browser tests; Playwright
# drives it, nothing is downloaded).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-packages: ## Install redis-server, prometheus (promtool) and chromium from Debian's packages when missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# kustomize renders the Kubernetes overlays; built once from the Go module proxy (cached).
KUSTOMIZE := $(DELTAOMEGA_CACHE_DIR)/go/bin/kustomize
export DELTAOMEGA_KUSTOMIZE := $(KUSTOMIZE)
$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "need go (to build kustomize)"; exit 1; }
	GOBIN=$(dir $(KUSTOMIZE)) GOPATH=$(DELTAOMEGA_CACHE_DIR)/go/path GOFLAGS=-modcacherw \
		go install sigs.k8s.io/kustomize/kustomize/v5@v5.7.1

# The suite in two parts: most of it on TEST_WORKERS processes at once (pytest-xdist; each
# starts its own broker, ClickHouse and Redis), then the tests that time real processes
# against each other (`alone`: kills, outages, a standby taking over) and the browser tests,
# one at a time with the machine to themselves. A part that PYTEST_ARGS leaves empty passes
# (pytest's exit code 5); `TEST_WORKERS=0` runs the first part in one process.
TEST_WORKERS ?= 2
PYTEST_PARALLEL := $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

test: kafka-resolve install-train system-packages $(KUSTOMIZE) $(CONSOLE_BUILD) ## Run the whole test suite (starts its own Kafka, embedded ClickHouse and Redis)
	rc=0; \
	$(PYTEST_PARALLEL) -m "not alone and not browser" $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then rc=0; fi; \
	$(BIN)/pytest -m "alone or browser" $(PYTEST_ARGS) || { last=$$?; [ $$last -eq 5 ] || rc=$$last; }; \
	exit $$rc

test-fast: kafka-resolve install-train system-packages $(KUSTOMIZE) $(CONSOLE_BUILD) ## The suite without the fault tests (kills, outages, fuzzing) and the browser tests
	$(PYTEST_PARALLEL) -m "not faults and not browser" $(PYTEST_ARGS)

dashboards: install ## Generate infra/grafana/dashboards/*.json from deltaomega/dashboards
	$(BIN)/python -m deltaomega.dashboards

lint: install-train ## ruff + mypy
	$(BIN)/ruff check deltaomega tests bench
	$(BIN)/ruff format --check deltaomega tests bench
	$(BIN)/mypy

format: install ## Apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix deltaomega tests bench
	$(BIN)/ruff format deltaomega tests bench

# One run of every benchmark: one table, appended to bench/RESULTS.md with the machine,
# versions and date (each piece can also be run alone: python -m bench.<name> --help).
bench: kafka-resolve ## Every benchmark at full size (about 10 minutes)
	$(BIN)/python -m bench.report --write

bench-quick: kafka-resolve ## The same, small (under 3 minutes once the peer venvs exist)
	$(BIN)/python -m bench.report --quick --write

bench-soak: kafka-resolve ## 5 minutes at 10,000 events/s: latency and RSS at minute 1 vs the end
	$(BIN)/python -m bench.latency --rate 10000 --seconds 300

clean: ## Remove the virtualenv and local state (not the download caches)
	rm -rf $(VENV) .deltaomega .pytest_cache .mypy_cache .ruff_cache console/node_modules \
		deltaomega/console/static

# Fresh machine to green tests, from a clean clone:
#
#   make setup   # Chromium (apt), .venv with cellucid editable + test extras (builds js/),
#                # .venv-upstream with cellucid==0.0.9 to compare against
#   make test    # ruff + pytest
#   make docs    # the guide, docs/_build/html (CI builds it too)
#
# Every step is skipped when its result is already there and up to date, so re-running
# `make setup` is quick. `make help` lists the targets.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UPSTREAM_VENV := .venv-upstream
UPSTREAM_VERSION := 0.0.9
CHROMIUM := /usr/bin/chromium

# apt needs root; use sudo when we are not root (CI and the dev machines run as root).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# The browser assets of the package (gitignored) and what they are built from.
STATIC := python/cellucid/static
STATIC_TARGET := $(STATIC)/viewer/index.html
JS_SOURCES := $(shell find js -path js/node_modules -prune -o -type f -print)
NODE_MODULES := js/node_modules/.package-lock.json

export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup chromium venv upstream js test lint bench bench-quick docs docs-images clean

help:
	@echo "make setup   set up this machine: chromium, $(VENV) (cellucid -e .[test,docs]), $(UPSTREAM_VENV) (cellucid==$(UPSTREAM_VERSION))"
	@echo "make test    ruff check + pytest"
	@echo "make lint    ruff check"
	@echo "make bench   run every benchmark at full size (extra arguments in BENCH_ARGS, e.g. --keep)"
	@echo "make bench-quick   every benchmark with --quick (CI: each must run and print its table)"
	@echo "make docs    build the guide into docs/_build/html (offline, warnings are errors; runs the tutorials;"
	@echo "             CELLUCID_DOCS_EXECUTE=off skips running them for quick edits of the prose)"
	@echo "make docs-images   render the guide's screenshots into docs/_static/generated/"
	@echo "make js      rebuild $(STATIC)/ if js/ changed"
	@echo "make clean   remove build output ($(STATIC)/, build/, dist/, docs/_build/, $(DOCS_IMAGES)/)"

setup: chromium venv upstream js
	@echo "==> setup done"

chromium:
	@if [ -x $(CHROMIUM) ]; then \
		echo "==> chromium: $(CHROMIUM) is installed"; \
	else \
		echo "==> chromium: installing the Debian package (browser tests)"; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; \
	fi

venv: $(VENV)/.setup-done

$(PY):
	@echo "==> $(VENV): creating the virtualenv with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)

# Reinstalled when the package metadata or the JS dependencies change. Installing
# cellucid editable runs the JS build (hatch-jupyter-builder, see pyproject.toml).
$(VENV)/.setup-done: pyproject.toml $(NODE_MODULES) | $(PY)
	@echo "==> $(VENV): upgrading pip"
	$(PY) -m pip install --quiet --upgrade pip
	@echo "==> $(VENV): installing cellucid in editable mode with the test and docs extras (builds js/)"
	$(PY) -m pip install --quiet -e ".[test,docs]"
	@touch $@

# The upstream package we compare against lives in its own virtualenv: installing it
# into $(VENV) would shadow ours (both are called cellucid).
upstream: $(UPSTREAM_VENV)/.cellucid-$(UPSTREAM_VERSION)

$(UPSTREAM_VENV)/.cellucid-$(UPSTREAM_VERSION):
	@echo "==> $(UPSTREAM_VENV): installing upstream cellucid==$(UPSTREAM_VERSION)"
	@[ -x $(UPSTREAM_VENV)/bin/python ] || $(PYTHON) -m venv $(UPSTREAM_VENV)
	$(UPSTREAM_VENV)/bin/python -m pip install --quiet "cellucid==$(UPSTREAM_VERSION)"
	@touch $@

# npm ci: exactly what js/package-lock.json pins.
$(NODE_MODULES): js/package.json js/package-lock.json
	@echo "==> js: npm ci"
	cd js && npm ci --no-audit --no-fund
	@touch $@

js: $(STATIC_TARGET)

$(STATIC_TARGET): $(JS_SOURCES) $(NODE_MODULES)
	@echo "==> js: building $(STATIC)/ (npm run build)"
	cd js && npm run build

test: js
	@echo "==> ruff check"
	$(VENV)/bin/ruff check .
	@echo "==> node --test (viewer modules)"
	cd js && npm test
	@echo "==> pytest"
	$(PY) -m pytest

lint:
	@echo "==> ruff check"
	$(VENV)/bin/ruff check .

# Every benchmark script in benchmarks/ (a new one is added here; it needs --quick).
BENCHMARKS := run server column_cache compare widget selection scale lod

# Runs each of $(BENCHMARKS) with the arguments $(1), all of them even when one fails; fails
# at the end when one exited non-zero or printed no table (tables go to stdout, progress to
# stderr: fewer than 3 lines on stdout is no table). With --quick the benchmarks judge only
# correctness, not their timing targets (see benchmarks/_common.py).
define run_benchmarks
	@failed=""; out=$$(mktemp); \
	for name in $(BENCHMARKS); do \
		echo "==> benchmarks/$$name.py $(strip $(1))"; \
		start=$$SECONDS; \
		$(PY) benchmarks/$$name.py $(1) | tee $$out; status=$${PIPESTATUS[0]}; \
		rows=$$(grep -c . $$out); \
		echo "==> benchmarks/$$name.py: exit $$status, $$rows lines on stdout, $$((SECONDS - start)) s"; \
		if [ $$status -ne 0 ] || [ $$rows -lt 3 ]; then failed="$$failed $$name.py"; fi; \
	done; \
	rm -f $$out; \
	if [ -n "$$failed" ]; then echo "==> failed (non-zero exit or no table):$$failed"; exit 1; fi
endef

bench: js
	$(call run_benchmarks,$(BENCH_ARGS))

bench-quick: js
	$(call run_benchmarks,--quick $(BENCH_ARGS))

# The guide (docs/). The screenshots it shows are rendered from generated data by
# docs/images.py (headless chromium, like the browser tests); nothing of it is committed.
DOCS_IMAGES := docs/_static/generated

docs-images: js
	@echo "==> docs/images.py: screenshots into $(DOCS_IMAGES)/"
	$(PY) docs/images.py $(DOCS_IMAGES)

docs: docs-images
	@echo "==> sphinx-build (executes the tutorials)"
	@start=$$SECONDS; \
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html && \
	echo "==> docs built in $$((SECONDS - start)) s: docs/_build/html/index.html"

clean:
	@echo "==> removing build output"
	rm -rf $(STATIC) build dist docs/_build $(DOCS_IMAGES) docs/api/generated

# cswf: two commands on a fresh machine — `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The Dagster instance lives in data/dagster (runs, event logs, schedule state), configured by
# a copy of ./dagster.yaml; `cswf demo`, `cswf tick` and `cswf run` record their runs there too.
DAGSTER_HOME := $(CURDIR)/data/dagster
INSTANCE := $(DAGSTER_HOME)/dagster.yaml
demo ui: export DAGSTER_HOME := $(DAGSTER_HOME)
UI_PORT ?= 3000

.PHONY: setup demo ui test system lint bench schema clean

setup: $(STAMP)

# A virtual environment with every dependency pinned in requirements.lock, installed by uv
# (a few seconds where pip takes half a minute); pip does it when uv cannot be had. The
# environment is made without pip (seeding it costs 4 s): the system's pip puts uv in it, and
# uv puts pip in it with the rest (the install tests use the environment's own pip).
UV_VERSION := 0.13.9
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv --without-pip $(VENV)
	@echo "installing requirements.lock and cswf (editable) into $(VENV)"
	@if $(PYTHON) -m pip --python $(BIN)/python install -qq uv==$(UV_VERSION) 2>/dev/null && \
		$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock pip && \
		$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .; then :; \
	else \
		echo "uv could not install them: pip does"; \
		$(BIN)/python -m ensurepip > /dev/null && \
		$(BIN)/python -m pip install -qq --upgrade pip && \
		$(BIN)/python -m pip install -qq -r requirements.lock && \
		$(BIN)/python -m pip install -qq --no-deps -e .; \
	fi
	touch $(STAMP)

$(INSTANCE): dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(INSTANCE)

demo: $(STAMP) $(INSTANCE)
	$(BIN)/cswf demo

# The UI, the daemon (schedules, sensors, run queue) and the project's code server: `dg dev`
# loads src/demo_project/definitions.py ([tool.dg] in pyproject.toml).
ui: $(STAMP) $(INSTANCE)
	$(BIN)/dg dev -p $(UI_PORT)

test: $(STAMP) system
	$(BIN)/ruff check .
	$(BIN)/pytest

# Tests open the HTML report in Debian's Chromium and start a PostgreSQL server of their own
# (shard slices and Dagster's records in Postgres): Debian's packages, installed here when
# missing (needs root). Without them those tests are skipped (pytest -rs says which). Debian's
# postgresql package also sets up a server of its own on port 5432: the tests do not use it.
system:
	@missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
		missing="$$missing postgresql"; \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || \
		echo "$$missing could not be installed: the tests that need it are skipped (pytest -rs)"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/bench.py

schema: $(STAMP)
	$(BIN)/cswf schema --out docs/workflow-spec.schema.json

clean:
	rm -rf data .pytest_cache .ruff_cache .hypothesis

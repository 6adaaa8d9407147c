# StreetSense: `make demo` and `make test` are the two first commands (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test soak lint bench demo clean broker wheel-roles fuzz

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The real servers the tests start on free ports, and the real browser (Debian packages): the
# broker `mosquitto`, the clustered broker `nats-server`, `postgresql` (initdb) for the city's
# database, and `chromium` for the gateway's status page (driven by Playwright).
broker:
	@for need in mosquitto:/usr/sbin/mosquitto nats-server:/usr/sbin/nats-server \
	    postgresql:/usr/lib/postgresql/*/bin/initdb chromium:/usr/bin/chromium; do \
	  package=$${need%%:*}; file=$${need#*:}; \
	  command -v $$package >/dev/null 2>&1 || ls $$file >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      (apt-get install -y -qq $$package >/dev/null 2>&1 || \
	       (apt-get update -qq && apt-get install -y -qq $$package)); \
	    else \
	      echo "$$package is missing: install it with 'sudo apt-get install $$package'" >&2; \
	      exit 1; \
	    fi; }; \
	done

test: venv broker
	$(BIN)/python -m pytest

# Long variants of the HIL scenarios (hours of outage, a minute of line noise...): not in `make test`.
soak: venv broker
	$(BIN)/python -m pytest -m soak tests/hil tests/fleet

# Differential fuzz of the node's and the gateway's codecs, 1,000,000 inputs (make test runs 20,000).
fuzz: venv
	$(BIN)/python tests/protocol/differential.py --inputs 1000000

lint: venv
	$(BIN)/ruff check streetsense protocol tools tests benchmarks hil_tests firmware gateway \
	  scripts/check-wheel-roles
	scripts/check-imports
	scripts/typecheck-host
	scripts/typecheck-device

# The wheel installed by role into fresh venvs, each role's commands run from it (CI runs it).
wheel-roles: venv
	$(BIN)/python scripts/check-wheel-roles

bench: venv broker
	$(BIN)/python benchmarks/protocol_bench.py
	$(BIN)/python benchmarks/node_bench.py
	$(BIN)/python benchmarks/gateway_bench.py
	$(BIN)/python benchmarks/ble_bench.py
	$(BIN)/python benchmarks/fleet_bench.py
	$(BIN)/python benchmarks/ota_bench.py
	$(BIN)/python benchmarks/traffic_accuracy.py

# Emulated nodes -> gateway -> an embedded MQTT broker, live on screen; Ctrl-C ends it.
demo: venv
	$(BIN)/streetsense demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

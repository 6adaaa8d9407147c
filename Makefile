# StreetSense: `make demo` and `make test` are the two first commands (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint bench demo clean broker

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The real broker the tests start on free ports (Debian package `mosquitto`).
broker:
	@command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get install -y -qq mosquitto >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq mosquitto)); \
	  else \
	    echo "mosquitto is missing: install it with 'sudo apt-get install mosquitto'" >&2; exit 1; \
	  fi; }

test: venv broker
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check protocol tools tests benchmarks hil_tests firmware
	$(BIN)/mypy
	scripts/typecheck-device

bench: venv
	$(BIN)/python benchmarks/protocol_bench.py

demo:
	@echo "make demo is not built yet: see README.md (Status)." >&2; exit 1

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

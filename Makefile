# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
GEN_STAMP := titan_grpc/gen/.generated
BUF_DIR := .tools/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')
NODE_CLIENT := clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed

.PHONY: all setup run test lint proto buf bench clean node-client lock engines

all: test

setup: $(STAMP) $(GEN_STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The development set-up: the package (editable) plus the dev tools.
$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,ccxt]'
	touch $(STAMP)

# `make run` installs the package alone (no dev tools); its build hook (setup.py) generates
# titan_grpc/gen, and re-installing after a .proto change regenerates it.
$(RUN_STAMP): pyproject.toml setup.py scripts/gen_proto.py $(PROTOS) | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

# Generated code is not committed: it is produced here from protos/ on set-up, so it can
# never be stale (see README, "Generated code").
$(GEN_STAMP): $(STAMP) $(PROTOS) scripts/gen_proto.py
	rm -rf titan_grpc/gen
	$(PY) scripts/gen_proto.py
	touch $(GEN_STAMP)

proto:
	rm -f $(GEN_STAMP)
	$(MAKE) $(GEN_STAMP)

$(BUF): tools/buf/package.json tools/buf/package-lock.json
	mkdir -p $(BUF_DIR)
	cp tools/buf/package.json tools/buf/package-lock.json $(BUF_DIR)/
	cd $(BUF_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(BUF)

buf: $(BUF)

$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

node-client: $(NODE_STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/titan-grpc serve

# Real PostgreSQL and Redis for the store tests, from Debian's packages when missing
# (tests/engines.py starts them on loopback; PostgreSQL runs as `nobody` under root).
APT_INSTALL := apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends
engines:
	@command -v redis-server >/dev/null 2>&1 || command -v valkey-server >/dev/null 2>&1 \
		|| ($(APT_INSTALL) redis-server)
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| ($(APT_INSTALL) postgresql)

# TITAN_REQUIRE_ENGINES=1: a missing engine fails the run instead of skipping its tests.
test: setup $(BUF) $(NODE_STAMP) engines
	@# the HTTP/JSON tests run the README's curl lines with real curl (Debian: curl)
	command -v curl >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q curl)
	cd $(NODE_CLIENT) && TITAN_PYTHON=$(abspath $(PY)) npm test --silent
	TITAN_REQUIRE_ENGINES=1 TITAN_BUF=$(abspath $(BUF)) $(PY) -m pytest -q

lint: setup $(BUF)
	$(VENV)/bin/ruff check titan_grpc tests scripts clients/python bench setup.py examples
	$(VENV)/bin/ruff format --check titan_grpc tests scripts clients/python bench setup.py examples
	$(VENV)/bin/mypy
	$(BUF) lint
	$(PY) scripts/buf_breaking.py $(BUF)

# requirements.lock: exact, hashed versions of the service's dependencies for deployments
# (pyproject.toml keeps ranges for the library). Needs the registry; CI never runs it.
lock: setup
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --universal --generate-hashes \
	  --python-version 3.11 --no-header --quiet -o requirements.lock

# Benchmarks: h2load (Debian nghttp2-client) and ccxt (benchmark-only) are installed here.
bench: setup
	command -v h2load >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q nghttp2-client)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) titan_grpc/gen .tools .mypy_cache .ruff_cache .pytest_cache build *.egg-info

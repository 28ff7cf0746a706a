# Two commands on a fresh machine: `make run` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := titan_grpc/gen/.generated
BUF_DIR := .tools/buf
BUF := $(BUF_DIR)/node_modules/.bin/buf
PROTOS := $(shell find protos -name '*.proto')
NODE_CLIENT := clients/node
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed

.PHONY: all setup run test lint proto buf bench clean

all: test

setup: $(STAMP) $(GEN_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ccxt]'
	touch $(STAMP)

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

run: setup
	$(PY) -m titan_grpc serve

test: setup $(BUF) $(NODE_STAMP)
	cd $(NODE_CLIENT) && TITAN_PYTHON=$(abspath $(PY)) npm test --silent
	TITAN_BUF=$(abspath $(BUF)) $(PY) -m pytest -q

lint: setup $(BUF)
	$(VENV)/bin/ruff check titan_grpc tests scripts clients/python bench examples
	$(VENV)/bin/ruff format --check titan_grpc tests scripts clients/python bench examples
	$(VENV)/bin/mypy
	$(BUF) lint

# Benchmarks: h2load (Debian nghttp2-client) and ccxt (benchmark-only) are installed here.
bench: setup
	command -v h2load >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q nghttp2-client)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) titan_grpc/gen .tools .mypy_cache .ruff_cache .pytest_cache

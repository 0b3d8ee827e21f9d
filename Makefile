# flowpair: every target sets itself up; `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export PYTHONPATH := $(CURDIR)
PROTO_SRC := $(wildcard protos/flowpair/v1/*.proto protos/flowpair/internal/v1/*.proto)
GEN_STAMP := flowpair/v1/.generated

.PHONY: all install protos generate run test lint migrate fmt bench chaos demo clean dbshell contract-baseline node-client

all: protos

$(BIN)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# compat: the project folder goes on sys.path, so the code `make protos` generates later
	# (flowpair/) is importable by the installed console scripts too (flowctl).
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(BIN)/.installed

# The one recipe that writes generated code: messages, gRPC stubs and their typed stubs (.pyi),
# with the grpcio-tools and mypy-protobuf of the Python it is given ($(1)), whose scripts
# folder holds the protoc plugins: the venv's for `make protos`, and the image's own for the
# Dockerfile, which has no venv and runs `make generate PYTHON=python`.
define generate-code
rm -rf flowpair
mkdir -p flowpair/v1 flowpair/internal/v1
scripts=$$($(1) -c 'import sysconfig; print(sysconfig.get_path("scripts"))') \
&& $(1) -m grpc_tools.protoc -Iprotos \
  --python_out=. --grpc_python_out=. \
  --plugin=protoc-gen-mypy=$$scripts/protoc-gen-mypy --mypy_out=. \
  --plugin=protoc-gen-mypy_grpc=$$scripts/protoc-gen-mypy_grpc --mypy_grpc_out=. \
  $(PROTO_SRC)
touch flowpair/__init__.py flowpair/v1/__init__.py flowpair/internal/__init__.py flowpair/internal/v1/__init__.py flowpair/py.typed
endef

$(GEN_STAMP): $(BIN)/.installed $(PROTO_SRC)
	$(call generate-code,$(PY))
	touch $@

protos: $(GEN_STAMP)

# Without the venv: always regenerates, with $(PYTHON)'s tools.
generate:
	$(call generate-code,$(PYTHON))

run: protos
	$(PY) -m flowpair_shared.devstack run

migrate: protos
	$(PY) -m flowpair_shared.devstack migrate

# The Node.js client the suite runs (tests/test_node_client.py), from its lock file.
NODE_CLIENT := examples/node
$(NODE_CLIENT)/node_modules/.installed: $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-client: $(NODE_CLIENT)/node_modules/.installed

test: protos node-client
	$(PY) -m pytest $(PYTEST_ARGS)

lint: protos
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	cd protos && ../$(BIN)/buf lint
	cd protos && ../$(BIN)/buf breaking --against contract.binpb

# The contract buf breaking compares with (protos/contract.binpb): rebuild it only for a
# change of the contract that clients were told about, in the same commit as the change.
contract-baseline: $(BIN)/.installed
	cd protos && ../$(BIN)/buf build --exclude-source-info -o contract.binpb

fmt: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: protos
	$(PY) examples/demo.py $(DEMO_ARGS)

# Against the SQL floor and a bare echo in one run (~5 min); prints a table, writes
# bench/results/<UTC time>.json and docs/performance.md. BENCH_ARGS=--big adds the
# 1,000,000-row journey and the 1 GB upload; --help lists the sizes.
bench: protos
	$(PY) -m tests.benchmarks $(BENCH_ARGS)

# 2+2 replicas under SIGKILLs and PostgreSQL restarts, then invariants in SQL and RPCs;
# e.g. CHAOS_ARGS='--flows 200 --kill-interval 3 --seed 7' (see `python -m tests.chaos -h`).
chaos: protos
	$(PY) -m tests.chaos $(CHAOS_ARGS)

clean:
	rm -rf flowpair .venv .data .mypy_cache .ruff_cache .pytest_cache $(NODE_CLIENT)/node_modules

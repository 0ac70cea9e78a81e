# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PROTOS := $(wildcard proto/minga/v1/*.proto)

.PHONY: run test proto bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(STAMP)

install: $(STAMP)
install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/minga up

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

proto: $(DEV_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto $(PROTOS)

bench: $(DEV_STAMP)
	$(BIN)/python bench/submit_latency.py
	$(BIN)/python bench/cycle_bench.py
	$(BIN)/python bench/broker_cycle.py
	$(BIN)/python bench/fair_share_targets.py
	$(BIN)/python bench/array_submit.py
	$(BIN)/python bench/submit_rate.py
	$(BIN)/python bench/agents_load.py
	$(BIN)/python bench/e2e_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info

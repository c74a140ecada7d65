# tradeops: the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# checkov lives in its own venv: its pinned dependencies clash with Airflow's.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
# Two pytest-xdist workers, one test file each (tests in a file share their fixtures and order).
PYTEST_ARGS ?= -q -n 2 --dist loadfile

.PHONY: run stop status test lint venv reset lock bench bench-data bench-models bench-agents help

help:
	@echo "make run     bring up Kafka, the paper venue and Airflow, restarted when a component dies (idempotent)"
	@echo "make stop    stop everything 'make run' started (state is kept under .local/)"
	@echo "make status  show what is running, restarting or DEAD (exit 1 if something is DEAD or stuck)"
	@echo "make test    run the test suite (starts its own Kafka broker and Airflow DB; installs Debian's chromium for the browser tests)"
	@echo "make ui      build the Desk's front end (ui/ -> ui/dist/; make run and make test do it)"
	@echo "make lint    ruff"
	@echo "make bench   kill-switch latency and event throughput against the running stack (make run first)"
	@echo "make bench-data  the data pipeline on 1M bars (700 symbols x 1,440 minutes) and the drift check's error rates"
	@echo "make bench-models  weekly training on the default universe (90 days) and serving latency p50/p99"
	@echo "make bench-agents  what one trading-agent run costs on the running stack, and three agents on their schedules (make run first)"
	@echo "make reset   stop and delete all local state (.local/, except the Kafka jar cache)"
	@echo "make lock    re-resolve and pin requirements.txt (UPGRADE=1: newest versions, not the current pins)"

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

venv: $(STAMP) $(CHECKOV_STAMP)

# The desk's front end (ui/): npm ci from the lockfile, typecheck, unit tests, esbuild bundle into ui/dist/.
.PHONY: ui
UI_SOURCES := $(shell find ui/src ui/test ui/icons -type f 2>/dev/null) ui/build.mjs ui/tsconfig.json
UI_DEPS := ui/node_modules/.installed
UI_STAMP := ui/dist/.built

$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund
	@touch $@

$(UI_STAMP): $(UI_DEPS) $(UI_SOURCES)
	cd ui && npm run --silent typecheck && npm test --silent && npm run --silent build
	@touch $@

ui: $(UI_STAMP)

# The Desk's browser tests drive Debian's chromium (never a browser a test tool downloads).
CHROMIUM := /usr/bin/chromium
.PHONY: browser
browser:
	@test -x $(CHROMIUM) || { \
	  echo "installing Debian's chromium for the Desk's browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	    echo "make test: $(CHROMIUM) is missing and this user cannot install packages: apt-get install chromium" >&2; exit 1; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
	  { $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }
	@test -x $(CHROMIUM)

run: $(STAMP) ui
	@scripts/local-stack.sh up

stop: $(STAMP)
	@scripts/local-stack.sh down

status: $(STAMP)
	@scripts/local-stack.sh status

test: $(STAMP) $(CHECKOV_STAMP) ui browser
	@command -v kubectl >/dev/null || { echo "make test: kubectl not found on PATH (tests/test_k8s_*.py render k8s/ with kubectl kustomize)" >&2; exit 1; }
	TRADEOPS_CHECKOV=$(CHECKOV_VENV)/bin/checkov $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	@eval "$$(scripts/local-stack.sh env)" && \
	  $(BIN)/python scripts/bench_events.py kill-switch --trials $${TRIALS:-20} && \
	  $(BIN)/python scripts/bench_events.py throughput --valid $${VALID:-500} --malformed $${MALFORMED:-50}

bench-data: $(STAMP)
	$(BIN)/python scripts/bench_data.py --symbols $${SYMBOLS:-700} --runs $${RUNS:-5}
	PYTHONPATH=. $(BIN)/python scripts/bench_drift.py

bench-models: $(STAMP)
	$(BIN)/python scripts/bench_models.py --days $${DAYS:-90} --calls $${CALLS:-500}

bench-agents: $(STAMP)
	@eval "$$(scripts/local-stack.sh env)" && \
	  $(BIN)/python scripts/bench_agents.py --agent $${AGENT:-btc} --runs $${RUNS:-5} --idle $${IDLE:-30} $${TRADE:+--trade}

lint: $(STAMP)
	$(BIN)/ruff check tradeops operators sensors plugins dags tests scripts

reset: $(STAMP)
	-@scripts/local-stack.sh down
	find .local -mindepth 1 -maxdepth 1 ! -name kafka -exec rm -rf {} +
	find .local/kafka -mindepth 1 -maxdepth 1 ! -name libs -exec rm -rf {} + 2>/dev/null || true
	@echo "local state deleted; 'make run' starts from the seeded defaults"

# The top-level packages; everything else in requirements.txt is what they pull in. uv resolves the
# set (pip's resolver backtracks for a long time between aiobotocore's narrow botocore range and
# boto3), keeping each version already in requirements.txt that still fits (`make lock UPGRADE=1`
# takes the newest of everything instead); pip installs it and its freeze is the lock, in pip's
# spelling. setuptools is removed first so it is pinned only if something needs it at run time.
LOCK_PACKAGES := "apache-airflow==3.3.2" apache-airflow-providers-apache-kafka \
  apache-airflow-providers-cncf-kubernetes apache-airflow-providers-common-messaging \
  apache-airflow-providers-standard "apache-airflow-providers-amazon[s3fs]>=9.39.0" \
  confluent-kafka ccxt requests boto3 pandas "pandera[pandas]" exchange-calendars scikit-learn mlflow vaderSentiment \
  pytest pyyaml sqlalchemy "psycopg[binary]"

lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip "uv==0.13.9"
	.lock-venv/bin/pip uninstall --quiet --yes setuptools
	printf '%s\n' $(LOCK_PACKAGES) > .lock-venv/top.in
	cp requirements.txt .lock-venv/resolved.txt
	.lock-venv/bin/uv pip compile --quiet --no-header --no-annotate --python .lock-venv/bin/python \
	  $(if $(UPGRADE),--upgrade) .lock-venv/top.in -o .lock-venv/resolved.txt
	.lock-venv/bin/pip install --quiet -r .lock-venv/resolved.txt
	{ echo "# The whole resolved dependency set, pinned (Python 3.11/3.12). Regenerate with: make lock"; \
	  .lock-venv/bin/pip freeze --all --exclude pip --exclude uv; } > requirements.txt
	rm -rf .lock-venv

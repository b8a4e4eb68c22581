# Non-Refoulement Watch: `make run` starts everything, `make test` runs every test tier.
# Everything downloaded or built is cached under .cache/ (ignored), runtime data under var/.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
export PIP_CACHE_DIR := $(CURDIR)/.cache/pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1
REQ_STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-12)
PYTEST := $(PY) -m pytest

.PHONY: help install browser run stop backup restore test test-unit test-integration test-e2e test-compose test-cluster bench translations clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 20

$(REQ_STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || { echo "python: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "python: installing pinned packages into $(VENV)"
	@$(PY) -m pip install -q -r requirements-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@

install: $(REQ_STAMP)  ## install what is missing: Python packages, Kafka jars, FerretDB
	@$(VENV)/bin/pybabel -q compile -d shared/translations
	@$(PY) -m infra.stack install

run: install  ## start the whole stack locally and print where to go (Ctrl-C stops it)
	@$(PY) -m infra.stack run

stop:  ## stop a stack left running by `make run`
	@$(PY) -m infra.stack stop

BACKUP_DIR ?= backups
KEYS_DIR ?= key-backups
backup: $(REQ_STAMP)  ## back up the running stack: a data archive in BACKUP_DIR, the keys in KEYS_DIR (move them apart; README, "Disaster recovery")
	$(PY) -m infra.backup create --out $(BACKUP_DIR)/
	$(PY) -m infra.backup keys --out $(KEYS_DIR)/

restore: install  ## restore ARCHIVE=<data archive> KEYS=<keys archive> IDENTITY=<recovery key file> into an empty var/ (FORCE=1: destroy what var/ holds)
	@test -n "$(ARCHIVE)" -a -n "$(KEYS)" || { echo "usage: make restore ARCHIVE=<data archive> KEYS=<keys archive> IDENTITY=<recovery key file> [FORCE=1]"; exit 2; }
	$(PY) -m infra.backup restore "$(ARCHIVE)" --keys "$(KEYS)" $(if $(IDENTITY),--identity "$(IDENTITY)") $(if $(FORCE),--force)

browser:  ## install Debian's Chromium for the browser tests, and fetch axe-core (pinned) into .cache/, if missing
	@infra/browser.sh
	@infra/axe.sh

test: install browser  ## run every test tier: unit, integration, end-to-end (with a real browser), compose, cluster
	@$(MAKE) --no-print-directory test-unit test-integration test-e2e test-compose test-cluster

test-unit: $(REQ_STAMP)  ## unit tests (no I/O)
	@$(VENV)/bin/pybabel -q compile -d shared/translations
	$(PYTEST) tests/unit

test-integration: install  ## integration tests against a real Kafka broker and FerretDB
	$(PYTEST) tests/integration

test-e2e: install browser  ## end-to-end tests: the whole stack as `make run` starts it, and a real Chromium
	$(PYTEST) tests/e2e

test-cluster: install  ## three Kafka brokers and two of every consumer and relay: a broker and a consumer SIGKILLed while reports flow (about 3 minutes)
	$(PYTEST) tests/cluster

test-compose: $(REQ_STAMP)  ## docker-compose.yml and docker-compose.cluster.yml checks, and the compose stacks where a Docker engine exists
	$(PYTEST) tests/compose

bench: install  ## benchmarks: pipeline and form-to-case latency vs a bare Kafka round trip (one broker, then the pipeline on a three-broker cluster), intake throughput vs /healthz, reporting at 10k/30k/100k cases, every list's columns at 10k/30k/100k (in-process and over HTTP, with a backlog), every list and consumer through the real consumers at 10k/30k/100k, a report and a status change with the broker paused beside the same without (bench/results/)
	$(PY) -m bench.pipeline
	$(PY) -m bench.pipeline --brokers 3 --instances 2 --form-reports 0
	$(PY) -m bench.throughput
	$(PY) -m bench.scale
	$(PY) -m bench.columns
	$(PY) -m bench.lists --sizes 10000,30000,100000 --ingest-cap-minutes 25
	$(PY) -m bench.outage

translations: $(REQ_STAMP)  ## extract the pages' strings into the catalog; new ones then need their Korean in messages.po
	@$(VENV)/bin/pybabel -q extract -F babel.cfg -k N_ -o shared/translations/messages.pot .
	@$(VENV)/bin/pybabel -q update -i shared/translations/messages.pot -d shared/translations -w 100
	@$(VENV)/bin/pybabel -q compile -d shared/translations

clean:  ## remove runtime data (var/); caches in .cache/ are kept
	rm -rf var

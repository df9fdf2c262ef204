# certforge.pki -- developer and CI entry points (`make help` lists them).
#
# Everything installs itself: `make test` on a fresh Debian machine with python3 builds the
# virtualenv, installs the system packages (when root), and runs every check.
# build/collections/ansible_collections/certforge/pki is a link back to this directory, so
# every recursive scan (pytest, ansible-lint, copies) must leave build/ out.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
.SUFFIXES:

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
REQUIREMENTS := tests/requirements.txt requirements.txt
STAMP := $(VENV)/.certforge-requirements.stamp

BUILD := build
COLL := $(BUILD)/collections
COLL_LINK := $(COLL)/ansible_collections/certforge/pki
SANITY_ROOT := $(BUILD)/sanity
SANITY_DIR := $(SANITY_ROOT)/ansible_collections/certforge/pki
SANITY_PYTHON ?= 3.11
SANITY_ARGS ?=
ANSIBLE_TEST_CACHE := $(HOME)/.ansible/test/cache
SYSTEM_PACKAGES := nginx openssl shellcheck pebble
# command:package of the servers the deploy targets are tested against (installed, never started
# by the package scripts: the tests run each on 127.0.0.1 with its own config)
SERVER_PACKAGES := apache2:apache2 haproxy:haproxy caddy:caddy postfix:postfix dovecot:dovecot-imapd keytool:default-jre-headless /usr/share/tomcat10/bin/catalina.sh:tomcat10 chromium:chromium
PYTEST_ARGS ?=

# Environment for every ansible / pytest run started from here. HOME stays untouched.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/$(COLL)
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/$(BUILD)/tmp/local
export ANSIBLE_REMOTE_TMP := $(CURDIR)/$(BUILD)/tmp/remote
export ANSIBLE_LOCALHOST_WARNING := False
export ANSIBLE_INVENTORY_UNPARSED_WARNING := False
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# pip, ansible-lint and friends cache inside the work tree, not in the user's home.
export XDG_CACHE_HOME := $(CURDIR)/$(BUILD)/cache
# Safety net for hung tests; a test or an ini file may set its own timeout.
export PYTEST_TIMEOUT ?= 900
ifneq ($(CI),)
export ANSIBLE_NOCOLOR := 1
export NO_COLOR := 1
LINT_COLOR := --nocolor
TEST_COLOR := --color no
endif

PYTEST := PYTHONPATH=$(CURDIR)/$(COLL) $(PY) -m pytest --import-mode=importlib -p no:cacheprovider

.PHONY: help venv deps collection units sanity lint integration chaos chaos-bounded test demo bench clean distclean

help: ## List the targets
	@grep -E '^[a-z][a-z-]*:.*## ' $(firstword $(MAKEFILE_LIST)) | \
	  awk -F':.*## ' '{ printf "  make %-12s %s\n", $$1, $$2 }'

venv: $(STAMP) ## Create .venv and install tests/requirements.txt (again only when it changes)

$(STAMP): $(REQUIREMENTS)
	@test -x $(PY) || { echo "venv: creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --progress-bar off -r tests/requirements.txt
	@touch $@

deps: ## Install nginx, openssl, shellcheck, pebble, postgresql, the target servers (apache2, haproxy, caddy, postfix, dovecot, tomcat10) and chromium (report tests) with apt-get when missing (root only)
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	for pair in $(SERVER_PACKAGES); do \
	  PATH="$$PATH:/usr/sbin:/sbin" command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -z "$$missing" ]; then \
	  echo "deps: present: $(SYSTEM_PACKAGES) postgresql $(foreach p,$(SERVER_PACKAGES),$(lastword $(subst :, ,$(p))))"; \
	elif [ "$$(id -u)" != 0 ]; then \
	  echo "deps: missing:$$missing -- not root, skipping; install them with your package manager"; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	  echo "deps: missing:$$missing -- no apt-get here, skipping; install them with your package manager"; \
	else \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  policy=/usr/sbin/policy-rc.d; made_policy=""; \
	  if [ ! -e "$$policy" ]; then \
	    printf '#!/bin/sh\n# package scripts must not start daemons (make deps)\nexit 101\n' > "$$policy"; \
	    chmod 755 "$$policy"; made_policy=1; \
	  fi; \
	  trap 'if [ -n "$$made_policy" ]; then rm -f "$$policy"; fi' EXIT; \
	  case " $$missing " in *" postfix "*) \
	    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections;; esac; \
	  apt-get -o DPkg::Lock::Timeout=120 update -qq; \
	  apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends $$missing </dev/null; \
	fi

collection: ## Link build/collections/ansible_collections/certforge/pki to this tree
	@mkdir -p $(dir $(COLL_LINK))
	@if [ "$$(readlink -f $(COLL_LINK) 2>/dev/null)" != "$$(pwd -P)" ]; then \
	  rm -rf $(COLL_LINK); ln -s ../../../.. $(COLL_LINK); echo "collection: linked $(COLL_LINK)"; \
	fi

units: venv collection ## Unit tests (pytest tests/unit)
	$(PYTEST) -q $(TEST_COLOR) $(PYTEST_ARGS) tests/unit

sanity: venv ## ansible-test sanity on a copy of the tree (offline pip bootstrap included)
	@shopt -s nullglob; bad=""; \
	for f in tests/sanity/ignore-*.txt; do grep -q '[^[:space:]]' "$$f" && bad="$$bad $$f"; done; \
	if [ -n "$$bad" ]; then echo "sanity: ignore files must stay empty:$$bad" >&2; exit 1; fi
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_DIR)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git ls-files -z --cached --others --exclude-standard \
	    | tar --null --no-recursion --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(SANITY_DIR); \
	else \
	  tar --exclude=./.git --exclude=./$(BUILD) --exclude=./$(VENV) --exclude=./tests/output \
	    --exclude=./.ansible --exclude=__pycache__ -cf - . | tar -xf - -C $(SANITY_DIR); \
	fi
	@# A repository of its own, so ansible-test lists the copied files rather than walking up to
	@# this repository's .git (where build/ is ignored).
	@if command -v git >/dev/null 2>&1; then git -c init.defaultBranch=sanity init -q $(SANITY_DIR); fi
	@echo "sanity: copied the tree to $(SANITY_DIR)"
	$(PY) tests/utils/get_pip_standin.py --seed $(ANSIBLE_TEST_CACHE)
	cd $(SANITY_DIR) && env -u ANSIBLE_COLLECTIONS_PATH \
	  ansible-test sanity --python $(SANITY_PYTHON) --local $(TEST_COLOR) $(SANITY_ARGS)

lint: venv collection ## ansible-lint --profile production (settings in .ansible-lint)
	ansible-lint --profile production $(LINT_COLOR)

integration: venv deps collection ## Integration tests (pytest tests/integration, real servers on 127.0.0.1)
	@if [ -n "$$(find tests/integration \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit 2>/dev/null)" ]; then \
	  rc=0; $(PYTEST) -q $(TEST_COLOR) $(PYTEST_ARGS) tests/integration || rc=$$?; \
	  if [ "$$rc" = 5 ]; then echo "integration: pytest collected no tests"; rc=0; fi; \
	  exit "$$rc"; \
	else \
	  echo "integration: no test files under tests/integration yet, nothing to run"; \
	fi

# Chaos suite (tests/chaos, docs/chaos.md): killed, duplicated and stormed ansible-playbook runs,
# orders counted at the CA.  CHAOS_SEED replays a run; CHAOS_BUDGET caps the seconds.
chaos: venv deps collection ## Chaos suite, full run counts of issue 7 (bounded by CHAOS_BUDGET, default 5400 s)
	CHAOS_PROFILE=full CHAOS_REPORT=$(BUILD)/chaos/full.txt $(PYTEST) -q $(TEST_COLOR) $(PYTEST_ARGS) tests/chaos

chaos-bounded: venv deps collection ## Chaos suite, a few runs per scenario (about 4 minutes; part of make test)
	CHAOS_PROFILE=bounded CHAOS_REPORT=$(BUILD)/chaos/bounded.txt $(PYTEST) -q $(TEST_COLOR) $(PYTEST_ARGS) tests/chaos

test: venv deps collection units sanity lint integration chaos-bounded ## Everything CI runs, in order

demo: venv deps collection ## Local CA -> nginx on 127.0.0.1 -> TLS check, run twice (2nd: changed=0)
	bash scripts/demo.sh

bench: venv deps collection ## Run the benchmarks (bench/run.py)
	@test -f bench/run.py || { echo "bench: bench/run.py does not exist yet" >&2; exit 1; }
	PYTHONPATH=$(CURDIR)/$(COLL) $(PY) bench/run.py

clean: ## Remove build products and test output (keeps .venv)
	rm -rf $(BUILD) tests/output .ansible .pytest_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv too
	rm -rf $(VENV)

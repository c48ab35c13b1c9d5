# krios-testbed: two commands matter, `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: demo test venv control-plane lint docs unit clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Real etcd + kube-apiserver + kube-scheduler, built once and cached in ~/.cache/krios.
control-plane:
	bash scripts/install-system-deps.sh
	bash scripts/build-control-plane.sh >/dev/null

# The documentation site (mkdocs.yml, docs/), built strictly into site/ (ignored by git).
docs: venv
	$(VENV)/bin/mkdocs build --strict -d site

lint: venv docs
	$(VENV)/bin/ruff check src tests plugins
	$(VENV)/bin/ansible-lint --profile production --offline
	bash scripts/syntax-check.sh

unit: venv control-plane
	$(VENV)/bin/pytest

test: venv control-plane lint unit

demo: venv control-plane
	$(VENV)/bin/ansible-playbook playbooks/site.yml -i inventories/local -e scenario=sf_4workers

clean:
	rm -rf $(VENV) .pytest_cache results/.tmp

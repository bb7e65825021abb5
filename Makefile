# svasim: every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BUF    := tools/node_modules/.bin/buf
NODECLIENT := clients/node/node_modules/.installed

.PHONY: help install demo up test lint protos protos-check bench clean

help:
	@echo "make demo    install into $(VENV) and run the fabric with the demo workload"
	@echo "make test    install everything and run the whole test suite"
	@echo "make up      serve the whole fabric on :50051 (SQLite store svasim.db)"
	@echo "make lint    ruff, mypy (model) and buf lint"
	@echo "make protos  regenerate the Python gRPC code from proto/"
	@echo "make bench   benchmarks, each printed as a ratio to a baseline measured in the same run"

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(BUF): tools/package.json
	cd tools && npm install --no-audit --no-fund --loglevel=error
	touch $@

$(NODECLIENT): clients/node/package.json
	cd clients/node && npm install --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed $(BUF) $(NODECLIENT)

demo: $(VENV)/.installed
	$(VENV)/bin/svasim demo

up: $(VENV)/.installed
	$(VENV)/bin/svasim up

test: install
	$(PY) -m pytest

lint: install
	$(PY) -m ruff check src clients tests scripts benchmarks
	$(PY) -m mypy
	cd proto && ../$(BUF) lint

protos: $(VENV)/.installed
	$(PY) scripts/gen_protos.py

protos-check: $(VENV)/.installed
	$(PY) scripts/gen_protos.py --check

bench: $(VENV)/.installed
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) tools/node_modules clients/node/node_modules .pytest_cache svasim.db

